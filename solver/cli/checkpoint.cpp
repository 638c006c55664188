#include "solver/cli/checkpoint.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/core.h>

#include <algorithm>
#include <bit>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "io/hdf5.hpp"
#include "io/model_file.hpp"
#include "io/output_file.hpp"
#include "solver/base/hash.hpp"
#include "solver/base/log.hpp"

namespace pref::cli {

namespace fs = std::filesystem;

namespace {

const std::regex kName(R"(^ckpt-([0-9]{6,})(-half)?\.h5$)");
const std::regex kPartial(R"(^ckpt-[0-9]{6,}(-half)?\.h5\.partial\.[0-9]+$)");

// Order of checkpoint names: after k sweeps = 2k, after the user half-step of sweep k = 2k - 1.
std::int64_t order_of(const std::string& name) {
  std::smatch m;
  if (!std::regex_match(name, m, kName)) return -1;
  const std::int64_t k = std::stoll(m[1].str());
  return 2 * k - (m[2].matched ? 1 : 0);
}

// The checkpoint names in dir, newest first (rank 0 lists, every rank gets the list).
std::vector<std::string> list_checkpoints(const mpi::Comm& comm, const std::string& dir) {
  std::string joined;
  if (comm.rank() == 0) {
    std::vector<std::pair<std::int64_t, std::string>> found;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      const std::string name = e.path().filename().string();
      const std::int64_t k = order_of(name);
      if (k >= 0) found.emplace_back(k, name);
    }
    std::sort(found.begin(), found.end(), std::greater<>());
    for (const auto& [k, name] : found) joined += name + "\n";
  }
  joined = mpi::broadcast(comm, joined);
  std::vector<std::string> names;
  std::istringstream in(joined);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) names.push_back(line);
  return names;
}

io::Attributes to_attributes(const RunIdentity& id, int ranks, Exchange used, double objective) {
  return {{"model", id.model},
          {"init", id.init},
          {"exchange", id.exchange},
          {"exchange_used", std::string(exchange_name(used))},
          {"duplicates", id.duplicates},
          {"mu_u", id.mu_u},
          {"mu_z", id.mu_z},
          {"tol", id.tol},
          {"init_scale", id.init_scale},
          {"seed", std::bit_cast<std::int64_t>(id.seed)},
          {"newton_steps", static_cast<std::int64_t>(id.newton_steps)},
          {"max_sweeps", static_cast<std::int64_t>(id.max_sweeps)},
          {"drop_ties", static_cast<std::int64_t>(id.drop_ties)},
          {"extrapolate", static_cast<std::int64_t>(id.extrapolate)},
          {"prior", id.prior},
          {"data", id.data},
          {"data_users", static_cast<std::int64_t>(id.users)},
          {"data_comparisons", static_cast<std::int64_t>(id.comparisons)},
          {"data_train_labels", static_cast<std::int64_t>(id.train_labels)},
          {"data_train_checksum", hash::hex(id.train_checksum)},
          {"objective", objective},
          {"mpi_ranks", static_cast<std::int64_t>(ranks)}};
}

template <class T>
T attr(const io::Checkpoint& ck, const std::string& name) {
  auto it = ck.header.attributes.find(name);
  if (it == ck.header.attributes.end())
    throw InputError(ck.path + ": missing attribute '" + name + "'");
  if (auto* v = std::get_if<T>(&it->second)) return *v;
  throw InputError(ck.path + ": attribute '" + name + "' has an unexpected type");
}

// The /state array of the population prior, and the run's --prior (absent before it existed:
// the ridge).
constexpr const char* kPriorArray = "population_prior";
std::string prior_name(const io::Checkpoint& ck) {
  return ck.header.attributes.count("prior") ? attr<std::string>(ck, "prior") : "ridge";
}

