#include "solver/newton/newton.hpp"

#include "solver/newton/kernels.hpp"

#include <Eigen/Cholesky>
#include <algorithm>
#include <utility>

#include "solver/newton/blas.hpp"

namespace pref {

namespace {
// Labels are processed in chunks so that a comparison with millions of labels needs no large
// gather buffer.
constexpr std::size_t kChunk = 512;
// Relative size of a squared Cholesky pivot below which H counts as singular.
constexpr double kSingularPivot = 1e-8;
}  // namespace

bool newton_direction(Eigen::MatrixXd& H, const Eigen::VectorXd& g, Eigen::VectorXd& d) {
  // Factor a copy in place (thread-local scratch: no allocation per row once warm).
  thread_local Eigen::MatrixXd L;
  const double max_diag = H.diagonal().cwiseAbs().maxCoeff();
  L = H;
  {
    Eigen::LLT<Eigen::Ref<Eigen::MatrixXd>, Eigen::Lower> llt(L);
    // A pivot at the rounding level of H means H is singular to working precision (no
    // regularization and fewer labels than J, or saturated margins). Whether Cholesky then
    // succeeds is decided by rounding, i.e. by the summation order (rank count, exchange
    // pattern), and the direction's null-space part is rounding noise divided by that pivot:
    // such H take the shifted path below like indefinite ones.
    if (llt.info() == Eigen::Success &&
        L.diagonal().array().square().minCoeff() > kSingularPivot * max_diag) {
      d = g;
      llt.solveInPlace(d);
      d = -d;
      return d.allFinite();
    }
  }
  double lambda = std::max(1e-300, 1e-6 * max_diag);
  for (int tries = 0; tries < 40; ++tries, lambda *= 10) {
    L = H;
    L.diagonal().array() += lambda;
    Eigen::LLT<Eigen::Ref<Eigen::MatrixXd>, Eigen::Lower> l2(L);
    if (l2.info() == Eigen::Success) {
      d = g;
      l2.solveInPlace(d);
      d = -d;
      return d.allFinite();
    }
  }
  return false;
}

bool direction(Eigen::MatrixXd& H, const Eigen::VectorXd& g, Eigen::VectorXd& d) {
  const int J = static_cast<int>(g.size());
  if (J <= kernels::kMaxSmallJ) {
    const double max_diag = H.diagonal().cwiseAbs().maxCoeff();
    d.resize(J);
    if (kernels::best().direction(J, H.data(), g.data(), kSingularPivot * max_diag, d.data()))
      return true;
  }
  return newton_direction(H, g, d);
}

void project(const double* d, int J, const double* table, std::span<const std::uint32_t> idx,
             double* q) {
  if (J <= kernels::kMaxSmallJ) return kernels::best().project(J, d, table, idx, q);
  Eigen::Map<const Eigen::VectorXd> dv(d, J);
  for (std::size_t k = 0; k < idx.size(); ++k)
    q[k] = Eigen::Map<const Eigen::RowVectorXd>(table + std::size_t(idx[k]) * J, J).dot(dv);
}

Partners gather_partners(int J, const double* table, std::span<const std::uint32_t> idx,
                         RowWorkspace& ws) {
  const std::size_t n = idx.size();
  if (n * std::size_t(J) > kMaxGatheredValues) return {table, idx};
  if (ws.partners.size() < n * J) ws.partners.resize(n * J);
  if (ws.order.size() < n) {
    const std::size_t have = ws.order.size();
    ws.order.resize(n);
    for (std::size_t k = have; k < n; ++k) ws.order[k] = static_cast<std::uint32_t>(k);
  }
  constexpr std::size_t kAhead = 16;
  double* out = ws.partners.data();
  for (std::size_t k = 0; k < n; ++k) {
    if (k + kAhead < n) {
      const double* ahead = table + std::size_t(idx[k + kAhead]) * J;
      __builtin_prefetch(ahead);
      __builtin_prefetch(ahead + J - 1);
    }
    const double* x = table + std::size_t(idx[k]) * J;
    std::copy(x, x + J, out + k * J);
  }
  return {out, {ws.order.data(), n}};
}

double accumulate(const double* w, int J, const double* table, std::span<const std::uint32_t> idx,
                  std::span<const float> y, const LabelPass& out, RowWorkspace& ws) {
  const std::size_t n = idx.size();
  // Above kMaxSmallJ the Hessian is formed from gathered blocks by a BLAS-3 rank update.
  if (J <= kernels::kMaxSmallJ) return kernels::best().accumulate(J, w, table, idx, y, out);
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
      if (out.loss) loss += bce(m, yk);
      const double p = sigmoid(m);
      ws.r[k] = p - yk;
      ws.s[k] = std::sqrt(p * (1 - p));
      if (out.margins) out.margins[c0 + k] = m;
      if (out.probs) out.probs[c0 + k] = p;
    }
    if (out.g) Eigen::Map<Eigen::VectorXd>(out.g, J).noalias() += ws.x.transpose() * ws.r;
    if (out.H) {
      // Weighted Gram matrix X^T diag(s'(m)) X as a rank-c update of the scaled rows: OpenBLAS
      // dsyrk on the row-major block (a J x c column-major matrix), lower triangle.
      ws.x = ws.s.asDiagonal() * ws.x;
      const int nj = J, k = static_cast<int>(c);
      const double one = 1.0;
      dsyrk_("L", "N", &nj, &k, &one, ws.x.data(), &nj, &one, out.H, &nj);
    }
  }
  return loss;
}

