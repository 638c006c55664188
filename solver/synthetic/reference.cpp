#include "solver/synthetic/reference.hpp"

#include <fmt/core.h>

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <algorithm>
#include <cmath>

#include "solver/base/log.hpp"
#include "solver/layout/exchange.hpp"
#include "solver/newton/newton.hpp"
#include "solver/prior/moments.hpp"
#include "solver/prior/population_prior.hpp"

namespace pref {

namespace {

// Newton steps of each user's MAP problem: from the prior mean, a few reach the solution to
// rounding (each step ends early once no step length lowers the objective).
constexpr int kMapSteps = 30;

// The covariance of a true population made positive definite: as it is when it is, else plus
// kRidge times its mean variance (or kRidge, when every row is the same) on the diagonal, with
// the reason logged. A sample of fewer rows than J + 1 (3 users of J = 7: a valid population of
// `generate --users 3`) or rows on a subspace give a singular covariance, whose prior would not
// exist; the ridge keeps the reference defined and close to that prior.
constexpr double kRidge = 1e-6;

PopulationPrior stabilized_prior(const mpi::Comm& comm, const Moments& m, std::uint64_t n,
                                 const std::string& what) {
  const int J = static_cast<int>(m.mean.size());
  PopulationPrior prior;
  prior.J = J;
  prior.mean.assign(m.mean.data(), m.mean.data() + J);
  std::vector<double> cov(m.covariance.data(), m.covariance.data() + J * J);
  Eigen::LLT<Eigen::MatrixXd> llt(m.covariance);
  if (llt.info() == Eigen::Success && m.covariance.allFinite()) {
    prior.set_covariance(std::move(cov));
    return prior;
  }
  const double mean_variance = m.covariance.trace() / J;
  const double ridge =
      kRidge * (mean_variance > 0 && std::isfinite(mean_variance) ? mean_variance : 1.0);
  for (int a = 0; a < J; ++a) cov[a * J + a] += ridge;
  log::warn(comm,
            "{}: the covariance of the {} true rows is singular (J = {}, mean variance {:.3g}); "
            "the prior adds {:.3g} to its diagonal",
            what, n, J, mean_variance, ridge);
  try {
    prior.set_covariance(std::move(cov));
  } catch (const Error&) {
    throw InputError(fmt::format(
        "{}: the covariance of the {} true rows is not positive definite, even with {:.3g} "
        "added to its diagonal (rows of extreme values?)",
        what, n, ridge));
  }
  return prior;
}

}  // namespace

Factors reference_factors(const mpi::Comm& comm, const io::LabelFile& data, Reference kind,
                          const LabelMatrix& train) {
  const Partitions& parts = train.parts;
  const int me = comm.rank();
  mpi::agree(comm, [&] {
    if (!data.has_truth())
      throw InputError(data.path() +
                       ": no /truth group (a reference needs a synthetic "
                       "population's ground truth)");
  });
  const double T = data.generator(comm).temperature;
  std::uint64_t R = 0, Ru = 0;
  const std::vector<float> zt =
      data.read_truth("comparison_factors", data.comparisons(), parts.comparisons.begin(me),
                      parts.comparisons.count(me), &R, comm);
  const std::vector<float> ut = data.read_truth("user_weights", data.users(), parts.users.begin(me),
                                                parts.users.count(me), &Ru, comm);
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
  auto moments_prior = [&](const std::vector<double>& rows, const Partition& part,
                           const std::string& what) {
    const std::uint64_t n = part.size();
    const Moments m = row_moments(comm, rows, part.begin(me), n, J, std::max<std::uint64_t>(n, 1));
    PopulationPrior prior;
    mpi::agree(comm, [&] { prior = stabilized_prior(comm, m, n, what); });
    return prior;
  };
  const PopulationPrior p = moments_prior(f.U, parts.users, data.path() + ": /truth/user_weights");
  RowWorkspace ws;
  std::vector<std::uint32_t> idx;
  if (kind == Reference::kKnownUsers) {
    // Each comparison's MAP estimate from its training labels with the true users, under the
    // true comparison factors' moments as its prior; the users' MAP below then uses these.
    const PopulationPrior pz =
        moments_prior(f.Z, parts.comparisons, data.path() + ": /truth/comparison_factors");
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
