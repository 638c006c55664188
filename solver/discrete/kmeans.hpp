#pragma once
// k-means of n rows (J columns) into min(K, n) centres: k-means++ seeding from the
// counter-based stream kKMeansStream, at most kKMeansIterations Lloyd iterations, ties to the
// lowest centre; a centre left without members keeps its place. The one k-means of pref:
// `adapt --prior mixture` (solver/adapt/mixture.hpp) and `pref types`
// (solver/discrete/types.hpp).
//
// Distributed (issue 24): each rank holds a contiguous range of the rows, the ranges in rank
// order. A row's distances and assignment are its own; every sum over rows (k-means++'s total
// and its scan, the centres' sums and counts) is a running sum passed from rank to rank, each
// adding its rows in order, so its additions are those of one process adding every row in order:
// the result is bitwise the same at any rank count, and the same as the one-process call.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "solver/base/mpi.hpp"

namespace pref {

struct KMeans {
  int K = 0;
  std::vector<double> centres;  // K x J, row-major
  std::vector<int> assign;      // the caller's rows: the centre of each after the last assignment
};
inline constexpr std::uint32_t kKMeansStream = 102;
inline constexpr int kKMeansIterations = 50;

// Collective. rows: this rank's rows [first, first + local) of the n rows, row-major.
KMeans kmeans(const mpi::Comm& comm, const double* rows, std::uint64_t first, std::size_t local,
              std::uint64_t n, int J, int K, std::uint64_t seed);
// All n rows on this process (a pure function of its arguments).
KMeans kmeans(const double* rows, std::size_t n, int J, int K, std::uint64_t seed);

}  // namespace pref
