#include "solver/fit/gauge.hpp"

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>

namespace pref {

namespace {

// rows (n x J, row-major) <- rows M.
void transform_rows(double* rows, std::size_t n, int J, const Eigen::MatrixXd& M) {
  Eigen::VectorXd tmp(J);
  for (std::size_t r = 0; r < n; ++r) {
    Eigen::Map<Eigen::RowVectorXd> row(rows + r * J, J);
    tmp.noalias() = M.transpose() * row.transpose();
    row = tmp.transpose();
  }
}

// The state's rows that turn with U (rows times Au) and with Z (times Az), ghost rows with the
// same arithmetic as their owners'.
void transform_state(FitContext& ctx, const Eigen::MatrixXd& Au, const Eigen::MatrixXd& Az,
                     std::vector<double>* u_more, std::vector<double>* z_more) {
  const int J = ctx.J;
  Factors& f = ctx.cur.factors;
  transform_rows(f.U.data(), f.U.size() / J, J, Au);
  transform_rows(f.Z.data(), f.Z.size() / J, J, Az);
  transform_rows(ctx.zghost.data(), ctx.zghost.size() / J, J, Az);
  if (u_more) transform_rows(u_more->data(), u_more->size() / J, J, Au);
  if (z_more) transform_rows(z_more->data(), z_more->size() / J, J, Az);
  ctx.ughost_fresh = false;
}

}  // namespace

void rotate_to_prior_basis(FitContext& ctx, std::vector<double>* u_more,
                           std::vector<double>* z_more) {
  PopulationPrior& p = *ctx.cur.prior;
  const int J = ctx.J;
  const Eigen::Map<const Eigen::MatrixXd> S(p.covariance.data(), J, J);
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(S);
  Eigen::MatrixXd Q(J, J);
  for (int k = 0; k < J; ++k) {
    Eigen::VectorXd v = es.eigenvectors().col(J - 1 - k);
    Eigen::Index at = 0;
    v.cwiseAbs().maxCoeff(&at);
    Q.col(k) = v[at] < 0 ? Eigen::VectorXd(-v) : v;
  }
  transform_state(ctx, Q, Q, u_more, z_more);
  if (ctx.items) ctx.items->rotate(Q);
  if (ctx.residual) ctx.residual->rotate(Q);
  Eigen::VectorXd m = Q.transpose() * Eigen::Map<const Eigen::VectorXd>(p.mean.data(), J);
  p.mean.assign(m.data(), m.data() + J);
  Eigen::MatrixXd c = Q.transpose() * S * Q;
  c = (0.5 * (c + c.transpose())).eval();
  const Eigen::Map<const Eigen::MatrixXd> spread(p.spread.data(), J, J);
  Eigen::MatrixXd sp = Q.transpose() * spread * Q;
  sp = (0.5 * (sp + sp.transpose())).eval();
  p.spread.assign(sp.data(), sp.data() + J * J);
  p.set_covariance(std::vector<double>(c.data(), c.data() + J * J));
}

std::pair<double, double> expand_parameters(FitContext& ctx, std::vector<double>* u_more,
                                            std::vector<double>* z_more) {
  PopulationPrior& p = *ctx.cur.prior;
  const int J = ctx.J;
  const std::vector<double>& Z = ctx.cur.factors.Z;
  // Z^T Z over all ranks (each rank's rows in order, then one allreduce).
  Eigen::MatrixXd G = Eigen::MatrixXd::Zero(J, J);
  for (std::size_t r = 0; r < Z.size() / J; ++r) {
    const Eigen::Map<const Eigen::VectorXd> z(Z.data() + r * J, J);
    G.noalias() += z * z.transpose();
  }
  mpi::allreduce(ctx.comm, std::span<double>(G.data(), std::size_t(J) * J), MPI_SUM);
  G = (0.5 * (G + G.transpose())).eval();
  const Eigen::Map<const Eigen::MatrixXd> Sigma(p.covariance.data(), J, J);
  const Eigen::Map<const Eigen::MatrixXd> S(p.spread.data(), J, J);
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(Sigma);
  const Eigen::MatrixXd& Q = es.eigenvectors();
  const Eigen::MatrixXd Sq = Q.transpose() * S * Q, Gq = Q.transpose() * G * Q;
  const double n = static_cast<double>(p.users);
  Eigen::VectorXd a(J);
  for (int j = 0; j < J; ++j) {
    const double denom = Sq(j, j) / es.eigenvalues()[j] + ctx.cfg.mu_z * Gq(j, j);
    a[j] = denom > 0 && n > 0 ? std::sqrt(n / denom) : 1.0;
    if (!std::isfinite(a[j]) || !(a[j] > 0)) a[j] = 1.0;
  }
  // u -> A^-1 u, z -> A z (A symmetric): rows times A^-1 and A.
  const Eigen::MatrixXd A = Q * a.asDiagonal() * Q.transpose();
  const Eigen::MatrixXd Ai = Q * a.cwiseInverse().asDiagonal() * Q.transpose();
  transform_state(ctx, Ai, A, u_more, z_more);
  if (ctx.items) ctx.items->rotate(A);
  if (ctx.residual) ctx.residual->rotate(A);
  Eigen::VectorXd m = Ai * Eigen::Map<const Eigen::VectorXd>(p.mean.data(), J);
  p.mean.assign(m.data(), m.data() + J);
  Eigen::MatrixXd c = Ai * Sigma * Ai;
  c = (0.5 * (c + c.transpose())).eval();
  p.set_covariance(std::vector<double>(c.data(), c.data() + J * J));
  return {a.minCoeff(), a.maxCoeff()};
}

}  // namespace pref
