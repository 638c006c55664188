#pragma once
// Summaries of distributed label data (for `pref inspect` and run reports).
#include <cstdint>

#include "solver/base/mpi.hpp"
#include "solver/layout/distribute.hpp"

namespace pref {

struct CountSummary {
  std::uint64_t min = 0, max = 0;
  double median = 0, mean = 0;
};

// Exact min/median/max/mean of counts spread over ranks (each rank passes its own). Collective.
CountSummary summarize_counts(const mpi::Comm& comm, std::span<const std::uint64_t> counts);

struct SplitStats {
  std::uint64_t labels = 0;
  std::uint64_t ties = 0;  // labels equal to 0.5
  CountSummary per_user, per_comparison;
};

SplitStats split_stats(const mpi::Comm& comm, const LabelMatrix& m);

}  // namespace pref