// Everything a resume reads must be there and consistent (else the checkpoint is skipped).
void require_complete(const io::Checkpoint& ck) {
  for (const char* s : {"model", "init", "exchange", "duplicates", "data", "data_train_checksum"})
    attr<std::string>(ck, s);
  for (const char* d : {"mu_u", "mu_z", "tol", "init_scale", "objective"}) attr<double>(ck, d);
  for (const char* i : {"seed", "newton_steps", "max_sweeps", "drop_ties", "data_users",
                        "data_comparisons", "data_train_labels", "mpi_ranks"})
    attr<std::int64_t>(ck, i);
  const auto& hd = ck.header;
  std::istringstream in(hd.history_json);
  std::int64_t n = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("sweep") || j["sweep"] != n)
      throw InputError(fmt::format("{}: /history: record {} is not valid", ck.path, n));
    ++n;
  }
  if (n != hd.sweep + 1)
    throw InputError(fmt::format("{}: /history holds {} records for {} sweeps", ck.path, n, hd.sweep));
  if (prior_name(ck) == "population" && !prior_of(ck))
    throw InputError(ck.path + ": missing dataset /state/" + std::string(kPriorArray));
  if (hd.user_half_done) {
    const auto j = nlohmann::json::parse(hd.pending_json, nullptr, false);
    if (j.is_discarded() || !j.is_object() || j.value("sweep", -1) != hd.sweep + 1)
      throw InputError(ck.path + ": attribute 'pending' is not valid");
  }
}

}  // namespace

std::uint64_t training_checksum(const mpi::Comm& comm, const LabelMatrix& train) {
  const Csr& c = train.by_user;
  const std::uint64_t u0 = train.parts.users.begin(comm.rank());
  std::uint64_t s = 0;
  for (std::size_t r = 0; r < c.rows(); ++r)
    for (std::uint64_t k = c.ptr[r]; k < c.ptr[r + 1]; ++k) s += hash::label(u0 + r, c.col[k], c.val[k]);
  return mpi::allreduce_sum(comm, s);
}

std::string checkpoint_name(int sweep, bool user_half_done) {
  return user_half_done ? fmt::format("ckpt-{:06d}-half.h5", sweep + 1)
                        : fmt::format("ckpt-{:06d}.h5", sweep);
}

Checkpointer::Checkpointer(const CheckpointOptions& opt, const mpi::Comm& comm)
    : opt_(opt), comm_(comm) {
  mpi::agree(comm_, [&] {
    if (comm_.rank() != 0) return;
    std::error_code ec;
    if (opt_.dir.empty()) throw InputError("--checkpoint-dir: empty path");
    if (fs::exists(opt_.dir, ec) && !fs::is_directory(opt_.dir, ec))
      throw InputError(opt_.dir + ": not a directory (--checkpoint-dir)");
    fs::create_directories(opt_.dir, ec);
    if (ec || !fs::is_directory(opt_.dir))
      throw InputError(opt_.dir + ": cannot create the directory: " + ec.message() +
                       " (--checkpoint-dir)");
    // Temporary files of writes that were interrupted (the run was killed).
    for (const auto& e : fs::directory_iterator(opt_.dir, ec)) {
      const std::string name = e.path().filename().string();
      if (std::regex_match(name, kPartial)) {
        fs::remove(e.path(), ec);
        log::info(comm_, "checkpoint: removed {}, left by an interrupted write", e.path().string());
      }
    }
  });
}

ExtrapolationState extrapolation_of(const io::Checkpoint& ck) {
  ExtrapolationState ex;
  if (!ck.header.attributes.count("extrapolation_beta")) return ex;  // a plain-sweeps checkpoint
  ex.beta = attr<double>(ck, "extrapolation_beta");
  ex.ceiling = attr<double>(ck, "extrapolation_ceiling");
  ex.previous = attr<double>(ck, "extrapolation_previous");
  ex.calm_run = static_cast<int>(attr<std::int64_t>(ck, "extrapolation_calm_run"));
  ex.last_decreased = attr<std::int64_t>(ck, "extrapolation_last_decreased") != 0;
  return ex;
}

std::optional<PopulationPrior> prior_of(const io::Checkpoint& ck) {
  auto it = ck.header.arrays.find(kPriorArray);
  if (it == ck.header.arrays.end()) return std::nullopt;
  return prior_from_array(static_cast<int>(ck.header.rank), it->second,
                          ck.path + ": /state/" + std::string(kPriorArray));
}

