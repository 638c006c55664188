#include "solver/synthetic/reference.hpp"

#include <fmt/core.h>

#include <Eigen/Core>
#include <algorithm>
#include <cmath>

#include "io/hdf5.hpp"
#include "solver/layout/exchange.hpp"
#include "solver/newton/newton.hpp"
#include "solver/prior/moments.hpp"
#include "solver/prior/population_prior.hpp"

namespace pref {

namespace {

// Newton steps of each user's MAP problem: from the prior mean, a few reach the solution to
// rounding (each step ends early once no step length lowers the objective).
constexpr int kMapSteps = 30;

double generator_temperature(const io::LabelFile& data, const mpi::Comm& comm) {
  double t = 1.0;
  mpi::agree(comm, [&] {
    const hid_t h = data.handle();
    if (!h5::exists(h, "/generator")) return;
    h5::Handle g = h5::open_group(h, "/generator", data.path());
    if (h5::has_attribute(g.get(), "temperature"))
      t = h5::read_attribute<double>(g.get(), "temperature", data.path() + ": /generator");
    if (!(t > 0) || !std::isfinite(t))
      throw InputError(
          fmt::format("{}: /generator: temperature {} is not a positive number", data.path(), t));
  });
  return t;
}

}  // namespace

Factors reference_factors(const mpi::Comm& comm, const io::LabelFile& data, Reference kind,
                          const LabelMatrix& train) {
  const Partitions& parts = train.parts;
  const int me = comm.rank();
  mpi::agree(comm, [&] {
    if (!h5::exists(data.handle(), "/truth"))
      throw InputError(data.path() +
                       ": no /truth group (a reference needs a synthetic "
                       "population's ground truth)");
  });
  const double T = generator_temperature(data, comm);
  std::uint64_t R = 0, Ru = 0;
  const std::vector<float> zt =
      io::read_matrix_rows(data.handle(), "/truth/comparison_factors", parts.comparisons.begin(me),
                           parts.comparisons.count(me), &R, comm, data.path());
  const std::vector<float> ut =
      io::read_matrix_rows(data.handle(), "/truth/user_weights", parts.users.begin(me),
                           parts.users.count(me), &Ru, comm, data.path());
  mpi::agree(comm, [&] {
    if (R != Ru || R == 0)
      throw InputError(
          fmt::format("{}: /truth: user weights of {} columns, comparison factors "
                      "of {}",
                      data.path(), Ru, R));
  });
  Factors f;
  f.J = static_cast<int>(R);
  f.Z.resize(zt.size());
  for (std::size_t k = 0; k < zt.size(); ++k) f.Z[k] = zt[k] / T;  // margins u.z / T
  f.U.assign(ut.begin(), ut.end());
  if (kind == Reference::kTruth) return f;

  const int J = f.J;
  // A population's moments as the prior N(mean, covariance) of its rows: in one block, since
  // the balanced partitions do not hold whole blocks (solver/prior/moments.hpp).
  auto moments_prior = [&](const std::vector<double>& rows, const Partition& part) {
    const std::uint64_t n = part.size();
    const Moments m = row_moments(comm, rows, part.begin(me), n, J, std::max<std::uint64_t>(n, 1));
    PopulationPrior prior;
    prior.J = J;
    prior.mean.assign(m.mean.data(), m.mean.data() + J);
    prior.set_covariance(std::vector<double>(m.covariance.data(), m.covariance.data() + J * J));
    return prior;
  };
  const PopulationPrior p = moments_prior(f.U, parts.users);
  RowWorkspace ws;
  std::vector<std::uint32_t> idx;
  if (kind == Reference::kKnownUsers) {
    // Each comparison's MAP estimate from its training labels with the true users, under the
    // true comparison factors' moments as its prior; the users' MAP below then uses these.
    const PopulationPrior pz = moments_prior(f.Z, parts.comparisons);
    const Csr& cols = train.by_comparison;
    GhostPlan uplan(comm, IdSet({std::span<const std::uint32_t>(cols.col)}), parts.users);
    std::vector<double> ughost;
    uplan.fetch(comm, f.U, J, ughost);
    const RowPrior rz(pz.precision.data(), pz.mean.data());
    for (std::size_t r = 0; r < cols.rows(); ++r) {
      idx.clear();
      for (std::uint64_t k = cols.ptr[r]; k < cols.ptr[r + 1]; ++k)
        idx.push_back(uplan.index_of(cols.col[k]));
      double* z = f.Z.data() + r * J;
      for (int a = 0; a < J; ++a) z[a] = pz.mean[a];
      solve_row(z, J, ughost.data(), idx,
                std::span<const float>(cols.val.data() + cols.ptr[r], cols.row_size(r)), rz,
                kMapSteps, ws);
    }
  }

  // The true population's moments as the prior, then each user's MAP with the (true or
  // estimated) Z.
  const Csr& rows = train.by_user;
  GhostPlan plan(comm, IdSet({std::span<const std::uint32_t>(rows.col)}), parts.comparisons);
  std::vector<double> zghost;
  plan.fetch(comm, f.Z, J, zghost);
  const RowPrior rp(p.precision.data(), p.mean.data());
  for (std::size_t r = 0; r < rows.rows(); ++r) {
    idx.clear();
    for (std::uint64_t k = rows.ptr[r]; k < rows.ptr[r + 1]; ++k)
      idx.push_back(plan.index_of(rows.col[k]));
    double* u = f.U.data() + r * J;
    for (int a = 0; a < J; ++a) u[a] = p.mean[a];
    solve_row(u, J, zghost.data(), idx,
              std::span<const float>(rows.val.data() + rows.ptr[r], rows.row_size(r)), rp,
              kMapSteps, ws);
  }
  return f;
}

}  // namespace pref
