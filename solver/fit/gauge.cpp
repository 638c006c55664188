#include "solver/fit/gauge.hpp"

#include <Eigen/Eigenvalues>
#include <Eigen/SVD>
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

// The prior's numbers turned by the orthogonal Q: mean <- Q^T mean, covariance <- Q^T S Q and
// spread <- Q^T spread Q (symmetrized). Returns the turned covariance; the caller decides
// whether to derive its precision (set_covariance).
std::vector<double> turn_prior(PopulationPrior& p, int J, const Eigen::MatrixXd& Q) {
  Eigen::VectorXd m = Q.transpose() * Eigen::Map<const Eigen::VectorXd>(p.mean.data(), J);
  p.mean.assign(m.data(), m.data() + J);
  const Eigen::Map<const Eigen::MatrixXd> S(p.covariance.data(), J, J);
  Eigen::MatrixXd c = Q.transpose() * S * Q;
  c = (0.5 * (c + c.transpose())).eval();
  const Eigen::Map<const Eigen::MatrixXd> spread(p.spread.data(), J, J);
  Eigen::MatrixXd sp = Q.transpose() * spread * Q;
  sp = (0.5 * (sp + sp.transpose())).eval();
  p.spread.assign(sp.data(), sp.data() + J * J);
  return std::vector<double>(c.data(), c.data() + J * J);
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
  p.set_covariance(turn_prior(p, J, Q));
}

void align_to(const mpi::Comm& comm, int J, Snapshot& a, const Snapshot& b) {
  Eigen::MatrixXd M = Eigen::MatrixXd::Zero(J, J);
  auto add = [&M, J](const std::vector<double>& x, const std::vector<double>& y) {
    for (std::size_t r = 0; r < x.size() / J; ++r)
      M.noalias() += Eigen::Map<const Eigen::VectorXd>(x.data() + r * J, J) *
                     Eigen::Map<const Eigen::RowVectorXd>(y.data() + r * J, J);
  };
  add(a.factors.U, b.factors.U);
  add(a.factors.Z, b.factors.Z);
  mpi::allreduce(comm, std::span<double>(M.data(), std::size_t(J) * J), MPI_SUM);
  const Eigen::JacobiSVD<Eigen::MatrixXd> svd(M, Eigen::ComputeFullU | Eigen::ComputeFullV);
  const Eigen::MatrixXd Q = svd.matrixU() * svd.matrixV().transpose();
  transform_rows(a.factors.U.data(), a.factors.U.size() / J, J, Q);
  transform_rows(a.factors.Z.data(), a.factors.Z.size() / J, J, Q);
  if (a.prior) a.prior->covariance = turn_prior(*a.prior, J, Q);
}

namespace {
// Z^T Z over all ranks (each rank's rows in order, then one allreduce).
Eigen::MatrixXd gram_of_z(FitContext& ctx) {
  const int J = ctx.J;
  const std::vector<double>& Z = ctx.cur.factors.Z;
  Eigen::MatrixXd G = Eigen::MatrixXd::Zero(J, J);
  for (std::size_t r = 0; r < Z.size() / J; ++r) {
    const Eigen::Map<const Eigen::VectorXd> z(Z.data() + r * J, J);
    G.noalias() += z * z.transpose();
  }
  mpi::allreduce(ctx.comm, std::span<double>(G.data(), std::size_t(J) * J), MPI_SUM);
  return (0.5 * (G + G.transpose())).eval();
}

}  // namespace

void balance_start(FitContext& ctx) {
  const int J = ctx.J;
  // The RMS margin of the training labels, then U and Z scaled alike to make it 1.
  ctx.fetch_z();
  const LocalRows& users = ctx.layout.users;
  std::vector<double>& Uw = ctx.cur.factors.U;
  double sum = 0;
  for (std::size_t r = 0; r < users.rows(); ++r)
    for (const std::uint32_t g : users.idx_of(r)) {
      double m = 0;
      for (int j = 0; j < J; ++j) m += Uw[r * J + j] * ctx.zghost[std::size_t(g) * J + j];
      sum += m * m;
    }
  sum = mpi::allreduce_sum(ctx.comm, sum);
  const double rms = ctx.layout.labels ? std::sqrt(sum / double(ctx.layout.labels)) : 0.0;
  if (rms > 0 && std::isfinite(rms)) {
    const double c = 1.0 / std::sqrt(rms);
    for (double& v : Uw) v *= c;
    for (double& v : ctx.cur.factors.Z) v *= c;
  }
  const std::vector<double>& U = ctx.cur.factors.U;
  Eigen::MatrixXd Gu = Eigen::MatrixXd::Zero(J, J);
  for (std::size_t r = 0; r < U.size() / J; ++r) {
    const Eigen::Map<const Eigen::VectorXd> u(U.data() + r * J, J);
    Gu.noalias() += u * u.transpose();
  }
  mpi::allreduce(ctx.comm, std::span<double>(Gu.data(), std::size_t(J) * J), MPI_SUM);
  Gu = (0.5 * (Gu + Gu.transpose())).eval();
  const Eigen::MatrixXd Gz = gram_of_z(ctx);
  // (Every rank holds the same Gu and Gz, so every rank decides alike.)
  const Eigen::LLT<Eigen::MatrixXd> llt(Gu);
  if (llt.info() != Eigen::Success) return;
  const Eigen::MatrixXd L = llt.matrixL();
  Eigen::MatrixXd M = L.transpose() * Gz * L;
  M = (0.5 * (M + M.transpose())).eval();
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(M);
  const Eigen::VectorXd lambda2 = es.eigenvalues();
  if (!(lambda2.minCoeff() > 0) || !lambda2.allFinite()) return;
  const Eigen::VectorXd scale = lambda2.array().sqrt().sqrt().inverse().matrix();  // Lambda^-1/2
  const Eigen::MatrixXd T = L * es.eigenvectors() * scale.asDiagonal();
  const Eigen::MatrixXd Ti = T.inverse();
  // U <- U T^-T, Z <- Z T; then the users' ghost Z rows again.
  transform_state(ctx, Ti.transpose(), T, nullptr, nullptr);
  ctx.fetch_z();
}

}  // namespace pref
