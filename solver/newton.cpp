#include "solver/newton.hpp"

#include <Eigen/Cholesky>
#include <algorithm>

namespace pref {

namespace {
// Labels are processed in chunks so that a comparison with millions of labels needs no large
// gather buffer.
constexpr std::size_t kChunk = 512;
}  // namespace

bool newton_direction(Eigen::MatrixXd& H, const Eigen::VectorXd& g, Eigen::VectorXd& d) {
  Eigen::LLT<Eigen::MatrixXd, Eigen::Lower> llt(H);
  if (llt.info() == Eigen::Success) {
    d = -llt.solve(g);
    return d.allFinite();
  }
  const int J = static_cast<int>(H.rows());
  double lambda = std::max(1e-12, 1e-8 * H.diagonal().cwiseAbs().sum() / J);
  for (int tries = 0; tries < 40; ++tries, lambda *= 10) {
    Eigen::MatrixXd Hd = H;
    Hd.diagonal().array() += lambda;
    Eigen::LLT<Eigen::MatrixXd, Eigen::Lower> l2(Hd);
    if (l2.info() == Eigen::Success) {
      d = -l2.solve(g);
      return d.allFinite();
    }
  }
  return false;
}

int choose_step(double f0, double gd, std::span<const double> f_ladder) {
  for (int k = 0; k < static_cast<int>(f_ladder.size()); ++k)
    if (f_ladder[k] <= f0 + kArmijo * ladder_step(k) * gd) return k;
  return -1;
}

double accumulate_row(const double* w, int J, const double* table,
                      std::span<const std::uint32_t> idx, std::span<const float> y,
                      Eigen::VectorXd& g, Eigen::MatrixXd* H, RowWorkspace& ws,
                      std::vector<double>* margins) {
  const std::size_t n = idx.size();
  Eigen::Map<const Eigen::VectorXd> wv(w, J);
  double loss = 0;
  if (margins) margins->resize(n);
  for (std::size_t c0 = 0; c0 < n; c0 += kChunk) {
    const std::size_t c = std::min(kChunk, n - c0);
    ws.x.resize(c, J);
    for (std::size_t k = 0; k < c; ++k)
      ws.x.row(k) = Eigen::Map<const Eigen::RowVectorXd>(table + std::size_t(idx[c0 + k]) * J, J);
    ws.m.noalias() = ws.x * wv;
    ws.r.resize(c);
    ws.s.resize(c);
    for (std::size_t k = 0; k < c; ++k) {
      const double m = ws.m[k], yk = y[c0 + k];
      loss += bce(m, yk);
      const double p = sigmoid(m);
      ws.r[k] = p - yk;
      ws.s[k] = std::sqrt(p * (1 - p));
      if (margins) (*margins)[c0 + k] = m;
    }
    g.noalias() += ws.x.transpose() * ws.r;
    if (H) {
      // Weighted Gram matrix X^T diag(s'(m)) X as a rank-c update of the scaled rows (BLAS-3).
      ws.x = ws.s.asDiagonal() * ws.x;
      H->selfadjointView<Eigen::Lower>().rankUpdate(ws.x.transpose());
    }
  }
  return loss;
}

RowStats solve_row(double* w, int J, const double* table, std::span<const std::uint32_t> idx,
                   std::span<const float> y, double mu, int steps, RowWorkspace& ws) {
  RowStats st;
  Eigen::Map<Eigen::VectorXd> wv(w, J);
  const std::size_t n = idx.size();
  double f0 = 0;
  for (int step = 0; step < steps; ++step) {
    ws.g.setZero(J);
    ws.h.setZero(J, J);
    f0 = accumulate_row(w, J, table, idx, y, ws.g, &ws.h, ws, &ws.margins) +
         0.5 * mu * wv.squaredNorm();
    ws.g += mu * wv;
    ws.h.diagonal().array() += mu;
    st.grad_norm2 = ws.g.squaredNorm();
    st.objective = f0;
    if (st.grad_norm2 == 0) break;
    if (!newton_direction(ws.h, ws.g, ws.d)) break;
    const double gd = ws.g.dot(ws.d);
    if (!(gd < 0)) break;
    // q_k = x_k . d, then the objective along the ladder from the stored margins.
    ws.steps.resize(n);
    for (std::size_t k = 0; k < n; ++k)
      ws.steps[k] = Eigen::Map<const Eigen::RowVectorXd>(table + std::size_t(idx[k]) * J, J)
                        .dot(ws.d);
    double f_ladder[kLadder];
    int chosen = -1;
    for (int k = 0; k < kLadder && chosen < 0; ++k) {
      const double t = ladder_step(k);
      double f = 0.5 * mu * (wv + t * ws.d).squaredNorm();
      for (std::size_t i = 0; i < n; ++i) f += bce(ws.margins[i] + t * ws.steps[i], y[i]);
      f_ladder[k] = f;
      if (f <= f0 + kArmijo * t * gd) chosen = k;
    }
    if (chosen < 0) break;
    wv += ladder_step(chosen) * ws.d;
    st.objective = f_ladder[chosen];
  }
  return st;
}

}  // namespace pref
