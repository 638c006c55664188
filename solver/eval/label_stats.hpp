#pragma once
// Summaries of distributed label data (for `pref inspect` and run reports).
#include <cstdint>

#include "io/label_file.hpp"
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
  // Users and comparisons with at least one label, and comparisons with exactly one (the
  // regime where a ridge per comparison outweighs the labels: docs/design.md, "Item models").
  std::uint64_t labelled_users = 0, labelled_comparisons = 0, single_label_comparisons = 0;
};

SplitStats split_stats(const mpi::Comm& comm, const LabelMatrix& m);

// The response structure of a label file seen through a split's labels (pref inspect).
struct ResponseStats {
  std::uint64_t labelled_responses = 0;  // responses in a comparison with a label of the split
  CountSummary per_prompt;               // responses per prompt, over all prompts
};

// m: a split partitioned as loaded (its comparison rows on their owners); responses: the file's
// response table (whole on every rank). Collective.
ResponseStats response_stats(const mpi::Comm& comm, const io::ResponseTable& responses,
                             const LabelMatrix& m);

}  // namespace pref
