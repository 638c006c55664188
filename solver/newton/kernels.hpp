#pragma once
// The hot label loops of the Newton kernels (solver/newton/newton.hpp), compiled for several x86-64
// instruction sets and chosen once at run time from what the CPU supports, so one binary runs
// on any node of a cluster and uses AVX-512 where it exists. PREF_KERNELS=generic|avx2|avx512
// forces a choice (e.g. to compare).
#include <cstdint>
#include <span>
#include <vector>

namespace pref {
struct LabelPass;
}

namespace pref::kernels {

// The kernels handle J up to this; larger J takes the BLAS-3 path in newton.cpp.
inline constexpr int kMaxSmallJ = 32;
// `directions` handles J up to this, and up to kMaxRows rows a call.
inline constexpr int kMaxBatchJ = 16;
inline constexpr int kMaxRows = 8;

struct Table {
  double (*accumulate)(int J, const double* w, const double* table,
                       std::span<const std::uint32_t> idx, std::span<const float> y,
                       const LabelPass& out);
  // q[k] = x_k . d for the partners x_k = table row idx[k].
  void (*project)(int J, const double* d, const double* table, std::span<const std::uint32_t> idx,
                  double* q);
  // d = -H^-1 g by Cholesky of the lower triangle of H (J x J column-major); false when a
  // squared pivot is not above min_pivot (or d is not finite).
  bool (*direction)(int J, const double* H, const double* g, double min_pivot, double* d);
  // The same for `rows` rows at once (at most kMaxRows, J at most kMaxBatchJ): row l's H[l],
  // g[l], min_pivot[l] give d[l], and, when inv is not null, the lower triangle of H[l]^-1
  // (column-major J x J; the upper part is not written) in inv[l]. Bit l of the result is set
  // when row l succeeded (pivots above min_pivot[l], d finite); a failed row's outputs are not
  // written. A row's results do not depend on the other rows of the call (one row per vector
  // lane: kernels_impl.hpp, directions_lanes).
  unsigned (*directions)(int J, int rows, const double* const* H, const double* const* g,
                         const double* min_pivot, double* const* d, double* const* inv);
  double (*loss_change)(const double* m, const double* p, const double* q, const float* y,
                        std::size_t n, double t, std::vector<double>& scratch);
  // Per label at x = scale m[k]: loss[k] = BCE(sigmoid(x), y[k]) and, where p is not null,
  // p[k] = sigmoid(x) (the evaluation's log-loss and the calibration's sums).
  void (*logistic_terms)(const double* m, const float* y, std::size_t n, double scale, double* loss,
                         double* p);
  const char* isa;
};

const Table& best();

namespace generic {
Table table();
}
namespace avx2 {
Table table();
}
namespace avx512 {
Table table();
}

}  // namespace pref::kernels
