#pragma once
// Shared by the fit tests: a whole label set built identically on every rank, its distribution
// over the ranks, a distributed fit from random_factors and its factors gathered on every rank.
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "solver/base/labels.hpp"
#include "solver/base/mpi.hpp"
#include "solver/fit/fit.hpp"
#include "solver/layout/distribute.hpp"

namespace pref::fit_test {

using Matrix = Eigen::MatrixXd;
using Vector = Eigen::VectorXd;
using RowMajor = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

struct Problem {
  std::uint64_t users = 0, comparisons = 0;
  LabelColumns cols;  // every label, in "file" order
};

// This rank's share of the rows [n r / p, n (r+1) / p).
inline LabelColumns share_of(const mpi::Comm& comm, const LabelColumns& all) {
  const std::size_t n = all.size(), p = comm.size(), r = comm.rank();
  const std::size_t lo = n * r / p, hi = n * (r + 1) / p;
  LabelColumns out;
  out.first_row = lo;
  for (std::size_t k = lo; k < hi; ++k) out.push_back(all.user[k], all.comparison[k], all.value[k]);
  return out;
}

inline LabelMatrix distribute_problem(const mpi::Comm& comm, const Problem& pb) {
  const LabelColumns mine = share_of(comm, pb.cols);
  const Partitions parts = balanced_partitions(comm, mine, pb.users, pb.comparisons);
  return distribute(comm, mine, parts, pb.users, pb.comparisons, Duplicates::kError, "test");
}

// Every rank's rows (J columns, row-major) concatenated in rank order: the global matrix.
inline std::vector<double> allgather_rows(const mpi::Comm& comm, const std::vector<double>& mine) {
  const std::vector<int> counts = mpi::allgather(comm, static_cast<int>(mine.size()));
  std::vector<int> displs(counts.size(), 0);
  for (std::size_t r = 1; r < counts.size(); ++r) displs[r] = displs[r - 1] + counts[r - 1];
  std::vector<double> all(displs.back() + counts.back());
  PREF_MPI_CHECK(MPI_Allgatherv(mine.data(), static_cast<int>(mine.size()), MPI_DOUBLE, all.data(),
                                counts.data(), displs.data(), MPI_DOUBLE, comm.get()));
  return all;
}

inline Matrix as_matrix(const std::vector<double>& rows, int J) {
  return Eigen::Map<const RowMajor>(rows.data(), static_cast<Eigen::Index>(rows.size() / J), J);
}

inline bool all_finite(const std::vector<double>& v) {
  for (double x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

// A distributed fit from random_factors, its factors gathered on every rank.
struct DistFit {
  FitResult res;
  std::vector<double> U, Z;  // global, row-major
  Partitions parts;
};

inline DistFit gather_fit(const mpi::Comm& comm, const Problem& pb, const FitConfig& cfg,
                          const std::string& what) {
  LabelMatrix m = distribute_problem(comm, pb);
  DistFit out;
  out.parts = m.parts;
  Factors init = random_factors(comm, m.parts, cfg);
  out.res = fit(comm, std::move(m), std::nullopt, std::move(init), cfg);
  out.U = allgather_rows(comm, out.res.factors.U);
  out.Z = allgather_rows(comm, out.res.factors.Z);
  EXPECT_EQ(out.U.size(), pb.users * cfg.J) << what;
  EXPECT_EQ(out.Z.size(), pb.comparisons * cfg.J) << what;
  EXPECT_TRUE(all_finite(out.U)) << what << ": non-finite user factors";
  EXPECT_TRUE(all_finite(out.Z)) << what << ": non-finite comparison factors";
  return out;
}
inline DistFit run_fit(const mpi::Comm& comm, const Problem& pb, const FitConfig& cfg) {
  return gather_fit(comm, pb, cfg, "fit");
}

}  // namespace pref::fit_test
