#include "solver/newton.hpp"

#include <Eigen/Cholesky>
#include <algorithm>
#include <utility>

extern "C" void dsyrk_(const char* uplo, const char* trans, const int* n, const int* k,
                       const double* alpha, const double* a, const int* lda, const double* beta,
                       double* c, const int* ldc);

namespace pref {

namespace {
// Labels are processed in chunks so that a comparison with millions of labels needs no large
// gather buffer.
constexpr std::size_t kChunk = 512;
// Relative size of a squared Cholesky pivot below which H counts as singular.
constexpr double kSingularPivot = 1e-10;
}  // namespace

bool newton_direction(Eigen::MatrixXd& H, const Eigen::VectorXd& g, Eigen::VectorXd& d) {
  Eigen::LLT<Eigen::MatrixXd, Eigen::Lower> llt(H);
  // A pivot at the rounding level of H means H is singular to working precision (no
  // regularization and fewer labels than J, or saturated margins). Whether Cholesky then
  // succeeds is decided by rounding, i.e. by the summation order (rank count, exchange pattern),
  // and the direction's null-space part is rounding noise divided by that pivot: such H take the
  // shifted path below like indefinite ones.
  if (llt.info() == Eigen::Success &&
      llt.matrixLLT().diagonal().array().square().minCoeff() >
          kSingularPivot * H.diagonal().cwiseAbs().maxCoeff()) {
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

namespace {

// The label loop for a compile-time J (JJ > 0) or a runtime one (JJ == 0): one pass computing the
// margin, loss, gradient and the lower triangle of the weighted Gram matrix, without gathering.
template <int JJ>
double accumulate_small(const double* w, int Jrt, const double* table,
                        std::span<const std::uint32_t> idx, std::span<const float> y, double* g,
                        double* H /* J x J column-major, lower triangle, or null */,
                        std::vector<double>* margins) {
  const int J = JJ > 0 ? JJ : Jrt;
  double loss = 0;
  double gl[JJ > 0 ? JJ : 1] = {};
  for (std::size_t k = 0; k < idx.size(); ++k) {
    const double* x = table + std::size_t(idx[k]) * J;
    double m = 0;
    for (int a = 0; a < J; ++a) m += x[a] * w[a];
    const double e = std::exp(-std::abs(m));
    const double yk = y[k];
    loss += std::max(m, 0.0) + std::log1p(e) - yk * m;
    const double p = m >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
    const double r = p - yk;
    if constexpr (JJ > 0) {
      for (int a = 0; a < J; ++a) gl[a] += r * x[a];
    } else {
      for (int a = 0; a < J; ++a) g[a] += r * x[a];
    }
    if (H) {
      const double s = p * (1 - p);
      for (int b = 0; b < J; ++b) {
        const double sb = s * x[b];
        double* col = H + std::size_t(b) * J;
        for (int a = b; a < J; ++a) col[a] += sb * x[a];
      }
    }
    if (margins) (*margins)[k] = m;
  }
  if constexpr (JJ > 0)
    for (int a = 0; a < J; ++a) g[a] += gl[a];
  return loss;
}

template <int... Js>
double dispatch_small(std::integer_sequence<int, Js...>, int J, const double* w,
                      const double* table, std::span<const std::uint32_t> idx,
                      std::span<const float> y, double* g, double* H,
                      std::vector<double>* margins) {
  double loss = 0;
  const bool done = ((J == Js + 1 ? (loss = accumulate_small<Js + 1>(w, J, table, idx, y, g, H,
                                                                      margins),
                                     true)
                                  : false) ||
                     ...);
  if (!done) loss = accumulate_small<0>(w, J, table, idx, y, g, H, margins);
  return loss;
}

// Above this J the Hessian is formed from gathered blocks by a BLAS-3 rank update.
constexpr int kSmallJ = 16;

}  // namespace

double accumulate_row(const double* w, int J, const double* table,
                      std::span<const std::uint32_t> idx, std::span<const float> y,
                      Eigen::VectorXd& g, Eigen::MatrixXd* H, RowWorkspace& ws,
                      std::vector<double>* margins) {
  const std::size_t n = idx.size();
  if (margins) margins->resize(n);
  if (J <= kSmallJ)
    return dispatch_small(std::make_integer_sequence<int, kSmallJ>{}, J, w, table, idx, y,
                          g.data(), H ? H->data() : nullptr, margins);
  Eigen::Map<const Eigen::VectorXd> wv(w, J);
  double loss = 0;
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
      // Weighted Gram matrix X^T diag(s'(m)) X as a rank-c update of the scaled rows: OpenBLAS
      // dsyrk on the row-major block (a J x c column-major matrix), lower triangle.
      ws.x = ws.s.asDiagonal() * ws.x;
      const int nj = J, k = static_cast<int>(c);
      const double one = 1.0;
      dsyrk_("L", "N", &nj, &k, &one, ws.x.data(), &nj, &one, H->data(), &nj);
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
    const double wd = wv.dot(ws.d), dd = ws.d.squaredNorm();
    double change = 0;
    int chosen = -1;
    for (int k = 0; k < kLadder && chosen < 0; ++k) {
      const double t = ladder_step(k);
      double df = mu * t * (wd + 0.5 * t * dd);
      for (std::size_t i = 0; i < n; ++i) df += bce_change(ws.margins[i], t * ws.steps[i], y[i]);
      if (df <= kArmijo * t * gd) {
        chosen = k;
        change = df;
      }
    }
    if (chosen < 0) break;
    wv += ladder_step(chosen) * ws.d;
    st.objective = f0 + change;
  }
  return st;
}

}  // namespace pref
