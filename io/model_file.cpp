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
  h5::write_string_attribute(h, "kind", kModelKindNames.name(header.kind), what);
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

namespace {

// The first entry (a, b) with |C_ab - C_ba| beyond round-off of the matrix's scale, or the first
// pivot of a Cholesky factorization that is not positive: the reason a covariance is not one.
std::string covariance_problem(const std::vector<double>& C, std::uint64_t J) {
  double scale = 0;
  for (double x : C) scale = std::max(scale, std::abs(x));
  for (std::uint64_t a = 0; a < J; ++a)
    for (std::uint64_t b = a + 1; b < J; ++b)
      if (std::abs(C[a * J + b] - C[b * J + a]) > kSymmetryTolerance * scale)
        return fmt::format("not symmetric: entry ({}, {}) is {} but entry ({}, {}) is {}", a, b,
                           C[a * J + b], b, a, C[b * J + a]);
  std::vector<double> L(J * J, 0.0);  // Cholesky of the lower triangle
  for (std::uint64_t j = 0; j < J; ++j) {
    double d = C[j * J + j];
    for (std::uint64_t k = 0; k < j; ++k) d -= L[j * J + k] * L[j * J + k];
    if (!(d > 0)) return fmt::format("not positive definite (pivot {} is {})", j, d);
    L[j * J + j] = std::sqrt(d);
    for (std::uint64_t i = j + 1; i < J; ++i) {
      double v = C[i * J + j];
      for (std::uint64_t k = 0; k < j; ++k) v -= L[i * J + k] * L[j * J + k];
      L[i * J + j] = v / L[j * J + j];
    }
  }
  return {};
}

}  // namespace

ModelHeader read_model_header(const std::string& path, const mpi::Comm& comm, bool as_input) {
  ModelHeader hd;
  const OpenedFile f = open_pref_file(path, kModelFile, comm, "--model", as_input);
  mpi::agree(comm, [&] {
    const hid_t h = f.file.get();
    const std::string what = path + ": /";
    hd.users = h5::read_attribute<std::uint64_t>(h, "users", what);
    hd.comparisons = h5::read_attribute<std::uint64_t>(h, "comparisons", what);
    hd.rank = h5::read_attribute<std::uint32_t>(h, "rank", what);
    hd.kind = kModelKindNames.parse(h5::read_string_attribute(h, "kind", what),
                                    path + ": attribute 'kind'");
    if (hd.rank < 1 || hd.rank > kMaxRank)
      throw InputError(
          fmt::format("{}: attribute 'rank' is {}, expected 1..{}", path, hd.rank, kMaxRank));
    check_factor_dataset(h, "user_factors", hd.users, hd.rank, path);
    check_factor_dataset(h, "comparison_factors", hd.comparisons, hd.rank, path);
    hd.objects = h5::link_names(h, what);
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
      hd.prior_mean = read_small_floats(g.get(), "mean", {J}, comm, path);
      hd.prior_covariance = read_small_floats(g.get(), "covariance", {J, J}, comm, path);
      const std::string problem = covariance_problem(hd.prior_covariance, J);
      if (!problem.empty())
        throw InputError(fmt::format("{}: /prior/covariance: {}", path, problem));
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
  h5::Handle f;
  mpi::agree(comm, [&] { f = h5::open_file(path, comm); });
  read_factor_rows(f.get(), "user_factors", m.header.rank, users, m.U, comm, path);
  read_factor_rows(f.get(), "comparison_factors", m.header.rank, comparisons, m.Z, comm, path);
  return m;
}

Attributes read_model_attributes(const std::string& path, const mpi::Comm& comm,
                                 const std::vector<std::string>& names) {
  Attributes out;
  h5::Handle f;
  mpi::agree(comm, [&] { f = h5::open_file(path, comm); });
  mpi::agree(comm, [&] {
    for (const std::string& name : names)
      if (h5::has_attribute(f.get(), name))
        out[name] = read_any_attribute(f.get(), name, path + ": /");
  });
  return out;
}

std::vector<double> read_model_matrix(const std::string& path, const mpi::Comm& comm,
                                      const std::string& dataset, std::uint32_t J,
                                      std::uint64_t* rows) {
  std::vector<double> out;
  h5::Handle f;
  mpi::agree(comm, [&] { f = h5::open_file(path, comm); });
  mpi::agree(comm, [&] {
    std::vector<std::uint64_t> dims;
    out = read_small_floats(f.get(), dataset, {0, J}, comm, path, &dims);
    if (rows) *rows = dims[0];
  });
  return out;
}

std::uint64_t model_comparison_checksum(const std::string& path, const mpi::Comm& comm,
                                        const ModelHeader& hd) {
  const Partition rows = Partition::uniform(hd.comparisons, comm.size());
  h5::Handle f;
  mpi::agree(comm, [&] { f = h5::open_file(path, comm); });
  std::vector<double> Z;
  read_factor_rows(f.get(), "comparison_factors", hd.rank, rows, Z, comm, path);
  return factor_checksum(comm, rows, Z, hd.rank);
}

}  // namespace pref::io
