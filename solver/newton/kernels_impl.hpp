// The label kernels, compiled once per instruction set (kernels_*.cpp define PREF_KERNEL_ISA
// and include this file); kernels::best() picks the widest the CPU has. Only rounding differs
// between them (fused multiply-adds, and the lane-sum trees of vectors of different widths);
// each is deterministic, so a run is bitwise repeatable on the same kind of CPU.
#include <algorithm>
#include <cmath>
#include <utility>

#include "solver/newton/kernels.hpp"
#include "solver/newton/loss.hpp"
#include "solver/newton/vmath.hpp"

namespace pref::kernels::PREF_KERNEL_ISA {
namespace {

// Scalar code is faster with libm's functions; vector code with vmath's polynomials.
#ifdef PREF_KERNEL_LIBM
inline double exp_nonpos(double x) {
  return std::exp(x);
}
inline double expm1_small(double x) {
  return std::expm1(x);
}
inline double log1p_pos(double x) {
  return std::log1p(x);
}
#else
using vmath::exp_nonpos;
using vmath::expm1_small;
using vmath::log1p_pos;
#endif

// Vectors of the instruction set as GCC vector extensions: arithmetic on them compiles to the
// widest registers the target has (SSE2: 2 doubles, AVX2: 4, AVX-512: 8).
#if defined(__AVX512F__)
constexpr int kV = 8;
constexpr int kMR = 4;  // Hessian tile: kMR vectors of rows x kNR columns of accumulators
#elif defined(__AVX2__)
constexpr int kV = 4;
constexpr int kMR = 3;
#else
constexpr int kV = 2;
constexpr int kMR = 2;
#endif
constexpr int kNR = 4;
template <int N>
struct Vec;
template <>
struct Vec<1> {
  typedef double type;
};
template <>
struct Vec<2> {
  typedef double type __attribute__((vector_size(2 * sizeof(double))));
};
template <>
struct Vec<4> {
  typedef double type __attribute__((vector_size(4 * sizeof(double))));
};
template <>
struct Vec<8> {
  typedef double type __attribute__((vector_size(8 * sizeof(double))));
};
template <int N>
using vec = typename Vec<N>::type;
using vd = vec<kV>;

// The sum of a vector's lanes as a fixed tree (halves added until one lane is left).
template <int N>
inline double hsum(vec<N> v) {
  if constexpr (N == 2) {
    return v[0] + v[1];
  } else {
    auto halves = [&]<int... I>(std::integer_sequence<int, I...>) {
      const vec<N / 2> lo = __builtin_shufflevector(v, v, I...);
      const vec<N / 2> hi = __builtin_shufflevector(v, v, (I + N / 2)...);
      return lo + hi;
    };
    return hsum<N / 2>(halves(std::make_integer_sequence<int, N / 2>{}));
  }
}
constexpr int kPad = kV > kNR ? kV : kNR;
constexpr int padded(int J) {
  return (J + kPad - 1) / kPad * kPad;
}

inline vd load(const double* p) {
  vd v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
inline void store(double* p, vd v) {
  __builtin_memcpy(p, &v, sizeof v);
}

// The label loop for a compile-time J (JJ > 0) or a runtime one (JJ == 0), in blocks of kBlock
// labels. Each block's partner rows are gathered as rows (kBlock x Jp, zero-padded to a whole
// number of vectors); the margins are vector dot products of those rows, summed across lanes by
// a fixed tree, and the sigmoid terms (vmath's polynomial exp and log1p) are loops over labels
// that vectorize. The Hessian's lower triangle is a weighted rank-kBlock update formed in
// register tiles (kMR vectors of rows x kNR columns, as a dgemm micro-kernel does), so the
// accumulators stay in registers across the block instead of making a round trip through
// memory per label. The order of every sum depends only on the row's own labels.
constexpr int kBlock = 32;

// acc(a0.., b0..) += sum_k X[k][a0..] * S[k][b0..]: NV vectors of rows, kNR columns.
template <int NV>
inline void hessian_tile(const double* X, const double* S, int Jp, int c, int a0, int b0,
                         double* hl) {
  vd acc[kNR][NV];
  for (int j = 0; j < kNR; ++j)
    for (int i = 0; i < NV; ++i) acc[j][i] = load(hl + (b0 + j) * Jp + a0 + i * kV);
  for (int k = 0; k < c; ++k) {
    const double* xr = X + k * Jp + a0;
    const double* sr = S + k * Jp + b0;
    vd xa[NV];
    for (int i = 0; i < NV; ++i) xa[i] = load(xr + i * kV);
    for (int j = 0; j < kNR; ++j) {
      const double b = sr[j];
      for (int i = 0; i < NV; ++i) acc[j][i] += xa[i] * b;
    }
  }
  for (int j = 0; j < kNR; ++j)
    for (int i = 0; i < NV; ++i) store(hl + (b0 + j) * Jp + a0 + i * kV, acc[j][i]);
}

// The lower triangle of hl (Jp x Jp column-major) += X^T diag(s) X over c rows, as tiles.
inline void hessian_block(const double* X, const double* S, int J, int Jp, int c, double* hl) {
  for (int b0 = 0; b0 < J; b0 += kNR) {
    for (int a0 = b0 / kV * kV; a0 < J; a0 += kMR * kV) {
      const int nv = std::min(kMR, (Jp - a0) / kV);
      switch (nv) {
        case 1:
          hessian_tile<1>(X, S, Jp, c, a0, b0, hl);
          break;
        case 2:
          hessian_tile<2>(X, S, Jp, c, a0, b0, hl);
          break;
#if defined(__AVX2__)
        case 3:
          hessian_tile<3>(X, S, Jp, c, a0, b0, hl);
          break;
#endif
#if defined(__AVX512F__)
        case 4:
          hessian_tile<4>(X, S, Jp, c, a0, b0, hl);
          break;
#endif
        default:
          break;
      }
    }
  }
}

// Gathers the block's partner rows into X (c rows of stride Jp; the padding columns are left
// as they are, i.e. zero).
template <int JJ>
inline void gather_rows(const double* table, int J, int Jp, const std::uint32_t* idx, int c,
                        double* X) {
  if (JJ > 0 && JJ % kV == 0) {
    for (int k = 0; k < c; ++k) {
      const double* x = table + std::size_t(idx[k]) * JJ;
      for (int i = 0; i < JJ; i += kV) store(X + k * Jp + i, load(x + i));
    }
  } else {
    for (int k = 0; k < c; ++k) {
      const double* x = table + std::size_t(idx[k]) * J;
      for (int a = 0; a < J; ++a) X[k * Jp + a] = x[a];
    }
  }
}

// m[k] = X[k] . v for c rows of stride Jp (v zero-padded to Jp).
inline void dot_rows(const double* X, int Jp, int c, const double* v, double* m) {
  for (int k = 0; k < c; ++k) {
    vd acc = load(X + k * Jp) * load(v);
    for (int i = kV; i < Jp; i += kV) acc += load(X + k * Jp + i) * load(v + i);
    m[k] = hsum<kV>(acc);
  }
}

#if defined(__AVX512F__)
// dot_rows for rows of one vector (Jp == kV == 8), eight labels at a time: the eight products'
// lane sums transposed into one vector by hsum's own tree (lanes i and i + 4, then i and i + 2,
// then i and i + 1), so every margin is bitwise hsum's, in 14 shuffles per eight labels
// instead of 24. Writes whole vectors: (c + 7) / 8 * 8 values, from as many rows of X (the
// caller makes the rows past c finite).
inline void dot_rows_by8(const double* X, int c, const double* v, double* m) {
  const vd w = load(v);
  for (int k0 = 0; k0 < c; k0 += 8) {
    vd p[8];
    for (int i = 0; i < 8; ++i) p[i] = load(X + (k0 + i) * 8) * w;
    vd t[4];
    for (int i = 0; i < 4; ++i)
      t[i] = __builtin_shufflevector(p[2 * i], p[2 * i + 1], 0, 1, 2, 3, 8, 9, 10, 11) +
             __builtin_shufflevector(p[2 * i], p[2 * i + 1], 4, 5, 6, 7, 12, 13, 14, 15);
    vd u[2];
    for (int i = 0; i < 2; ++i)
      u[i] = __builtin_shufflevector(t[2 * i], t[2 * i + 1], 0, 1, 4, 5, 8, 9, 12, 13) +
             __builtin_shufflevector(t[2 * i], t[2 * i + 1], 2, 3, 6, 7, 10, 11, 14, 15);
    store(m + k0, __builtin_shufflevector(u[0], u[1], 0, 2, 4, 6, 8, 10, 12, 14) +
                      __builtin_shufflevector(u[0], u[1], 1, 3, 5, 7, 9, 11, 13, 15));
  }
}
constexpr bool kDotBy8 = true;
#else
constexpr bool kDotBy8 = false;
inline void dot_rows_by8(const double*, int, const double*, double*) {}
#endif

// The margins of a block's c gathered rows (stride Jp) with v into m, which has room for whole
// vectors of labels: eight at a time where a row is one vector of eight (JJ: the compile-time J;
// the rows past c are zeroed first), else dot_rows.
template <int JJ>
inline void block_margins(double* X, int Jp, int c, const double* v, double* m) {
  if constexpr (JJ > 0 && padded(JJ) == kV && kDotBy8) {
    for (int k = c; k < (c + kV - 1) / kV * kV; ++k)
      for (int a = 0; a < kV; ++a) X[k * kV + a] = 0;
    dot_rows_by8(X, c, v, m);
  } else {
    dot_rows(X, Jp, c, v, m);
  }
}

// The gradient and the Hessian's columns of a block for rows of one vector (Jp == kV) and a
// compile-time J: one pass over the labels with the gradient and the J columns in registers
// (J + 1 independent accumulations per label, where hessian_tile's passes of kNR columns each
// wait on their own four). The Hessian's entries are summed in the same order with the same
// fused multiply-adds as the general path (bitwise its); the gradient's by fused multiply-adds
// where the general path's loop rounds the product first.
template <int JJ, bool G, bool H>
inline void gradient_hessian_block(const double* X, const double* S, const double* r, int c,
                                   double* gl, double* hl) {
  vd accg = G ? load(gl) : vd{};
  vd acc[JJ];
  if constexpr (H)
    for (int j = 0; j < JJ; ++j) acc[j] = load(hl + j * kV);
  for (int k = 0; k < c; ++k) {
    const vd xa = load(X + k * kV);
    if constexpr (G) accg += xa * r[k];
    if constexpr (H) {
      const double* sr = S + k * kV;
      for (int j = 0; j < JJ; ++j) acc[j] += xa * sr[j];
    }
  }
  if constexpr (G) store(gl, accg);
  if constexpr (H)
    for (int j = 0; j < JJ; ++j) store(hl + j * kV, acc[j]);
}

// Asks for the rows of labels [from, to) (scattered over a table that may be far larger than
// the caches) while the current block is being worked on.
inline void prefetch_rows(const double* table, int J, const std::uint32_t* idx, std::size_t from,
                          std::size_t to) {
  for (std::size_t k = from; k < to; ++k) {
    const double* x = table + std::size_t(idx[k]) * J;
    __builtin_prefetch(x);
    __builtin_prefetch(x + J - 1);  // a row may straddle two cache lines
  }
}

template <int JJ>
double accumulate_small(const double* w, int Jrt, const double* table,
                        std::span<const std::uint32_t> idx, std::span<const float> y,
                        const LabelPass& out) {
  constexpr int kMaxJ = JJ > 0 ? JJ : kMaxSmallJ;
  constexpr int kMaxJp = padded(kMaxJ);
  // A compile-time J whose rows are one vector: the fused label passes.
  constexpr bool kOneVector = JJ > 0 && kMaxJp == kV;
  const int J = JJ > 0 ? JJ : Jrt;
  const int Jp = JJ > 0 ? kMaxJp : padded(J);
  double* g = out.g;
  double* H = out.H;                      // J x J column-major, lower triangle
  alignas(64) double X[kBlock * kMaxJp];  // rows, stride Jp
  alignas(64) double S[kBlock * kMaxJp];  // rows weighted by p (1 - p)
  alignas(64) double m[kBlock], e[kBlock], p[kBlock], r[kBlock], sw[kBlock], yb[kBlock],
      lossb[kBlock];
  alignas(64) double wp[kMaxJp] = {};
  alignas(64) double gl[kMaxJp] = {};
  alignas(64) double hl[kMaxJp * kMaxJp];
  for (int a = 0; a < J; ++a) wp[a] = w[a];
  if (H)
    for (int i = 0; i < Jp * Jp; ++i) hl[i] = 0;
  if (Jp > J)
    for (int k = 0; k < kBlock; ++k)
      for (int a = J; a < Jp; ++a) X[k * Jp + a] = S[k * Jp + a] = 0;
  double loss = 0;
  const std::size_t n = idx.size();
  for (std::size_t k0 = 0; k0 < n; k0 += kBlock) {
    const int c = static_cast<int>(std::min<std::size_t>(kBlock, n - k0));
    prefetch_rows(table, J, idx.data(), k0 + kBlock, std::min<std::size_t>(n, k0 + 2 * kBlock));
    gather_rows<JJ>(table, J, Jp, idx.data() + k0, c, X);
    // The sigmoid loops run over whole vectors of labels: up to cv, not the whole block (a
    // user's 40 labels are a block of 32 and one of 8).
    const int cv = (c + kV - 1) / kV * kV;
    block_margins<JJ>(X, Jp, c, wp, m);
    for (int k = 0; k < c; ++k) yb[k] = y[k0 + k];
    for (int k = c; k < cv; ++k) yb[k] = m[k] = 0;
    for (int k = 0; k < cv; ++k) {
      const double mk = m[k];
      const double ek = exp_nonpos(mk >= 0 ? -mk : mk);
      e[k] = ek;
      const double pk = (mk >= 0 ? 1.0 : ek) / (1.0 + ek);
      p[k] = pk;
      r[k] = pk - yb[k];
      sw[k] = pk * (1 - pk);
    }
    if (out.loss) {
      for (int k = 0; k < cv; ++k)
        lossb[k] = (m[k] > 0 ? m[k] : 0.0) + log1p_pos(e[k]) - yb[k] * m[k];
      for (int k = 0; k < c; ++k) loss += lossb[k];
    }
    if (out.margins)
      for (int k = 0; k < c; ++k) out.margins[k0 + k] = m[k];
    if (out.probs)
      for (int k = 0; k < c; ++k) out.probs[k0 + k] = p[k];
    if (H)
      for (int k = 0; k < c; ++k)
        for (int a = 0; a < J; ++a) S[k * Jp + a] = sw[k] * X[k * Jp + a];
    if constexpr (kOneVector) {
      if (g && H)
        gradient_hessian_block<JJ, true, true>(X, S, r, c, gl, hl);
      else if (g)
        gradient_hessian_block<JJ, true, false>(X, S, r, c, gl, hl);
      else if (H)
        gradient_hessian_block<JJ, false, true>(X, S, r, c, gl, hl);
    } else {
      if (g)
        for (int k = 0; k < c; ++k)
          for (int a = 0; a < Jp; ++a) gl[a] += r[k] * X[k * Jp + a];
      if (H) hessian_block(X, S, J, Jp, c, hl);
    }
  }
  if (g)
    for (int a = 0; a < J; ++a) g[a] += gl[a];
  if (H)
    for (int b = 0; b < J; ++b)
      for (int a = b; a < J; ++a) H[std::size_t(b) * J + a] += hl[b * Jp + a];
  return loss;
}

// q[k] = x_k . d for the row's partners (the line search's change of margin per unit step).
template <int JJ>
void project_small(const double* d, int Jrt, const double* table,
                   std::span<const std::uint32_t> idx, double* q) {
  constexpr int kMaxJ = JJ > 0 ? JJ : kMaxSmallJ;
  constexpr int kMaxJp = padded(kMaxJ);
  const int J = JJ > 0 ? JJ : Jrt;
  const int Jp = JJ > 0 ? kMaxJp : padded(J);
  alignas(64) double X[kBlock * kMaxJp];
  alignas(64) double dp[kMaxJp] = {};
  for (int a = 0; a < J; ++a) dp[a] = d[a];
  if (Jp > J)
    for (int k = 0; k < kBlock; ++k)
      for (int a = J; a < Jp; ++a) X[k * Jp + a] = 0;
  const std::size_t n = idx.size();
  for (std::size_t k0 = 0; k0 < n; k0 += kBlock) {
    const int c = static_cast<int>(std::min<std::size_t>(kBlock, n - k0));
    prefetch_rows(table, J, idx.data(), k0 + kBlock, std::min<std::size_t>(n, k0 + 2 * kBlock));
    gather_rows<JJ>(table, J, Jp, idx.data() + k0, c, X);
    // (Through a block-sized buffer: q has room for the row's labels only.)
    alignas(64) double qb[kBlock];
    block_margins<JJ>(X, Jp, c, dp, qb);
    for (int k = 0; k < c; ++k) q[k0 + k] = qb[k];
  }
}

// c[0..j] = 0 by whole vectors (the vector holding j keeps its lanes past j): a loop of scalar
// stores compiles to `rep stos`, whose start-up cost was most of a J = 8 factorization.
inline void clear_through(double* c, int j) {
  const int v0 = j / kV * kV;
  for (int i = 0; i < v0; i += kV) store(c + i, vd{});
  vd lane;
  for (int a = 0; a < kV; ++a) lane[a] = v0 + a;
  const vd keep = load(c + v0);
  store(c + v0, lane > static_cast<double>(j) ? keep : vd{});
}

// d = -H^-1 g by an LDL^T factorization of the lower triangle of H (J x J column-major): no
// square roots, one division per column. Fails (returns false) when a pivot (the square of
// the Cholesky factor's diagonal entry) is not above min_pivot or d is not finite: the caller
// then takes the general path (newton_direction), which decides again.
template <int JJ>
bool direction_small(int Jrt, const double* H, const double* g, double min_pivot, double* d) {
  constexpr int kMaxJ = JJ > 0 ? JJ : kMaxSmallJ;
  constexpr int kMaxJp = padded(kMaxJ);
  const int J = JJ > 0 ? JJ : Jrt;
  const int Jp = JJ > 0 ? kMaxJp : padded(J);
  // Columns of stride Jp, in vectors. Column j holds, once factored, L's strictly lower part
  // with zeros above, so that updates and solves are whole-vector operations.
  alignas(64) double L[kMaxJp * kMaxJp];
  alignas(64) double v[kMaxJp], x[kMaxJp], dinv[kMaxJp];
  for (int b = 0; b < J; ++b)
    for (int a = 0; a < Jp; ++a) L[b * Jp + a] = a >= b && a < J ? H[b * J + a] : 0.0;
  for (int j = 0; j < J; ++j) {
    double* cj = L + j * Jp;
    const double piv = cj[j];
    if (!(piv > min_pivot)) return false;
    const double inv = 1.0 / piv;
    dinv[j] = inv;
    // Clear column j down to its diagonal (the updates below leave values above the diagonal
    // of later columns, which are never needed), so that whole-vector updates and solves only
    // see its strictly lower part.
    clear_through(cj, j);
    // Right-looking: column b -= (L_bj / piv) column j for the trailing columns.
    const int i0 = (j + 1) / kV * kV;
    for (int b = j + 1; b < J; ++b) {
      const double f = cj[b] * inv;
      double* cb = L + b * Jp;
      for (int i = i0; i < Jp; i += kV) store(cb + i, load(cb + i) - load(cj + i) * f);
    }
    for (int i = i0; i < Jp; i += kV) store(cj + i, load(cj + i) * inv);
  }
  // L v = -g (unit diagonal), v = D^-1 v, then L^T x = v.
  for (int a = 0; a < Jp; ++a) {
    v[a] = a < J ? -g[a] : 0.0;
    x[a] = 0;
  }
  for (int j = 0; j < J; ++j) {
    const double vj = v[j];
    const double* cj = L + j * Jp;
    for (int i = (j + 1) / kV * kV; i < Jp; i += kV) store(v + i, load(v + i) - load(cj + i) * vj);
  }
  for (int a = J; a < Jp; ++a) dinv[a] = 0;
  // (Whole vectors: scalar stores read back as a vector would wait on store forwarding.)
  for (int i = 0; i < Jp; i += kV) store(v + i, load(v + i) * load(dinv + i));
  for (int j = J - 1; j >= 0; --j) {
    const double* cj = L + j * Jp;
    const int i0 = (j + 1) / kV * kV;
    if (i0 >= Jp) {
      x[j] = v[j];
      continue;
    }
    vd acc = load(cj + i0) * load(x + i0);
    for (int i = i0 + kV; i < Jp; i += kV) acc += load(cj + i) * load(x + i);
    x[j] = v[j] - hsum<kV>(acc);
  }
  for (int a = 0; a < J; ++a) {
    if (!std::isfinite(x[a])) return false;
    d[a] = x[a];
  }
  return true;
}

// Several rows' Newton directions at once, one row per vector lane: a row's LDL^T is a chain
// of dependent divisions and updates whose latency, not its arithmetic, is its cost, and kV
// rows' chains fill the vector units side by side. Each lane does the arithmetic of the others
// on its own row alone, so a row's result does not depend on the rows beside it or on its
// lane. The same factorization (no pivoting) gives, when inv is not null, the lower triangle of
// H^-1 by W = L^-1 and H^-1 = W^T D^-1 W. Lanes past `rows` factor the identity.
template <int J>
unsigned directions_lanes(int rows, const double* const* H, const double* const* g,
                          const double* min_pivot, double* const* d, double* const* inv) {
  using vm = decltype(vd{} < vd{});
  vd A[J * J];  // (a, b) at b * J + a, a >= b: H, then L below the diagonal
  for (int b = 0; b < J; ++b)
    for (int a = b; a < J; ++a) {
      vd v;
      for (int l = 0; l < kV; ++l) v[l] = l < rows ? H[l][b * J + a] : (a == b ? 1.0 : 0.0);
      A[b * J + a] = v;
    }
  vd minp;
  for (int l = 0; l < kV; ++l) minp[l] = l < rows ? min_pivot[l] : 0.0;
  vm ok = minp == minp;  // all lanes
  vd dinv[J];
  for (int j = 0; j < J; ++j) {
    const vd piv = A[j * J + j];
    ok &= piv > minp;
    const vd r = 1.0 / piv;
    dinv[j] = r;
    for (int b = j + 1; b < J; ++b) {
      const vd f = A[j * J + b] * r;
      for (int a = b; a < J; ++a) A[b * J + a] -= A[j * J + a] * f;
    }
    for (int a = j + 1; a < J; ++a) A[j * J + a] *= r;
  }
  // L v = -g, v = D^-1 v, L^T x = v (in v).
  vd v[J];
  for (int a = 0; a < J; ++a)
    for (int l = 0; l < kV; ++l) v[a][l] = l < rows ? -g[l][a] : 0.0;
  for (int j = 0; j < J; ++j)
    for (int i = j + 1; i < J; ++i) v[i] -= A[j * J + i] * v[j];
  for (int j = 0; j < J; ++j) v[j] *= dinv[j];
  for (int j = J - 1; j >= 0; --j)
    for (int i = j + 1; i < J; ++i) v[j] -= A[j * J + i] * v[i];
  for (int a = 0; a < J; ++a) ok &= (v[a] - v[a]) == 0.0;  // finite
  unsigned mask = 0;
  for (int l = 0; l < rows; ++l)
    if (ok[l]) {
      mask |= 1u << l;
      for (int a = 0; a < J; ++a) d[l][a] = v[a][l];
    }
  if (!inv || !mask) return mask;
  // W = L^-1 (unit lower): W(i, j) = -L(i, j) - sum_{j < k < i} L(i, k) W(k, j); then
  // H^-1(a, b) = sum_{k >= a} W(k, a) W(k, b) / D(k) for a >= b, with W(k, k) = 1.
  vd W[J * J];
  for (int j = 0; j < J; ++j)
    for (int i = j + 1; i < J; ++i) {
      vd s = -A[j * J + i];
      for (int k = j + 1; k < i; ++k) s -= A[k * J + i] * W[j * J + k];
      W[j * J + i] = s;
    }
  for (int b = 0; b < J; ++b)
    for (int a = b; a < J; ++a) {
      vd s = (a == b ? dinv[a] : W[b * J + a] * dinv[a]);
      for (int k = a + 1; k < J; ++k) s += W[a * J + k] * (W[b * J + k] * dinv[k]);
      for (int l = 0; l < rows; ++l)
        if (mask >> l & 1) inv[l][b * J + a] = s[l];
    }
  return mask;
}

// Calls F::run<J>(args...) for the compile-time J equal to the runtime one (1..kMaxSmallJ).
template <class F, int... Js, class... Args>
auto dispatch(std::integer_sequence<int, Js...>, int J, Args&&... args) {
  using R = decltype(F::template run<1>(args...));
  R result{};
  const bool done =
      ((J == Js + 1 ? (result = F::template run<Js + 1>(args...), true) : false) || ...);
  if (!done) result = F::template run<0>(args...);
  return result;
}
constexpr auto kSmallJs = std::make_integer_sequence<int, kMaxSmallJ>{};

struct Accumulate {
  template <int JJ>
  static double run(int J, const double* w, const double* table, std::span<const std::uint32_t> idx,
                    std::span<const float> y, const LabelPass& out) {
    return accumulate_small<JJ>(w, J, table, idx, y, out);
  }
};
struct Project {
  template <int JJ>
  static bool run(int J, const double* d, const double* table, std::span<const std::uint32_t> idx,
                  double* q) {
    project_small<JJ>(d, J, table, idx, q);
    return true;
  }
};
struct Direction {
  template <int JJ>
  static bool run(int J, const double* H, const double* g, double min_pivot, double* d) {
    return direction_small<JJ>(J, H, g, min_pivot, d);
  }
};

struct Directions {
  template <int JJ>
  static unsigned run(int rows, const double* const* H, const double* const* g,
                      const double* min_pivot, double* const* d, double* const* inv) {
    if constexpr (JJ == 0) {
      return 0;
    } else {
      unsigned mask = 0;
      for (int r0 = 0; r0 < rows; r0 += kV) {
        const int n = std::min(kV, rows - r0);
        mask |= directions_lanes<JJ>(n, H + r0, g + r0, min_pivot + r0, d + r0,
                                     inv ? inv + r0 : nullptr)
                << r0;
      }
      return mask;
    }
  }
};

double accumulate(int J, const double* w, const double* table, std::span<const std::uint32_t> idx,
                  std::span<const float> y, const LabelPass& out) {
  return dispatch<Accumulate>(kSmallJs, J, J, w, table, idx, y, out);
}

void project(int J, const double* d, const double* table, std::span<const std::uint32_t> idx,
             double* q) {
  dispatch<Project>(kSmallJs, J, J, d, table, idx, q);
}

bool direction(int J, const double* H, const double* g, double min_pivot, double* d) {
  return dispatch<Direction>(kSmallJs, J, J, H, g, min_pivot, d);
}

double loss_change(const double* m, const double* p, const double* q, const float* y, std::size_t n,
                   double t, std::vector<double>& scratch) {
  // Per label into scratch (a loop that vectorizes), then summed in a fixed order: kV lanes of
  // every kV-th label, their lanes by hsum's tree, then the last n mod kV labels. Steps with
  // |t q| > 1 (rare: far from the optimum) take the exact softplus difference instead, in a
  // second loop over the labels only when there are any.
  scratch.resize(n);
  double* out = scratch.data();
  std::size_t big = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double delta = t * q[i];
    const double dc = delta > 1.0 ? 1.0 : (delta < -1.0 ? -1.0 : delta);
    out[i] = log1p_pos(p[i] * expm1_small(dc)) - y[i] * delta;
    big += std::abs(delta) > 1.0;
  }
  if (big)
    for (std::size_t i = 0; i < n; ++i) {
      const double delta = t * q[i];
      if (std::abs(delta) > 1.0) out[i] = bce_change(m[i], p[i], delta, y[i]);
    }
  vd acc = {};
  std::size_t i = 0;
  for (; i + kV <= n; i += kV) acc += load(out + i);
  double sum = hsum<kV>(acc);
  for (; i < n; ++i) sum += out[i];
  return sum;
}

unsigned directions(int J, int rows, const double* const* H, const double* const* g,
                    const double* min_pivot, double* const* d, double* const* inv) {
  return dispatch<Directions>(std::make_integer_sequence<int, kMaxBatchJ>{}, J, rows, H, g,
                              min_pivot, d, inv);
}

void logistic_terms(const double* m, const float* y, std::size_t n, double scale, double* loss,
                    double* p) {
  // One loop per case (not a test per label), so that each vectorizes and exp is taken once.
  if (p)
    for (std::size_t k = 0; k < n; ++k) {
      const double x = scale * m[k];
      const double e = exp_nonpos(x >= 0 ? -x : x);
      loss[k] = (x > 0 ? x : 0.0) + log1p_pos(e) - static_cast<double>(y[k]) * x;
      p[k] = (x >= 0 ? 1.0 : e) / (1.0 + e);
    }
  else
    for (std::size_t k = 0; k < n; ++k) {
      const double x = scale * m[k];
      const double e = exp_nonpos(x >= 0 ? -x : x);
      loss[k] = (x > 0 ? x : 0.0) + log1p_pos(e) - static_cast<double>(y[k]) * x;
    }
}

}  // namespace

Table table() {
  return {&accumulate,  &project,        &direction,          &directions,
          &loss_change, &logistic_terms, PREF_KERNEL_ISA_NAME};
}

}  // namespace pref::kernels::PREF_KERNEL_ISA