void check_resumable(const mpi::Comm& comm, const io::Checkpoint& ck, const RunIdentity& id) {
  mpi::agree(comm, [&] {
    const auto& hd = ck.header;
    auto refuse = [&](const std::string& option, const std::string& ours, const std::string& theirs) {
      throw InputError(fmt::format(
          "{}: {} contradicts the checkpoint {}, written with {} {}; resume with the "
          "checkpoint's options or use another --checkpoint-dir",
          option, ours, ck.path, option, theirs));
    };
    if (attr<std::string>(ck, "model") != id.model)
      refuse("--model", id.model, attr<std::string>(ck, "model"));
    if (hd.rank != static_cast<std::uint32_t>(id.J))
      refuse("--rank", std::to_string(id.J), std::to_string(hd.rank));
    // Data identity: sizes and training labels (not the path: a copy or a move is the same data).
    const std::string ours = fmt::format("{} ({} users, {} comparisons, {} training labels, checksum {})",
                                         id.data, id.users, id.comparisons, id.train_labels,
                                         hash::hex(id.train_checksum));
    const std::string theirs = fmt::format(
        "{} ({} users, {} comparisons, {} training labels, checksum {})", attr<std::string>(ck, "data"),
        attr<std::int64_t>(ck, "data_users"), attr<std::int64_t>(ck, "data_comparisons"),
        attr<std::int64_t>(ck, "data_train_labels"), attr<std::string>(ck, "data_train_checksum"));
    if (static_cast<std::uint64_t>(attr<std::int64_t>(ck, "data_users")) != id.users ||
        static_cast<std::uint64_t>(attr<std::int64_t>(ck, "data_comparisons")) != id.comparisons ||
        static_cast<std::uint64_t>(attr<std::int64_t>(ck, "data_train_labels")) != id.train_labels ||
        attr<std::string>(ck, "data_train_checksum") != hash::hex(id.train_checksum)) {
      if (attr<std::int64_t>(ck, "drop_ties") != id.drop_ties)
        refuse("--drop-ties", id.drop_ties ? "on" : "off", attr<std::int64_t>(ck, "drop_ties") ? "on" : "off");
      if (attr<std::string>(ck, "duplicates") != id.duplicates)
        refuse("--duplicates", id.duplicates, attr<std::string>(ck, "duplicates"));
      refuse("--data", ours, theirs);
    }
    auto same_double = [&](const char* key, const char* option, double v) {
      if (attr<double>(ck, key) != v)
        refuse(option, fmt::format("{}", v), fmt::format("{}", attr<double>(ck, key)));
    };
    same_double("mu_u", "--mu-u", id.mu_u);
    same_double("mu_z", "--mu-z", id.mu_z);
    if (attr<std::string>(ck, "init") != id.init)
      refuse("--init", id.init, attr<std::string>(ck, "init"));
    if (std::bit_cast<std::uint64_t>(attr<std::int64_t>(ck, "seed")) != id.seed)
      refuse("--seed", std::to_string(id.seed),
             std::to_string(std::bit_cast<std::uint64_t>(attr<std::int64_t>(ck, "seed"))));
    same_double("init_scale", "--init-scale", id.init_scale);
    if (attr<std::int64_t>(ck, "newton_steps") != id.newton_steps)
      refuse("--newton-steps", std::to_string(id.newton_steps),
             std::to_string(attr<std::int64_t>(ck, "newton_steps")));
    if (attr<std::int64_t>(ck, "drop_ties") != id.drop_ties)
      refuse("--drop-ties", id.drop_ties ? "on" : "off", attr<std::int64_t>(ck, "drop_ties") ? "on" : "off");
    if (attr<std::string>(ck, "duplicates") != id.duplicates)
      refuse("--duplicates", id.duplicates, attr<std::string>(ck, "duplicates"));
    // (before --extrapolate, whose default follows it)
    if (prior_name(ck) != id.prior) refuse("--prior", id.prior, prior_name(ck));
    // (checkpoints of versions before --extrapolate have no such attribute: off)
    const bool theirs_ex = ck.header.attributes.count("extrapolate") &&
                           attr<std::int64_t>(ck, "extrapolate") != 0;
    if (theirs_ex != id.extrapolate)
      refuse("--extrapolate", id.extrapolate ? "on" : "off", theirs_ex ? "on" : "off");
  });
  // Options that may change between runs: said, not refused.
  const auto& hd = ck.header;
  if (attr<std::string>(ck, "data") != id.data)
    log::info(comm, "resume: the data file was {} (same content), now {}",
              attr<std::string>(ck, "data"), id.data);
  if (attr<double>(ck, "tol") != id.tol)
    log::info(comm, "resume: --tol {} (was {})", id.tol, attr<double>(ck, "tol"));
  if (attr<std::int64_t>(ck, "max_sweeps") != id.max_sweeps)
    log::info(comm, "resume: --max-sweeps {} (was {})", id.max_sweeps,
              attr<std::int64_t>(ck, "max_sweeps"));
  if (attr<std::string>(ck, "exchange") != id.exchange)
    log::info(comm, "resume: --exchange {} (was {}; the factors agree to round-off, not bitwise)",
              id.exchange, attr<std::string>(ck, "exchange"));
  (void)hd;
}

