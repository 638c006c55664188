#include "solver/cli/checkpoint.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/core.h>

#include <algorithm>
#include <filesystem>
#include <regex>
#include <sstream>

#include "io/hdf5.hpp"
#include "io/model_file.hpp"
#include "io/output_file.hpp"
#include "solver/base/hash.hpp"
#include "solver/base/log.hpp"
#include "solver/fit/checkpoint_state.hpp"

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

// The data identity's attributes (beside the option --data's path).
io::Attributes to_attributes(const DataIdentity& d) {
  return {{"data_users", static_cast<std::int64_t>(d.users)},
          {"data_comparisons", static_cast<std::int64_t>(d.comparisons)},
          {"data_train_labels", static_cast<std::int64_t>(d.train_labels)},
          {"data_train_checksum", hash::hex(d.checksum)},
          {"init_model_checksum", d.init_model}};
}

// What a checkpoint records for an option: its attribute, the file's rank, or what the
// checkpoints written before the option existed mean. Missing or mistyped: an InputError.
io::AttributeValue stored(const io::Checkpoint& ck, const FitField& f) {
  if (f.file_rank) return static_cast<std::int64_t>(ck.header.rank);
  auto it = ck.header.attributes.find(f.attribute);
  if (it == ck.header.attributes.end()) {
    if (f.absent) return *f.absent;
    throw InputError(ck.path + ": missing attribute '" + f.attribute + "'");
  }
  if (it->second.index() != f.type)
    throw InputError(ck.path + ": attribute '" + f.attribute + "' has an unexpected type");
  return it->second;
}

// Everything a resume reads must be there and consistent (else the checkpoint is skipped): the
// configuration and data identity here, the state by decode_state.
void require_configuration(const io::Checkpoint& ck) {
  for (const FitField& f : fit_fields())
    if (f.role != Role::kLocal) stored(ck, f);
  ck.attribute<std::string>("data_train_checksum");
  for (const char* i : {"data_users", "data_comparisons", "data_train_labels", "mpi_ranks"})
    ck.attribute<std::int64_t>(i);
}

}  // namespace

