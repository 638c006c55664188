// The label kernels, compiled once per instruction set (kernels_*.cpp define PREF_KERNEL_ISA
// and include this file); kernels::best() picks the widest the CPU has. Only the rounding of
// fused multiply-adds differs between them.
#include <algorithm>
#include <cmath>
#include <utility>

#include "solver/kernels.hpp"
#include "solver/newton.hpp"
#include "solver/vmath.hpp"

namespace pref::kernels::PREF_KERNEL_ISA {
namespace {

// Scalar code is faster with libm's functions; vector code with vmath's polynomials.
#ifdef PREF_KERNEL_LIBM
inline double exp_nonpos(double x) { return std::exp(x); }
inline double expm1_small(double x) { return std::expm1(x); }
inline double log1p_pos(double x) { return std::log1p(x); }
#else
using vmath::exp_nonpos;
using vmath::expm1_small;
using vmath::log1p_pos;
#endif

// The label loop for a compile-time J (JJ > 0) or a runtime one (JJ == 0), in blocks of kBlock
// labels: the partner rows are gathered transposed (J x kBlock) so that the margins, and then the
// sigmoid terms (vmath's polynomial exp and log1p), are loops over labels that vectorize; the
// gradient and the Hessian are rank-1 updates whose inner loop runs over a full row of J (also
// vectorized; only the lower triangle of the Hessian is formed). The order of every sum
// depends only on the row's own labels.
constexpr int kBlock = 32;

template <int JJ>
double accumulate_small(const double* w, int Jrt, const double* table,
                        std::span<const std::uint32_t> idx, std::span<const float> y,
                        const LabelPass& out) {
  constexpr int kMaxJ = JJ > 0 ? JJ : kMaxSmallJ;
  const int J = JJ > 0 ? JJ : Jrt;
  double* g = out.g;
  double* H = out.H;  // J x J column-major, lower triangle
  alignas(64) double XT[kMaxJ][kBlock];
  alignas(64) double m[kBlock], e[kBlock], p[kBlock], r[kBlock], sw[kBlock], yb[kBlock],
      lossb[kBlock];
  alignas(64) double gl[kMaxJ] = {};
  alignas(64) double hl[kMaxJ * kMaxJ] = {};
  double loss = 0;
  const std::size_t n = idx.size();
  for (std::size_t k0 = 0; k0 < n; k0 += kBlock) {
    const int c = static_cast<int>(std::min<std::size_t>(kBlock, n - k0));
    // Partner rows are scattered over a table that may be far larger than the caches (the U
    // rows of a comparison's users): ask for the next block's rows while gathering this one.
    const std::size_t next_end = std::min<std::size_t>(n, k0 + 2 * kBlock);
    for (std::size_t k = k0 + kBlock; k < next_end; ++k) {
      const double* x = table + std::size_t(idx[k]) * J;
      __builtin_prefetch(x);
      __builtin_prefetch(x + J - 1);  // a row may straddle two cache lines
    }
    for (int k = 0; k < c; ++k) {
      const double* x = table + std::size_t(idx[k0 + k]) * J;
      for (int a = 0; a < J; ++a) XT[a][k] = x[a];
      yb[k] = y[k0 + k];
    }
    for (int k = c; k < kBlock; ++k) {
      for (int a = 0; a < J; ++a) XT[a][k] = 0;
      yb[k] = 0;
    }
    for (int k = 0; k < kBlock; ++k) m[k] = 0;
    for (int a = 0; a < J; ++a)
      for (int k = 0; k < kBlock; ++k) m[k] += XT[a][k] * w[a];
    for (int k = 0; k < kBlock; ++k) {
      const double mk = m[k];
      const double ek = exp_nonpos(mk >= 0 ? -mk : mk);
      e[k] = ek;
      const double pk = (mk >= 0 ? 1.0 : ek) / (1.0 + ek);
      p[k] = pk;
      r[k] = pk - yb[k];
      sw[k] = pk * (1 - pk);
    }
    if (out.loss) {
      for (int k = 0; k < kBlock; ++k)
        lossb[k] = (m[k] > 0 ? m[k] : 0.0) + log1p_pos(e[k]) - yb[k] * m[k];
      for (int k = 0; k < c; ++k) loss += lossb[k];
    }
    if (out.margins)
      for (int k = 0; k < c; ++k) out.margins[k0 + k] = m[k];
    if (out.probs)
      for (int k = 0; k < c; ++k) out.probs[k0 + k] = p[k];
    if (g)
      for (int k = 0; k < c; ++k) {
        const double* x = table + std::size_t(idx[k0 + k]) * J;
        for (int a = 0; a < J; ++a) gl[a] += r[k] * x[a];
      }
    if (H)
      for (int k = 0; k < c; ++k) {
        const double* x = table + std::size_t(idx[k0 + k]) * J;
        for (int b = 0; b < J; ++b) {
          const double f = sw[k] * x[b];
          double* col = hl + b * J;
          for (int a = b; a < J; ++a) col[a] += f * x[a];
        }
      }
  }
  if (g)
    for (int a = 0; a < J; ++a) g[a] += gl[a];
  if (H)
    for (int b = 0; b < J; ++b)
      for (int a = b; a < J; ++a) H[std::size_t(b) * J + a] += hl[b * J + a];
  return loss;
}

template <int... Js>
double dispatch_small(std::integer_sequence<int, Js...>, int J, const double* w,
                      const double* table, std::span<const std::uint32_t> idx,
                      std::span<const float> y, const LabelPass& out) {
  double loss = 0;
  const bool done =
      ((J == Js + 1 ? (loss = accumulate_small<Js + 1>(w, J, table, idx, y, out), true) : false) ||
       ...);
  if (!done) loss = accumulate_small<0>(w, J, table, idx, y, out);
  return loss;
}


double accumulate(int J, const double* w, const double* table,
                  std::span<const std::uint32_t> idx, std::span<const float> y,
                  const LabelPass& out) {
  return dispatch_small(std::make_integer_sequence<int, kMaxSmallJ>{}, J, w, table, idx, y, out);
}

double loss_change(const double* m, const double* p, const double* q, const float* y,
                   std::size_t n, double t, std::vector<double>& scratch) {
  // Per label into scratch (a loop that vectorizes), then summed in label order. Steps with
  // |t q| > 1 (rare: far from the optimum) take the exact softplus difference instead.
  scratch.resize(n);
  double* out = scratch.data();
  for (std::size_t i = 0; i < n; ++i) {
    const double delta = t * q[i];
    const double dc = delta > 1.0 ? 1.0 : (delta < -1.0 ? -1.0 : delta);
    out[i] = log1p_pos(p[i] * expm1_small(dc)) - y[i] * delta;
  }
  double sum = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double delta = t * q[i];
    sum += std::abs(delta) <= 1.0 ? out[i] : bce_change(m[i], p[i], delta, y[i]);
  }
  return sum;
}

}  // namespace

Table table() { return {&accumulate, &loss_change, PREF_KERNEL_ISA_NAME}; }

}  // namespace pref::kernels::PREF_KERNEL_ISA