void Checkpointer::start_fresh(bool overwrite) {
  const auto names = list_checkpoints(comm_, opt_.dir);
  if (names.empty()) return;
  mpi::agree(comm_, [&] {
    if (!overwrite)
      throw InputError(fmt::format(
          "{}: holds checkpoints of an earlier run (newest {}); pass --resume to continue from "
          "them or --overwrite to discard them (--checkpoint-dir)",
          opt_.dir, names.front()));
    if (comm_.rank() != 0) return;
    for (const auto& n : names) {
      std::error_code ec;
      fs::remove(fs::path(opt_.dir) / n, ec);
    }
  });
  log::info(comm_, "checkpoint: removed {} checkpoints of an earlier run from {} (--overwrite)",
            names.size(), opt_.dir);
}

std::optional<io::Checkpoint> Checkpointer::find_resumable(const Partitions& parts,
                                                           const RunIdentity& id) {
  for (const std::string& name : list_checkpoints(comm_, opt_.dir)) {
    const std::string path = (fs::path(opt_.dir) / name).string();
    io::Checkpoint ck;
    try {
      ck = io::read_checkpoint(path, comm_, parts.users, parts.comparisons);
      mpi::agree(comm_, [&] { require_complete(ck); });
    } catch (const Error& e) {
      if (!e.collective()) throw;
      log::warn(comm_, "skipping checkpoint {}: {}; renamed to {}.invalid", path, e.what(), name);
      if (comm_.rank() == 0) {
        std::error_code ec;
        fs::rename(path, path + ".invalid", ec);
      }
      comm_.barrier();
      continue;
    }
    check_resumable(comm_, ck, id);
    mpi::agree(comm_, [&] {
      // check_resumable compares the data sizes the checkpoint records; these are the ones of
      // its factors (the header checksum covers both, so this is a second line of defence).
      if (!ck.shape_matches)
        throw InputError(fmt::format(
            "--data: {} ({} users, {} comparisons) contradicts the checkpoint {}, written for "
            "{} users and {} comparisons; resume with that data or use another --checkpoint-dir",
            id.data, parts.users.size(), parts.comparisons.size(), path, ck.header.users,
            ck.header.comparisons));
    });
    log::info(comm_, "resume: {} (sweep {}{}, written at {} ranks, resumed at {})", path,
              ck.header.sweep, ck.header.user_half_done ? " and the user half-step of the next" : "",
              attr<std::int64_t>(ck, "mpi_ranks"), comm_.size());
    return ck;
  }
  log::info(comm_, "resume: no valid checkpoint in {}: starting fresh", opt_.dir);
  return std::nullopt;
}

