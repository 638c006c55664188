#include "io/model_file.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <filesystem>

#include "io/hdf5.hpp"

namespace pref::io {

void write_model(const std::string& path, const mpi::Comm& comm, const ModelHeader& header,
                 const Partition& users, const std::vector<double>& U, const Partition& comparisons,
                 const std::vector<double>& Z, const ModelItems* items) {
  h5::Handle f;
  mpi::agree(comm, [&] { f = h5::create_file(path, comm); });
  const std::string what = path;
  const hid_t h = f.get();
  h5::write_string_attribute(h, "format", kModelFormat, what);
  h5::write_attribute<std::uint32_t>(h, "format_version", kModelFormatVersion, what);
  h5::write_attribute<std::uint64_t>(h, "users", header.users, what);
  h5::write_attribute<std::uint64_t>(h, "comparisons", header.comparisons, what);
  h5::write_attribute<std::uint32_t>(h, "rank", header.rank, what);
  h5::write_string_attribute(h, "kind", header.kind, what);
  for (const auto& [name, v] : header.attributes) {
    if (auto* d = std::get_if<double>(&v))
      h5::write_attribute<double>(h, name, *d, what);
    else if (auto* i = std::get_if<std::int64_t>(&v))
      h5::write_attribute<std::int64_t>(h, name, *i, what);
    else
      h5::write_string_attribute(h, name, std::get<std::string>(v), what);
  }
  {
    // One fixed-length string per sweep (a JSON object): a dataset, since attributes are
    // limited to 64 KiB and long fits have thousands of sweeps.
    std::vector<std::string> lines;
    std::size_t width = 1;
    for (std::size_t a = 0; a < header.history_json.size();) {
      std::size_t b = header.history_json.find('\n', a);
      if (b == std::string::npos) b = header.history_json.size();
      if (b > a) {
        lines.push_back(header.history_json.substr(a, b - a));
        width = std::max(width, b - a);
      }
      a = b + 1;
    }
    h5::Handle d = h5::create_string_dataset(h, "history", lines.size(), width, what);
    std::string buf(lines.size() * width, '\0');
    for (std::size_t i = 0; i < lines.size(); ++i)
      buf.replace(i * width, lines[i].size(), lines[i]);
    const h5::Handle type = h5::string_type(width, what);
    const std::uint64_t mine = comm.rank() == 0 ? lines.size() : 0;
    h5::write_rows_raw(d.get(), type.get(), 0, mine, buf.data(), comm, what + ": /history");
  }
  const int me = comm.rank();
  const hsize_t ud[2] = {header.users, header.rank};
  h5::Handle du = h5::create_dataset(h, "user_factors", H5T_IEEE_F64LE, ud, what);
  h5::write_rows<double>(du.get(), users.begin(me), users.count(me), U, comm,
                         what + ": /user_factors");
  const hsize_t zd[2] = {header.comparisons, header.rank};
  h5::Handle dz = h5::create_dataset(h, "comparison_factors", H5T_IEEE_F64LE, zd, what);
  h5::write_rows<double>(dz.get(), comparisons.begin(me), comparisons.count(me), Z, comm,
                         what + ": /comparison_factors");
  du.reset();
  dz.reset();
  if (items) {
    const hsize_t id[2] = {items->rows.size(), header.rank};
    h5::Handle di = h5::create_dataset(h, items->dataset, H5T_IEEE_F64LE, id, what);
    h5::write_rows<double>(di.get(), items->rows.begin(me), items->rows.count(me), items->local,
                           comm, what + ": /" + items->dataset);
  }
  if (!header.prior_mean.empty()) {
    h5::Handle g = h5::create_group(h, "prior", what);
    h5::write_string_attribute(g.get(), "kind", "population", what);
    h5::write_attribute<std::uint64_t>(g.get(), "users", header.prior_users, what);
    const hsize_t md[1] = {header.rank};
    h5::Handle dm = h5::create_dataset(g.get(), "mean", H5T_IEEE_F64LE, md, what);
    h5::write_rows<double>(dm.get(), 0, me == 0 ? header.rank : 0, header.prior_mean, comm,
                           what + ": /prior/mean");
    const hsize_t cd[2] = {header.rank, header.rank};
    h5::Handle dc = h5::create_dataset(g.get(), "covariance", H5T_IEEE_F64LE, cd, what);
    h5::write_rows<double>(dc.get(), 0, me == 0 ? header.rank : 0, header.prior_covariance, comm,
                           what + ": /prior/covariance");
  }
  h5::finish_file(f, path, comm);
}

ModelHeader read_model_header(const std::string& path, const mpi::Comm& comm) {
  ModelHeader hd;
  mpi::agree(comm, [&] {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) throw InputError(path + ": no such file (--model)");
    if (H5Fis_hdf5(path.c_str()) <= 0) {
      h5::take_error_message();
      throw InputError(path + ": not an HDF5 file (--model)");
    }
  });
  h5::Handle f;
  mpi::agree(comm, [&] { f = h5::open_file(path, comm); });
  mpi::agree(comm, [&] {
    const hid_t h = f.get();
    const std::string what = path + ": /";
    if (!h5::has_attribute(h, "format") ||
        h5::read_string_attribute(h, "format", what) != kModelFormat)
      throw InputError(path + ": not a pref model file (attribute 'format' is not '" +
                       std::string(kModelFormat) + "')");
    const auto v = h5::read_attribute<std::int64_t>(h, "format_version", what);
    if (v < 1 || v > static_cast<std::int64_t>(kModelFormatVersion))
      throw InputError(fmt::format("{}: model format_version {} is not supported", path, v));
    hd.users = h5::read_attribute<std::uint64_t>(h, "users", what);
    hd.comparisons = h5::read_attribute<std::uint64_t>(h, "comparisons", what);
    hd.rank = h5::read_attribute<std::uint32_t>(h, "rank", what);
    hd.kind = h5::read_string_attribute(h, "kind", what);
    for (const char* ds : {"user_factors", "comparison_factors"}) {
      if (!h5::exists(h, std::string("/") + ds))
        throw InputError(fmt::format("{}: missing dataset /{}", path, ds));
      h5::Handle d = h5::open_dataset(h, ds, path);
      auto s = h5::shape_of(d.get(), path);
      const std::uint64_t rows = std::string(ds) == "user_factors" ? hd.users : hd.comparisons;
      if (s.dims.size() != 2 || s.dims[0] != rows || s.dims[1] != hd.rank ||
          s.type_class != H5T_FLOAT)
        throw InputError(fmt::format("{}: /{}: expected {} x {} floats", path, ds, rows, hd.rank));
    }
    if (h5::exists(h, "/prior")) {
      h5::Handle g = h5::open_group(h, "prior", path);
      const std::string kind = h5::has_attribute(g.get(), "kind")
                                   ? h5::read_string_attribute(g.get(), "kind", path + ": /prior")
                                   : std::string();
      if (kind != "population")
        throw InputError(
            fmt::format("{}: /prior: attribute 'kind' is '{}', expected 'population'", path, kind));
      const std::uint64_t J = hd.rank;
      for (const char* ds : {"mean", "covariance"}) {
        if (!h5::exists(g.get(), ds))
          throw InputError(fmt::format("{}: missing dataset /prior/{}", path, ds));
        h5::Handle d = h5::open_dataset(g.get(), ds, path);
        const auto s = h5::shape_of(d.get(), path);
        const bool mean = std::string(ds) == "mean";
        const bool ok = s.type_class == H5T_FLOAT && s.dims.size() == (mean ? 1u : 2u) &&
                        s.dims[0] == J && (mean || s.dims[1] == J);
        if (!ok)
          throw InputError(fmt::format("{}: /prior/{}: expected {} float64", path, ds,
                                       mean ? fmt::format("{}", J) : fmt::format("{} x {}", J, J)));
        std::vector<double>& out = mean ? hd.prior_mean : hd.prior_covariance;
        out.resize(mean ? J : J * J);
        h5::read_rows<double>(d.get(), 0, J, out, comm, path + ": /prior/" + ds);
      }
      if (h5::has_attribute(g.get(), "users"))
        hd.prior_users = h5::read_attribute<std::uint64_t>(g.get(), "users", path + ": /prior");
    }
  });
  return hd;
}

ModelFile read_model(const std::string& path, const mpi::Comm& comm, const Partition& users,
                     const Partition& comparisons) {
  ModelFile m;
  m.header = read_model_header(path, comm);
  h5::Handle f = h5::open_file(path, comm);
  const int me = comm.rank();
  const std::uint32_t J = m.header.rank;
  m.U.resize(users.count(me) * J);
  m.Z.resize(comparisons.count(me) * J);
  h5::Handle du = h5::open_dataset(f.get(), "user_factors", path);
  h5::read_rows<double>(du.get(), users.begin(me), users.count(me), m.U, comm, path);
  h5::Handle dz = h5::open_dataset(f.get(), "comparison_factors", path);
  h5::read_rows<double>(dz.get(), comparisons.begin(me), comparisons.count(me), m.Z, comm, path);
  return m;
}

}  // namespace pref::io
