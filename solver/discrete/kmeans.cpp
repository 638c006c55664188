#include "solver/discrete/kmeans.hpp"

#include <Eigen/Core>
#include <algorithm>
#include <limits>

#include "solver/base/error.hpp"
#include "solver/base/rng.hpp"

namespace pref {

KMeans kmeans(const double* rows, std::size_t n, int J, int K, std::uint64_t seed) {
  if (n == 0 || K < 1) throw InputError("k-means: no rows to cluster");
  using RowM = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::Map<const RowM> X(rows, static_cast<Eigen::Index>(n), J);
  K = static_cast<int>(std::min<std::size_t>(std::size_t(K), n));
  Rng rng(seed, static_cast<Stream>(kKMeansStream), 0);
  KMeans out;
  out.K = K;
  out.centres.resize(std::size_t(K) * J);
  Eigen::Map<RowM> C(out.centres.data(), K, J);
  // k-means++: the first centre uniform, each next one drawn with probability proportional to
  // the squared distance to the nearest centre so far (a scan of the cumulative sum).
  std::vector<double> d2(n, std::numeric_limits<double>::infinity());
  C.row(0) = X.row(static_cast<Eigen::Index>(rng.below(n)));
  for (int k = 1; k < K; ++k) {
    double total = 0;
    for (std::size_t i = 0; i < n; ++i) {
      d2[i] = std::min(d2[i], (X.row(i) - C.row(k - 1)).squaredNorm());
      total += d2[i];
    }
    std::size_t pick = n - 1;
    if (total > 0) {
      const double r = rng.uniform() * total;
      double acc = 0;
      for (std::size_t i = 0; i < n; ++i) {
        acc += d2[i];
        if (r < acc) {
          pick = i;
          break;
        }
      }
    } else {
      pick = rng.below(n);
    }
    C.row(k) = X.row(pick);
  }
  std::vector<int>& assign = out.assign;
  assign.assign(n, -1);
  std::vector<std::size_t> count(K);
  for (int it = 0; it < kKMeansIterations; ++it) {
    bool changed = false;
    for (std::size_t i = 0; i < n; ++i) {
      int best = 0;
      double bd = (X.row(i) - C.row(0)).squaredNorm();
      for (int k = 1; k < K; ++k) {
        const double d = (X.row(i) - C.row(k)).squaredNorm();
        if (d < bd) bd = d, best = k;
      }
      if (assign[i] != best) changed = true, assign[i] = best;
    }
    if (!changed) break;
    RowM S = RowM::Zero(K, J);
    std::fill(count.begin(), count.end(), 0);
    for (std::size_t i = 0; i < n; ++i) S.row(assign[i]) += X.row(i), ++count[assign[i]];
    for (int k = 0; k < K; ++k)
      if (count[k] > 0) C.row(k) = S.row(k) / double(count[k]);
  }
  return out;
}

}  // namespace pref