void Checkpointer::write(const FitState& state, const RunIdentity& id, Exchange used,
                         double objective, const std::string& history_json,
                         const std::string& pending_json, const Partitions& parts) {
  const double t0 = MPI_Wtime();
  io::CheckpointHeader hd;
  hd.users = parts.users.size();
  hd.comparisons = parts.comparisons.size();
  hd.rank = static_cast<std::uint32_t>(state.factors.J);
  hd.sweep = state.sweep;
  hd.user_half_done = state.user_half_done;
  hd.attributes = to_attributes(id, comm_.size(), used, objective);
  if (id.extrapolate) {
    const ExtrapolationState& ex = state.extrapolation;
    hd.attributes["extrapolation_beta"] = ex.beta;
    hd.attributes["extrapolation_ceiling"] = ex.ceiling;
    hd.attributes["extrapolation_previous"] = ex.previous;
    hd.attributes["extrapolation_calm_run"] = static_cast<std::int64_t>(ex.calm_run);
    hd.attributes["extrapolation_last_decreased"] = static_cast<std::int64_t>(ex.last_decreased);
  }
  if (state.prior) hd.arrays[kPriorArray] = prior_to_array(*state.prior);
  // Rank 0's: the records hold each rank's own timings, and every rank must write the same.
  hd.history_json = mpi::broadcast(comm_, history_json);
  hd.pending_json = mpi::broadcast(comm_, pending_json);
  const std::string name = checkpoint_name(state.sweep, state.user_half_done);
  const std::string path = (fs::path(opt_.dir) / name).string();
  {
    io::AtomicOutput out(path, /*overwrite=*/true, comm_, "--checkpoint-dir");
    io::write_checkpoint(out.temp_path(), comm_, hd, parts.users, state.factors.U,
                         parts.comparisons, state.factors.Z, state.u_prev, state.z_prev);
    out.commit();
  }
  if (comm_.rank() == 0) {
    // The rename to storage too, then the checkpoints beyond the newest `keep`.
    const int fd = ::open(opt_.dir.c_str(), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
      ::fsync(fd);
      ::close(fd);
    }
    const std::int64_t mine = order_of(name);
    int kept = 0;
    for (const std::string& n : list_checkpoints(mpi::Comm::self(), opt_.dir)) {
      if (n == name || (order_of(n) > mine) || ++kept < opt_.keep) continue;
      std::error_code ec;
      fs::remove(fs::path(opt_.dir) / n, ec);
    }
  }
  comm_.barrier();
  log::info(comm_, "checkpoint: wrote {} in {:.3f}s", path, MPI_Wtime() - t0);
}

bool finished_output(const mpi::Comm& comm, const std::string& out, bool overwrite, int J,
                     const io::Attributes& expected) {
  if (overwrite) return false;
  std::error_code ec;
  const int exists = mpi::broadcast(comm, comm.rank() == 0 && fs::is_regular_file(out, ec) ? 1 : 0);
  if (!exists) return false;
  io::ModelHeader hd;
  try {
    hd = io::read_model_header(out, comm);
  } catch (const Error& e) {
    if (!e.collective()) throw;
    return false;  // not a model file: AtomicOutput refuses it as an existing file
  }
  bool same = hd.rank == static_cast<std::uint32_t>(J);
  if (same) {
    h5::Handle f;
    mpi::agree(comm, [&] { f = h5::open_file(out, comm); });
    mpi::agree(comm, [&] {
      const std::string what = out + ": /";
      for (const auto& [name, v] : expected) {
        if (!h5::has_attribute(f.get(), name)) {
          same = false;
        } else if (auto* d = std::get_if<double>(&v)) {
          same = same && h5::read_attribute<double>(f.get(), name, what) == *d;
        } else if (auto* i = std::get_if<std::int64_t>(&v)) {
          same = same && h5::read_attribute<std::int64_t>(f.get(), name, what) == *i;
        } else {
          same = same && h5::read_string_attribute(f.get(), name, what) == std::get<std::string>(v);
        }
      }
    });
  }
  if (same)
    log::info(comm, "resume: {} already holds the finished fit of this command line: nothing to "
                    "do (pass --overwrite to fit again)", out);
  return same;
}

}  // namespace pref::cli
