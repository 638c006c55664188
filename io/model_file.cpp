#include "io/model_file.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "io/hdf5.hpp"

namespace pref::io {

void write_model(const std::string& path, const mpi::Comm& comm, const ModelHeader& header,
                 const Partition& users, const std::vector<double>& U, const Partition& comparisons,
                 const std::vector<double>& Z, const ModelItems* items,
                 const ModelItems* residual) {
  h5::Handle f;
  mpi::agree(comm, [&] { f = h5::create_file(path, comm); });
  const std::string what = path;
  const hid_t h = f.get();
  write_format(h, kModelFile, what);
  h5::write_attribute<std::uint64_t>(h, "users", header.users, what);
  h5::write_attribute<std::uint64_t>(h, "comparisons", header.comparisons, what);
  h5::write_attribute<std::uint32_t>(h, "rank", header.rank, what);
  h5::write_string_attribute(h, "kind", header.kind, what);
  write_attributes(h, header.attributes, what);
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
  write_factor_rows(h, "user_factors", header.users, header.rank, users, U, comm, what);
  write_factor_rows(h, "comparison_factors", header.comparisons, header.rank, comparisons, Z, comm,
                    what);
  if (items)
    write_factor_rows(h, items->dataset, items->rows.size(), header.rank, items->rows, items->local,
                      comm, what);
  if (residual)
    write_factor_rows(h, residual->dataset, residual->rows.size(), header.rank, residual->rows,
                      residual->local, comm, what);
  if (!header.prior_mean.empty()) {
    h5::Handle g = h5::create_group(h, "prior", what);
    h5::write_string_attribute(g.get(), "kind", "population", what);
    h5::write_attribute<std::uint64_t>(g.get(), "users", header.prior_users, what);
    write_replicated(g.get(), "mean", std::array<hsize_t, 1>{header.rank}, header.prior_mean, comm,
                     what + ": /prior");
    write_replicated(g.get(), "covariance", std::array<hsize_t, 2>{header.rank, header.rank},
                     header.prior_covariance, comm, what + ": /prior");
  }
  h5::finish_file(f, path, comm);
}

ModelHeader read_model_header(const std::string& path, const mpi::Comm& comm) {
  ModelHeader hd;
  const OpenedFile f = open_pref_file(path, kModelFile, comm, "--model");
  mpi::agree(comm, [&] {
    const hid_t h = f.file.get();
    const std::string what = path + ": /";
    hd.users = h5::read_attribute<std::uint64_t>(h, "users", what);
    hd.comparisons = h5::read_attribute<std::uint64_t>(h, "comparisons", what);
    hd.rank = h5::read_attribute<std::uint32_t>(h, "rank", what);
    hd.kind = h5::read_string_attribute(h, "kind", what);
    check_factor_dataset(h, "user_factors", hd.users, hd.rank, path);
    check_factor_dataset(h, "comparison_factors", hd.comparisons, hd.rank, path);
    if (h5::has_attribute(h, "calibration_scale")) {
      hd.calibration_scale = h5::read_attribute<double>(h, "calibration_scale", what);
      if (!(std::isfinite(hd.calibration_scale) && hd.calibration_scale >= 0))
        throw InputError(
            fmt::format("{}: attribute 'calibration_scale' is {}, expected a finite "
                        "number >= 0",
                        path, hd.calibration_scale));
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
  read_factor_rows(f.get(), "user_factors", m.header.rank, users, m.U, comm, path);
  read_factor_rows(f.get(), "comparison_factors", m.header.rank, comparisons, m.Z, comm, path);
  return m;
}

}  // namespace pref::io
