#include "io/checkpoint_file.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "io/hdf5.hpp"
#include "solver/base/hash.hpp"

namespace pref::io {

namespace {

// Root attributes with a fixed meaning; every other root attribute goes to `attributes`.
const std::set<std::string> kFixed = {"format",         "format_version", "users",
                                      "comparisons",    "rank",           "sweep",
                                      "user_half_done", "pending",        "header_checksum"};

// Everything the header checksum covers, in a canonical form.
std::string canonical(const CheckpointHeader& hd) {
  std::string s =
      fmt::format("pref-checkpoint {} {} {} {} {} {}\n", kCheckpointFile.version, hd.users,
                  hd.comparisons, hd.rank, hd.sweep, hd.user_half_done ? 1 : 0);
  for (const auto& [name, v] : hd.attributes) {
    s += name;
    if (auto* d = std::get_if<double>(&v)) {
      std::uint64_t bits;
      std::memcpy(&bits, d, 8);
      s += fmt::format(" d {:016x}\n", bits);
    } else if (auto* i = std::get_if<std::int64_t>(&v)) {
      s += fmt::format(" i {}\n", *i);
    } else {
      const auto& str = std::get<std::string>(v);
      s += fmt::format(" s {} ", str.size()) + str + "\n";
    }
  }
  for (const auto& [name, v] : hd.arrays)
    s += fmt::format("array {} {} {}\n", name, v.size(),
                     hash::hex(hash::bytes(std::string_view(reinterpret_cast<const char*>(v.data()),
                                                            v.size() * sizeof(double)))));
  s += fmt::format("pending {}\n", hd.pending_json.size()) + hd.pending_json;
  s += fmt::format("history {}\n", hd.history_json.size()) + hd.history_json;
  return s;
}

herr_t collect_link(hid_t, const char* name, const H5L_info_t*, void* data) {
  static_cast<std::vector<std::string>*>(data)->push_back(name);
  return 0;
}

}  // namespace

namespace {
bool by_user(const std::string& name) {
  const std::string tail = "user_factors";
  return name.size() >= tail.size() &&
         name.compare(name.size() - tail.size(), tail.size(), tail) == 0;
}
bool factor_name(const std::string& name) {
  const std::string tail = "comparison_factors";
  return by_user(name) || (name.size() >= tail.size() &&
                           name.compare(name.size() - tail.size(), tail.size(), tail) == 0);
}
}  // namespace

void write_checkpoint(const std::string& path, const mpi::Comm& comm, const CheckpointHeader& hd,
                      const Partition& users, const Partition& comparisons,
                      const CheckpointFactors& factors) {
  struct FactorSet {
    std::string name;
    const Partition& part;
    const std::vector<double>* rows;
    std::uint64_t checksum = 0;
  };
  std::vector<FactorSet> sets;
  for (const auto& [name, rows] : factors) {
    if (!factor_name(name) || !rows) throw Error(path + ": bad checkpoint factor set " + name);
    sets.push_back({name, by_user(name) ? users : comparisons, rows, 0});
  }
  if (!factors.count("user_factors") || !factors.count("comparison_factors"))
    throw Error(path + ": a checkpoint needs user_factors and comparison_factors");
  for (FactorSet& fs : sets) fs.checksum = factor_checksum(comm, fs.part, *fs.rows, hd.rank);
  h5::Handle f;
  mpi::agree(comm, [&] { f = h5::create_file(path, comm); });
  const std::string what = path;
  const hid_t h = f.get();
  write_format(h, kCheckpointFile, what);
  h5::write_attribute<std::uint64_t>(h, "users", hd.users, what);
  h5::write_attribute<std::uint64_t>(h, "comparisons", hd.comparisons, what);
  h5::write_attribute<std::uint32_t>(h, "rank", hd.rank, what);
  h5::write_attribute<std::int64_t>(h, "sweep", hd.sweep, what);
  h5::write_attribute<std::int64_t>(h, "user_half_done", hd.user_half_done ? 1 : 0, what);
  h5::write_string_attribute(h, "pending", hd.pending_json, what);
  for (const auto& [name, v] : hd.attributes)
    if (kFixed.count(name)) throw Error(path + ": checkpoint attribute name clash: " + name);
  write_attributes(h, hd.attributes, what);
  h5::write_string_attribute(h, "header_checksum", hash::hex(hash::bytes(canonical(hd))), what);
  const int me = comm.rank();
  {
    const hsize_t n[1] = {hd.history_json.size()};
    h5::Handle dh = h5::create_dataset(h, "history", H5T_STD_U8LE, n, what);
    const std::uint64_t mine = me == 0 ? hd.history_json.size() : 0;
    h5::write_rows_raw(dh.get(), H5T_NATIVE_UINT8, 0, mine, hd.history_json.data(), comm,
                       what + ": /history");
  }
  if (!hd.arrays.empty()) {
    h5::Handle g = h5::create_group(h, "state", what);
    for (const auto& [name, v] : hd.arrays) {
      const hsize_t n[1] = {v.size()};
      h5::Handle d = h5::create_dataset(g.get(), name, H5T_IEEE_F64LE, n, what);
      h5::write_rows<double>(d.get(), 0, me == 0 ? v.size() : 0, v, comm,
                             what + ": /state/" + name);
    }
  }
  for (const FactorSet& fs : sets) {
    h5::Handle d =
        write_factor_rows(h, fs.name, fs.part.size(), hd.rank, fs.part, *fs.rows, comm, what);
    h5::write_string_attribute(d.get(), "checksum", hash::hex(fs.checksum), what);
  }
  // To storage before the caller renames the file into place (the flush syncs the MPI file).
  h5::finish_file(f, path, comm);
}

Checkpoint read_checkpoint(const std::string& path, const mpi::Comm& comm, const Partition& users,
                           const Partition& comparisons) {
  Checkpoint ck;
  ck.path = path;
  CheckpointHeader& hd = ck.header;
  const OpenedFile opened = open_pref_file(path, kCheckpointFile, comm);
  const h5::Handle& f = opened.file;
  // The factor datasets (every root dataset named *user_factors or *comparison_factors):
  // name, rows from users (else comparisons), stored checksum.
  struct FactorSet {
    std::string name;
    bool users;
    std::string checksum;
  };
  std::vector<FactorSet> sets;
  mpi::agree(comm, [&] {
    const hid_t h = f.get();
    const std::string what = path + ": /";
    hd.users = h5::read_attribute<std::uint64_t>(h, "users", what);
    hd.comparisons = h5::read_attribute<std::uint64_t>(h, "comparisons", what);
    hd.rank = h5::read_attribute<std::uint32_t>(h, "rank", what);
    hd.sweep = h5::read_attribute<std::int64_t>(h, "sweep", what);
    hd.user_half_done = h5::read_attribute<std::int64_t>(h, "user_half_done", what) != 0;
    hd.pending_json = h5::read_string_attribute(h, "pending", what);
    const std::string stored = h5::read_string_attribute(h, "header_checksum", what);
    for (const auto& name : h5::attribute_names(h, what))
      if (!kFixed.count(name)) hd.attributes[name] = read_any_attribute(h, name, what);
    if (hd.rank < 1 || hd.sweep < 0)
      throw InputError(fmt::format("{}: bad rank {} or sweep {}", path, hd.rank, hd.sweep));
    if (!h5::exists(h, "/history")) throw InputError(path + ": missing dataset /history");
    {
      h5::Handle dh = h5::open_dataset(h, "history", path);
      const auto s = h5::shape_of(dh.get(), path);
      if (s.dims.size() != 1 || s.type_class != H5T_INTEGER || s.type_size != 1)
        throw InputError(path + ": /history: expected a 1-D uint8 dataset");
      hd.history_json.assign(s.dims[0], '\0');
      h5::read_rows_raw(dh.get(), H5T_NATIVE_UINT8, 0, s.dims[0], hd.history_json.data(), comm,
                        path + ": /history");
    }
    if (h5::exists(h, "/state")) {
      h5::Handle g = h5::open_group(h, "state", path);
      std::vector<std::string> arrays;
      hsize_t at = 0;
      PREF_H5_READ(H5Literate(g.get(), H5_INDEX_NAME, H5_ITER_INC, &at, collect_link, &arrays),
                   path + ": /state");
      for (const auto& name : arrays) {
        h5::Handle d = h5::open_dataset(g.get(), name, path);
        const auto s = h5::shape_of(d.get(), path);
        if (s.dims.size() != 1 || s.type_class != H5T_FLOAT || s.type_size != 8)
          throw InputError(path + ": /state/" + name + ": expected a 1-D float64 dataset");
        std::vector<double>& v = hd.arrays[name];
        v.resize(s.dims[0]);
        h5::read_rows<double>(d.get(), 0, s.dims[0], v, comm, path + ": /state/" + name);
      }
    }
    if (hash::hex(hash::bytes(canonical(hd))) != stored)
      throw InputError(path + ": header checksum mismatch (attributes or history corrupt)");
    std::vector<std::string> links;
    hsize_t at = 0;
    // A damaged link table is the file's fault: an input error, as every other read here.
    PREF_H5_READ(H5Literate(h, H5_INDEX_NAME, H5_ITER_INC, &at, collect_link, &links),
                 what + ": the list of datasets");
    for (const std::string& name : links)
      if (factor_name(name)) sets.push_back({name, by_user(name), {}});
    for (const char* required : {"user_factors", "comparison_factors"})
      if (std::none_of(sets.begin(), sets.end(),
                       [&](const FactorSet& fs) { return fs.name == required; }))
        throw InputError(fmt::format("{}: missing dataset /{}", path, required));
    for (FactorSet& fs : sets) {
      check_factor_dataset(h, fs.name, fs.users ? hd.users : hd.comparisons, hd.rank, path);
      h5::Handle d = h5::open_dataset(h, fs.name, path);
      fs.checksum = h5::read_string_attribute(d.get(), "checksum", path + ": /" + fs.name);
    }
  });
  ck.shape_matches = users.size() == hd.users && comparisons.size() == hd.comparisons;
  if (!ck.shape_matches) return ck;
  const std::uint32_t J = hd.rank;
  for (const FactorSet& fs : sets) {
    const Partition& part = fs.users ? users : comparisons;
    std::vector<double>& out = ck.factors[fs.name];
    read_factor_rows(f.get(), fs.name, J, part, out, comm, path);
    const std::string sum = hash::hex(factor_checksum(comm, part, out, J));
    mpi::agree(comm, [&] {
      if (sum != fs.checksum)
        throw InputError(fmt::format("{}: /{} checksum mismatch (stored {}, data {})", path,
                                     fs.name, fs.checksum, sum));
    });
  }
  return ck;
}

template <class T>
const T& Checkpoint::attribute(const std::string& name) const {
  auto it = header.attributes.find(name);
  if (it == header.attributes.end()) throw InputError(path + ": missing attribute '" + name + "'");
  if (auto* v = std::get_if<T>(&it->second)) return *v;
  throw InputError(path + ": attribute '" + name + "' has an unexpected type");
}
template const double& Checkpoint::attribute<double>(const std::string&) const;
template const std::int64_t& Checkpoint::attribute<std::int64_t>(const std::string&) const;
template const std::string& Checkpoint::attribute<std::string>(const std::string&) const;

}  // namespace pref::io