DataIdentity data_identity(const mpi::Comm& comm, const LabelMatrix& train) {
  const Csr& c = train.by_user;
  const std::uint64_t u0 = train.parts.users.begin(comm.rank());
  std::uint64_t s = 0;
  for (std::size_t r = 0; r < c.rows(); ++r)
    for (std::uint64_t k = c.ptr[r]; k < c.ptr[r + 1]; ++k)
      s += hash::label(u0 + r, c.col[k], c.val[k]);
  return {train.users, train.comparisons, train.labels, mpi::allreduce_sum(comm, s), {}};
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

void check_resumable(const mpi::Comm& comm, const io::Checkpoint& ck, const FitOptions& o,
                     const DataIdentity& data) {
  auto refuse = [&](const std::string& option, const std::string& ours, const std::string& theirs) {
    throw InputError(
        fmt::format("{}: {} contradicts the checkpoint {}, written with {} {}; resume with the "
                    "checkpoint's options or use another --checkpoint-dir",
                    option, ours, ck.path, option, theirs));
  };
  mpi::agree(comm, [&] {
    for (const FitField& f : fit_fields()) {
      if (f.role != Role::kIdentity) continue;
      const io::AttributeValue theirs = stored(ck, f), ours = f.value(o);
      if (theirs != ours) refuse(f.option, f.show(ours), f.show(theirs));
    }
    // The data last: the options that shape the training labels (--drop-ties, --duplicates)
    // explain a different checksum better than the data can.
    auto content = [](auto users, auto comparisons, auto labels, const std::string& checksum) {
      return fmt::format("{} users, {} comparisons, {} training labels, checksum {}", users,
                         comparisons, labels, checksum);
    };
    const std::string ours =
        content(data.users, data.comparisons, data.train_labels, hash::hex(data.checksum));
    const std::string theirs = content(ck.attribute<std::int64_t>("data_users"),
                                       ck.attribute<std::int64_t>("data_comparisons"),
                                       ck.attribute<std::int64_t>("data_train_labels"),
                                       ck.attribute<std::string>("data_train_checksum"));
    if (ours != theirs)
      refuse("--data", fmt::format("{} ({})", o.data, ours),
             fmt::format("{} ({})", ck.attribute<std::string>("data"), theirs));
    // The model a warm start began from (absent before --init model:).
    const auto it = ck.header.attributes.find("init_model_checksum");
    const std::string was = it == ck.header.attributes.end()
                                ? std::string()
                                : ck.attribute<std::string>("init_model_checksum");
    if (was != data.init_model)
      refuse("--init", fmt::format("{} (a model of checksum {})", o.init, data.init_model),
             fmt::format("{} (checksum {})", ck.attribute<std::string>("init"), was));
  });
  // Options that may change between runs: said, not refused.
  for (const FitField& f : fit_fields()) {
    if (f.role != Role::kVariable) continue;
    const io::AttributeValue theirs = stored(ck, f), ours = f.value(o);
    if (theirs != ours)
      log::info(comm, "resume: {} {} (was {}{})", f.option, f.show(ours), f.show(theirs),
                f.resume_note.empty() ? "" : "; " + f.resume_note);
  }
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

std::optional<Resumed> Checkpointer::find_resumable(const Partitions& parts, const FitOptions& o,
                                                    const DataIdentity& data) {
  for (const std::string& name : list_checkpoints(comm_, opt_.dir)) {
    const std::string path = (fs::path(opt_.dir) / name).string();
    io::Checkpoint ck;
    FitState state;
    try {
      ck = io::read_checkpoint(path, comm_, parts.users, parts.comparisons);
      mpi::agree(comm_, [&] {
        require_configuration(ck);
        // (A checkpoint of other data has no factors read: check_resumable refuses it below.)
        if (ck.shape_matches) state = decode_state(ck);
      });
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
    check_resumable(comm_, ck, o, data);
    mpi::agree(comm_, [&] {
      // check_resumable compares the data sizes the checkpoint records; these are the ones of
      // its factors (the header checksum covers both, so this is a second line of defence).
      if (!ck.shape_matches)
        throw InputError(fmt::format(
            "--data: {} ({} users, {} comparisons) contradicts the checkpoint {}, written for "
            "{} users and {} comparisons; resume with that data or use another --checkpoint-dir",
            o.data, parts.users.size(), parts.comparisons.size(), path, ck.header.users,
            ck.header.comparisons));
    });
    log::info(comm_, "resume: {} (sweep {}{}, written at {} ranks, resumed at {})", path,
              ck.header.sweep,
              ck.header.user_half_done ? " and the user half-step of the next" : "",
              ck.attribute<std::int64_t>("mpi_ranks"), comm_.size());
    return Resumed{std::move(ck), std::move(state)};
  }
  log::info(comm_, "resume: no valid checkpoint in {}: starting fresh", opt_.dir);
  return std::nullopt;
}

void Checkpointer::write(const FitState& state, const FitOptions& o, const DataIdentity& data,
                         const Partitions& parts, Exchange exchange) {
  const double t0 = MPI_Wtime();
  io::CheckpointHeader hd;
  hd.users = parts.users.size();
  hd.comparisons = parts.comparisons.size();
  hd.attributes = recorded(o, /*model=*/false);
  hd.attributes.merge(to_attributes(data));
  hd.attributes["exchange_used"] = std::string(exchange_name(exchange));
  hd.attributes["mpi_ranks"] = static_cast<std::int64_t>(comm_.size());
  io::CheckpointFactors factors;
  encode_state(state, o.cfg.extrapolate, hd, factors);
  // Rank 0's: the records hold each rank's own timings, and every rank must write the same.
  hd.history_json = mpi::broadcast(comm_, hd.history_json);
  hd.pending_json = mpi::broadcast(comm_, hd.pending_json);
  const std::string name = checkpoint_name(state.sweep, state.user_half_done);
  const std::string path = (fs::path(opt_.dir) / name).string();
  {
    io::AtomicOutput out(path, /*overwrite=*/true, comm_, "--checkpoint-dir");
    io::write_checkpoint(out.temp_path(), comm_, hd, parts.users, parts.comparisons, factors);
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

bool finished_output(const mpi::Comm& comm, const FitOptions& o) {
  if (o.overwrite) return false;
  std::error_code ec;
  const int exists =
      mpi::broadcast(comm, comm.rank() == 0 && fs::is_regular_file(o.out, ec) ? 1 : 0);
  if (!exists) return false;
  io::ModelHeader hd;
  try {
    hd = io::read_model_header(o.out, comm);
  } catch (const Error& e) {
    if (!e.collective()) throw;
    return false;  // not a model file: AtomicOutput refuses it as an existing file
  }
  bool same = hd.rank == static_cast<std::uint32_t>(o.cfg.J);
  if (same) {
    h5::Handle f;
    mpi::agree(comm, [&] { f = h5::open_file(o.out, comm); });
    mpi::agree(comm, [&] {
      const std::string what = o.out + ": /";
      for (const FitField& field : fit_fields()) {
        if (!field.in_model) continue;
        const io::AttributeValue ours = field.value(o);
        const std::string& name = field.attribute;
        if (!h5::has_attribute(f.get(), name)) {
          same = same && field.absent == ours;
        } else if (auto* d = std::get_if<double>(&ours)) {
          same = same && h5::read_attribute<double>(f.get(), name, what) == *d;
        } else if (auto* i = std::get_if<std::int64_t>(&ours)) {
          same = same && h5::read_attribute<std::int64_t>(f.get(), name, what) == *i;
        } else {
          same =
              same && h5::read_string_attribute(f.get(), name, what) == std::get<std::string>(ours);
        }
      }
    });
  }
  if (same)
    log::info(comm,
              "resume: {} already holds the finished fit of this command line: nothing to "
              "do (pass --overwrite to fit again)",
              o.out);
  return same;
}

}  // namespace pref::cli
