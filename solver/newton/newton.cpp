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
// A pivot at or below this is singular to working precision (the rule of direction and
// solve_rows' lanes alike).
double min_pivot(const Eigen::MatrixXd& H) {
  return kSingularPivot * H.diagonal().cwiseAbs().maxCoeff();
}
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
    d.resize(J);
    if (kernels::best().direction(J, H.data(), g.data(), min_pivot(H), d.data())) return true;
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

namespace {

// A Newton step in two parts around its direction, so that solve_rows can find the directions
// of several rows together. The first part: at w, g and H (lower triangle) with the prior's
// terms, and the margins and probabilities for the line search; false when g is zero.
bool step_begin(const double* w, int J, const double* table, std::span<const std::uint32_t> idx,
                std::span<const float> y, const RowPrior& prior, RowWorkspace& ws, bool track_loss,
                RowStats& st) {
  const Eigen::Map<const Eigen::VectorXd> wv(w, J);
  const std::size_t n = idx.size();
  ws.margins.resize(n);
  ws.probs.resize(n);
  ws.steps.resize(n);
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
    ws.g += prior.mu * wv;
    ws.h.diagonal().array() += prior.mu;
  }
  st.grad_norm2 = ws.g.squaredNorm();
  return st.grad_norm2 != 0;
}

// The second part, along the direction ws.d: the slope's test, the line search and the move of
// w. False when the step is not taken.
bool step_finish(double* w, int J, const double* table, std::span<const std::uint32_t> idx,
                 std::span<const float> y, const RowPrior& prior, RowWorkspace& ws, bool track_loss,
                 RowStats& st) {
  Eigen::Map<Eigen::VectorXd> wv(w, J);
  const double gd = ws.g.dot(ws.d);
  if (!(gd < 0)) return false;
  // q_k = x_k . d, then the change of the objective along the ladder.
  project(ws.d.data(), J, table, idx, ws.steps.data());
  // The regularization's change along t d: ridge mu t (w.d + t |d|^2 / 2), prior
  // t d.P(w - m) + t^2 d.P d / 2.
  const bool gaussian = prior.precision != nullptr;
  double wd, dd;
  if (gaussian) {
    const Eigen::Map<const Eigen::MatrixXd> P(prior.precision, J, J);
    wd = ws.d.dot(ws.pr);
    ws.pd.noalias() = P * ws.d;  // (into the workspace: no allocation per row)
    dd = ws.d.dot(ws.pd);
  } else {
    wd = wv.dot(ws.d);
    dd = ws.d.squaredNorm();
  }
  const double scale = gaussian ? 1.0 : prior.mu;
  if (!track_loss) {
    // The full step on a quadratic upper bound first: softplus(m + q) <= softplus(m) +
    // sigmoid(m) q + q^2 / 8, so the objective's change along d is at most
    // g.d + sum_k q_k^2 / 8 + scale quad / 2. When that passes the Armijo test, the exact
    // change does too, and the ladder's first step is taken without the labels' exp and log.
    // (Margins near 0, where p (1 - p) is near 1/4, pass; saturated ones go to the ladder.)
    const double* q = ws.steps.data();
    double s2 = 0;
    for (std::size_t k = 0; k < idx.size(); ++k) s2 += q[k] * q[k];
    if (gd + 0.125 * s2 + 0.5 * scale * dd <= kArmijo * gd) {
      wv += ws.d;
      ++st.steps_taken;
      return true;
    }
  }
  double change = 0;
  const int chosen = ladder_search(scale, wd, dd, gd, ws.margins.data(), ws.probs.data(),
                                   ws.steps.data(), y.data(), idx.size(), ws.change, &change);
  if (chosen < 0) return false;
  wv += ladder_step(chosen) * ws.d;
  if (track_loss) st.loss += change;
  ++st.steps_taken;
  return true;
}

// H^-1 added to acc by H = L D L^T (unit lower L), W = L^-1, H^-1 = W^T D^-1 W: about J^3/2
// multiply-adds with no square root, in fixed-size loops the compiler unrolls for JJ > 0.
// False when a pivot is not positive (H not positive definite to working precision).
template <int JJ>
bool add_inverse_fixed(int Jrt, const double* H, double* acc) {
  constexpr int kMax = JJ > 0 ? JJ : 32;
  const int J = JJ > 0 ? JJ : Jrt;
  double L[kMax * kMax], W[kMax * kMax], D[kMax], Dinv[kMax];  // column-major: (i, j) at j*J + i
  for (int j = 0; j < J; ++j) {
    double d = H[j * J + j];
    for (int k = 0; k < j; ++k) d -= L[k * J + j] * L[k * J + j] * D[k];
    if (!(d > 0) || !std::isfinite(d)) return false;
    D[j] = d;
    Dinv[j] = 1.0 / d;
    L[j * J + j] = 1.0;
    for (int i = j + 1; i < J; ++i) {
      double v = H[j * J + i];
      for (int k = 0; k < j; ++k) v -= L[k * J + i] * L[k * J + j] * D[k];
      L[j * J + i] = v * Dinv[j];
    }
  }
  // W = L^-1, unit lower triangular, column by column.
  for (int j = 0; j < J; ++j) {
    W[j * J + j] = 1.0;
    for (int i = j + 1; i < J; ++i) {
      double v = 0;
      for (int k = j; k < i; ++k) v -= L[k * J + i] * W[j * J + k];
      W[j * J + i] = v;
    }
  }
  // (H^-1)(a, b) = sum_{k >= max(a, b)} W(k, a) W(k, b) / D(k), lower triangle a >= b.
  for (int b = 0; b < J; ++b)
    for (int a = b; a < J; ++a) {
      double v = 0;
      for (int k = a; k < J; ++k) v += W[a * J + k] * W[b * J + k] * Dinv[k];
      acc[b * J + a] += v;
    }
  return true;
}

