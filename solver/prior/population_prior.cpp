#include "solver/prior/population_prior.hpp"

#include <fmt/core.h>

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <utility>

#include "solver/base/error.hpp"

namespace pref {

namespace {

using Matrix = Eigen::MatrixXd;

Matrix symmetric_from_lower(int J, std::span<const double> lower_colmajor) {
  Matrix m(J, J);
  for (int b = 0; b < J; ++b)
    for (int a = b; a < J; ++a) m(a, b) = m(b, a) = lower_colmajor[b * J + a];
  return m;
}

}  // namespace

PopulationPrior PopulationPrior::isotropic(int J, double mu, std::uint64_t users) {
  PopulationPrior p;
  p.J = J;
  p.mean.assign(J, 0.0);
  std::vector<double> cov(std::size_t(J) * J, 0.0);
  for (int a = 0; a < J; ++a) cov[a * J + a] = 1.0 / mu;
  p.set_covariance(std::move(cov));
  p.users = users;
  p.spread.assign(std::size_t(J) * J, 0.0);
  for (int a = 0; a < J; ++a) p.spread[a * J + a] = double(users) / mu;
  return p;
}

PopulationPrior PopulationPrior::of_start(const mpi::Comm& comm, int J, std::span<const double> U,
                                          std::uint64_t users, double mu) {
  const std::vector<double> zero(std::size_t(J) * J, 0.0);
  PopulationPrior p;
  try {
    p = update_prior(comm, J, U, zero, users);
  } catch (const Error&) {
    // (Every rank computed the same replicated covariance, so every rank falls back alike.)
    return isotropic(J, mu, users);
  }
  for (std::size_t k = 0; k < p.spread.size(); ++k) p.spread[k] = double(users) * p.covariance[k];
  return p;
}

void PopulationPrior::set_covariance(std::vector<double> cov) {
  const Eigen::Map<const Matrix> c(cov.data(), J, J);
  Eigen::LLT<Matrix> llt(c);
  if (llt.info() != Eigen::Success || !c.allFinite())
    throw Error(
        fmt::format("population prior: the covariance is not positive definite "
                    "(trace {})",
                    c.trace()));
  const Matrix L = llt.matrixL();
  log_det = 2.0 * L.diagonal().array().log().sum();
  Matrix P = llt.solve(Matrix::Identity(J, J));
  P = (0.5 * (P + P.transpose())).eval();  // exactly symmetric
  precision.assign(P.data(), P.data() + P.size());
  covariance = std::move(cov);
}

double PopulationPrior::trace() const {
  double t = 0;
  for (int a = 0; a < J; ++a) t += covariance[a * J + a];
  return t;
}

std::vector<double> PopulationPrior::eigenvalues() const {
  Eigen::SelfAdjointEigenSolver<Matrix> es(Eigen::Map<const Matrix>(covariance.data(), J, J),
                                           Eigen::EigenvaluesOnly);
  std::vector<double> ev(es.eigenvalues().data(), es.eigenvalues().data() + J);
  std::sort(ev.rbegin(), ev.rend());
  return ev;
}

PopulationPrior update_prior(const mpi::Comm& comm, int J, std::span<const double> U,
                             std::span<const double> spread_lower, std::uint64_t users) {
  const std::size_t rows = U.size() / J;
  const double n = static_cast<double>(users);
  std::vector<double> mean(J, 0.0);
  for (std::size_t r = 0; r < rows; ++r)
    for (int a = 0; a < J; ++a) mean[a] += U[r * J + a];
  mpi::allreduce(comm, std::span<double>(mean), MPI_SUM);
  for (double& v : mean) v /= n;
  // Lower triangles, column-major: the centred second moments, then the spread.
  const std::size_t JJ = std::size_t(J) * J;
  std::vector<double> sums(2 * JJ, 0.0);
  {
    // By blocks of rows, each block's C^T C a matrix product (rows in order, blocks in order).
    constexpr std::size_t kRows = 256;
    Matrix C(kRows, J), M = Matrix::Zero(J, J);
    for (std::size_t r0 = 0; r0 < rows; r0 += kRows) {
      const std::size_t n = std::min(kRows, rows - r0);
      for (std::size_t k = 0; k < n; ++k)
        for (int a = 0; a < J; ++a) C(k, a) = U[(r0 + k) * J + a] - mean[a];
      M.noalias() += C.topRows(n).transpose() * C.topRows(n);
    }
    for (int b = 0; b < J; ++b)
      for (int a = b; a < J; ++a) sums[b * J + a] = M(a, b);
  }
  for (int b = 0; b < J; ++b)
    for (int a = b; a < J; ++a) sums[JJ + b * J + a] = spread_lower[b * J + a];
  mpi::allreduce(comm, std::span<double>(sums), MPI_SUM);
  PopulationPrior p;
  p.J = J;
  p.mean = std::move(mean);
  p.users = users;
  const Matrix outer = symmetric_from_lower(J, std::span<const double>(sums.data(), JJ));
  const Matrix spread = symmetric_from_lower(J, std::span<const double>(sums.data() + JJ, JJ));
  const Matrix cov = (outer + spread) / n;
  p.set_covariance(std::vector<double>(cov.data(), cov.data() + JJ));
  p.spread.assign(spread.data(), spread.data() + JJ);
  return p;
}

RelaxedPrior relax_prior(const PopulationPrior& previous, PopulationPrior em, double relax) {
  if (!(relax > 1.0)) return {std::move(em), 1.0};
  const int J = em.J;
  const Eigen::Map<const Matrix> S0(previous.covariance.data(), J, J);
  const Eigen::Map<const Matrix> S1(em.covariance.data(), J, J);
  // Eigenvalues in ascending order, both.
  Eigen::SelfAdjointEigenSolver<Matrix> e0(S0, Eigen::EigenvaluesOnly), e1(S1);
  if (e0.info() != Eigen::Success || e1.info() != Eigen::Success ||
      !(e0.eigenvalues().minCoeff() > 0) || !(e1.eigenvalues().minCoeff() > 0))
    return {std::move(em), 1.0};
  const Eigen::VectorXd log0 = e0.eigenvalues().array().log(),
                        log1 = e1.eigenvalues().array().log();
  // The safeguard's reference: F(m0, S0) (per user, times 2, without constants), from the
  // previous prior's own precision and log-determinant.
  const Eigen::VectorXd d = Eigen::Map<const Eigen::VectorXd>(em.mean.data(), J) -
                            Eigen::Map<const Eigen::VectorXd>(previous.mean.data(), J);
  const Eigen::Map<const Matrix> P0(previous.precision.data(), J, J);
  const double before = P0.cwiseProduct(S1 + d * d.transpose()).sum() + previous.log_det;
  double w = relax;
  for (int halving = 0; halving <= 4; ++halving, w = 1.0 + 0.5 * (w - 1.0)) {
    // S = V1 diag(s) V1^T with log s = w log lambda1 + (1 - w) log lambda0:
    // F(m1, S) = sum lambda1 / s + sum log s.
    const Eigen::VectorXd log_s = w * log1 + (1.0 - w) * log0;
    const Eigen::VectorXd s = log_s.array().exp();
    const double after = (e1.eigenvalues().array() / s.array()).sum() + log_s.sum();
    if (!(after <= before)) continue;
    Matrix cov = e1.eigenvectors() * s.asDiagonal() * e1.eigenvectors().transpose();
    cov = (0.5 * (cov + cov.transpose())).eval();
    PopulationPrior p = em;
    try {
      p.set_covariance(std::vector<double>(cov.data(), cov.data() + std::size_t(J) * J));
    } catch (const Error&) {
      continue;  // not positive definite to working precision: a shorter step
    }
    return {std::move(p), w};
  }
  return {std::move(em), 1.0};
}

double prior_rows_term(const PopulationPrior& p, std::span<const double> U) {
  const int J = p.J;
  const Eigen::Map<const Matrix> P(p.precision.data(), J, J);
  const Eigen::Map<const Eigen::VectorXd> m(p.mean.data(), J);
  Eigen::VectorXd c(J);
  double s = 0;
  for (std::size_t r = 0; r < U.size() / J; ++r) {
    c = Eigen::Map<const Eigen::VectorXd>(U.data() + r * J, J) - m;
    s += 0.5 * c.dot(P * c);
  }
  return s;
}

double prior_constant(const PopulationPrior& p) {
  const int J = p.J;
  const Eigen::Map<const Matrix> P(p.precision.data(), J, J);
  const Eigen::Map<const Matrix> S(p.spread.data(), J, J);
  return 0.5 * (P.cwiseProduct(S)).sum() + 0.5 * static_cast<double>(p.users) * p.log_det;
}

PriorSummary summarize(const PopulationPrior& p, int top) {
  PriorSummary s;
  s.trace = p.trace();
  std::vector<double> ev = p.eigenvalues();
  ev.resize(std::min<std::size_t>(ev.size(), std::max(0, top)));
  s.top_eigenvalues = std::move(ev);
  return s;
}

std::vector<double> prior_to_array(const PopulationPrior& p) {
  std::vector<double> a;
  a.insert(a.end(), p.mean.begin(), p.mean.end());
  a.insert(a.end(), p.covariance.begin(), p.covariance.end());
  a.insert(a.end(), p.spread.begin(), p.spread.end());
  a.push_back(static_cast<double>(p.users));
  return a;
}

PopulationPrior prior_from_array(int J, std::span<const double> a, const std::string& what) {
  const std::size_t JJ = std::size_t(J) * J;
  if (a.size() != J + 2 * JJ + 1)
    throw InputError(fmt::format("{}: population prior of {} numbers, expected {} for rank {}",
                                 what, a.size(), J + 2 * JJ + 1, J));
  PopulationPrior p;
  p.J = J;
  p.mean.assign(a.begin(), a.begin() + J);
  try {
    p.set_covariance(std::vector<double>(a.begin() + J, a.begin() + J + JJ));
  } catch (const Error& e) {
    throw InputError(what + ": " + e.what());
  }
  p.spread.assign(a.begin() + J + JJ, a.begin() + J + 2 * JJ);
  p.users = static_cast<std::uint64_t>(a.back());
  return p;
}

}  // namespace pref