double accumulate_row(const double* w, int J, const double* table,
                      std::span<const std::uint32_t> idx, std::span<const float> y,
                      Eigen::VectorXd& g, Eigen::MatrixXd* H, RowWorkspace& ws,
                      std::vector<double>* margins) {
  if (margins) margins->resize(idx.size());
  LabelPass out;
  out.g = g.data();
  out.H = H ? H->data() : nullptr;
  out.loss = true;
  out.margins = margins ? margins->data() : nullptr;
  return accumulate(w, J, table, idx, y, out, ws);
}

double loss_change(const double* m, const double* p, const double* q, const float* y, std::size_t n,
                   double t, std::vector<double>& scratch) {
  return kernels::best().loss_change(m, p, q, y, n, t, scratch);
}

int ladder_search(double scale, double lin, double quad, double gd, const double* m,
                  const double* p, const double* q, const float* y, std::size_t n,
                  std::vector<double>& scratch, double* label_change) {
  for (int k = 0; k < kLadder; ++k) {
    const double t = ladder_step(k);
    const double labels = n > 0 ? loss_change(m, p, q, y, n, t, scratch) : 0.0;
    const double df = scale * t * (lin + 0.5 * t * quad) + labels;
    if (df <= kArmijo * t * gd) {
      if (label_change) *label_change = labels;
      return k;
    }
  }
  return -1;
}

RowStats solve_row(double* w, int J, const double* table, std::span<const std::uint32_t> idx,
                   std::span<const float> y, const RowPrior& prior, int steps, RowWorkspace& ws,
                   bool track_loss) {
  RowStats st;
  Eigen::Map<Eigen::VectorXd> wv(w, J);
  const std::size_t n = idx.size();
  const double mu = prior.mu;
  ws.margins.resize(n);
  ws.probs.resize(n);
  ws.steps.resize(n);
  for (int step = 0; step < steps; ++step) {
    ws.g.setZero(J);
    ws.h.setZero(J, J);
    LabelPass out;
    out.g = ws.g.data();
    out.H = ws.h.data();
    out.margins = ws.margins.data();
    out.probs = ws.probs.data();
    // The objective itself is not needed (the line search works on its changes), unless asked.
    out.loss = track_loss;
    const double loss = accumulate(w, J, table, idx, y, out, ws);
    if (track_loss) st.loss = loss;
    if (prior.precision) {
      // pr = P (w - m): the prior's gradient; H += P (its lower triangle is what is read).
      const Eigen::Map<const Eigen::MatrixXd> P(prior.precision, J, J);
      ws.pr.noalias() = P * (wv - Eigen::Map<const Eigen::VectorXd>(prior.mean, J));
      ws.g += ws.pr;
      ws.h += P;
    } else {
      ws.g += mu * wv;
      ws.h.diagonal().array() += mu;
    }
    st.grad_norm2 = ws.g.squaredNorm();
    if (st.grad_norm2 == 0) break;
    if (!direction(ws.h, ws.g, ws.d)) break;
    const double gd = ws.g.dot(ws.d);
    if (!(gd < 0)) break;
    // q_k = x_k . d, then the change of the objective along the ladder.
    project(ws.d.data(), J, table, idx, ws.steps.data());
    // The regularization's change along t d: ridge mu t (w.d + t |d|^2 / 2), prior
    // t d.P(w - m) + t^2 d.P d / 2.
    const bool gaussian = prior.precision != nullptr;
    double wd, dd;
    if (gaussian) {
      const Eigen::Map<const Eigen::MatrixXd> P(prior.precision, J, J);
      wd = ws.d.dot(ws.pr);
      dd = ws.d.dot(P * ws.d);
    } else {
      wd = wv.dot(ws.d);
      dd = ws.d.squaredNorm();
    }
    double change = 0;
    const int chosen =
        ladder_search(gaussian ? 1.0 : mu, wd, dd, gd, ws.margins.data(), ws.probs.data(),
                      ws.steps.data(), y.data(), n, ws.change, &change);
    if (chosen < 0) break;
    wv += ladder_step(chosen) * ws.d;
    if (track_loss) st.loss += change;
    ++st.steps_taken;
  }
  return st;
}

}  // namespace pref