template <int... Js>
bool add_inverse_dispatch(std::integer_sequence<int, Js...>, int J, const double* H, double* acc) {
  bool ok = false;
  const bool done =
      ((J == Js + 1 ? (ok = add_inverse_fixed<Js + 1>(J, H, acc), true) : false) || ...);
  if (!done) ok = add_inverse_fixed<0>(J, H, acc);
  return ok;
}

}  // namespace

void add_spd_inverse(int J, const double* H, double* acc) {
  if (J <= 32 && add_inverse_dispatch(std::make_integer_sequence<int, 32>{}, J, H, acc)) return;
  // Large J, or a pivot lost to rounding: Eigen's pivoted LDL^T of the lower triangle.
  Eigen::MatrixXd h(J, J);
  for (int b = 0; b < J; ++b)
    for (int a = b; a < J; ++a) h(a, b) = h(b, a) = H[b * J + a];
  const Eigen::MatrixXd inv = h.ldlt().solve(Eigen::MatrixXd::Identity(J, J));
  for (int b = 0; b < J; ++b)
    for (int a = b; a < J; ++a) acc[b * J + a] += inv(a, b);
}

RowStats solve_row(double* w, int J, const double* table, std::span<const std::uint32_t> idx,
                   std::span<const float> y, const RowPrior& prior, int steps, RowWorkspace& ws,
                   bool track_loss) {
  RowStats st;
  for (int step = 0; step < steps; ++step) {
    if (!step_begin(w, J, table, idx, y, prior, ws, track_loss, st)) break;
    if (!direction(ws.h, ws.g, ws.d)) break;
    if (!step_finish(w, J, table, idx, y, prior, ws, track_loss, st)) break;
  }
  return st;
}

void solve_rows(std::span<const GroupRow> rows, int J, const double* table, const RowPrior& prior,
                int steps, RowWorkspace& ws, double* inverse_acc) {
  const int n = static_cast<int>(rows.size());
  const bool lanes = J <= kernels::kMaxBatchJ && n <= kernels::kMaxRows && steps >= 1;
  if (!lanes) {
    for (const GroupRow& r : rows) {
      solve_row(r.w, J, table, r.idx, r.y, prior, steps, ws);
      if (inverse_acc) add_spd_inverse(J, ws.h.data(), inverse_acc);
    }
    return;
  }
  const std::size_t JJ = std::size_t(J) * J;
  if (ws.group.size() < std::size_t(n)) ws.group.resize(n);
  if (inverse_acc) ws.inverses.resize(n * JJ);
  bool active[kernels::kMaxRows], descend[kernels::kMaxRows], inverted[kernels::kMaxRows] = {};
  RowStats st[kernels::kMaxRows];
  std::fill(active, active + n, true);
  for (int step = 0; step < steps; ++step) {
    // The rows still moving: their g and H at this step (H is the one whose inverse counts,
    // also for a row whose gradient is zero).
    int m = 0, slot[kernels::kMaxRows];
    const double* H[kernels::kMaxRows];
    const double* g[kernels::kMaxRows];
    double minp[kernels::kMaxRows];
    double* d[kernels::kMaxRows];
    double* inv[kernels::kMaxRows];
    for (int l = 0; l < n; ++l) {
      if (!active[l]) continue;
      RowWorkspace& w = ws.group[l];
      descend[l] = step_begin(rows[l].w, J, table, rows[l].idx, rows[l].y, prior, w, false, st[l]);
      if (!descend[l]) active[l] = false;
      w.d.resize(J);
      slot[m] = l;
      H[m] = w.h.data();
      g[m] = w.g.data();
      minp[m] = min_pivot(w.h);
      d[m] = w.d.data();
      inv[m] = inverse_acc ? ws.inverses.data() + l * JJ : nullptr;
      ++m;
    }
    if (m == 0) break;
    const unsigned ok =
        kernels::best().directions(J, m, H, g, minp, d, inverse_acc ? inv : nullptr);
    for (int i = 0; i < m; ++i) {
      const int l = slot[i];
      RowWorkspace& w = ws.group[l];
      inverted[l] = ok >> i & 1;
      if (!descend[l]) continue;
      // A row the lanes refused (H singular to working precision) takes direction's shifted path.
      if (!inverted[l] && !direction(w.h, w.g, w.d)) {
        active[l] = false;
        continue;
      }
      if (!step_finish(rows[l].w, J, table, rows[l].idx, rows[l].y, prior, w, false, st[l]))
        active[l] = false;
    }
  }
  if (!inverse_acc) return;
  for (int l = 0; l < n; ++l) {
    if (!inverted[l]) {
      add_spd_inverse(J, ws.group[l].h.data(), inverse_acc);
      continue;
    }
    const double* v = ws.inverses.data() + l * JJ;
    for (int b = 0; b < J; ++b)
      for (int a = b; a < J; ++a) inverse_acc[b * J + a] += v[b * J + a];
  }
}

}  // namespace pref
