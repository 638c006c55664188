#pragma once
// k-means of n rows (n x J, row-major) into min(K, n) centres: k-means++ seeding from the
// counter-based stream kKMeansStream, at most kKMeansIterations Lloyd iterations, ties to the
// lowest centre; a centre left without members keeps its place. assign[i] is the centre of
// row i after the last assignment step. Pure function of its arguments (the same on every
// rank). The one k-means of pref: `adapt --prior mixture` (solver/adapt/mixture.hpp) and
// `pref types` (solver/discrete/types.hpp).
#include <cstddef>
#include <cstdint>
#include <vector>

namespace pref {

struct KMeans {
  int K = 0;
  std::vector<double> centres;  // K x J, row-major
  std::vector<int> assign;      // n
};
inline constexpr std::uint32_t kKMeansStream = 102;
inline constexpr int kKMeansIterations = 50;
KMeans kmeans(const double* rows, std::size_t n, int J, int K, std::uint64_t seed);

}  // namespace pref
