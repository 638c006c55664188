#pragma once
// A fit that starts from an existing model (`pref fit --init model:PATH`; docs/design.md, "Warm
// start"): the model's rows of U and Z for the users and comparisons it has (the same ids: the
// data grew, e.g. by 10% more labels or users), the prior's mean for the users beyond it (0
// under the ridge), zero rows for the comparisons beyond it (the first comparison half-step
// solves them from 0), and the model's population prior (its spread taken to be the prior's
// own, as at a fresh start). The model must be a factor model of the same J with free
// comparison factors, with at most the data's users and comparisons, and finite; otherwise a
// collective InputError naming the file says which (exit 2).
#include <cstdint>
#include <string>

#include "solver/base/mpi.hpp"
#include "solver/fit/fit.hpp"
#include "solver/fit/state.hpp"
#include "solver/layout/distribute.hpp"

namespace pref {

struct WarmStart {
  FitState state;                            // a fresh state (empty history) at the model's factors
  std::uint64_t checksum = 0;                // of the model's factor rows (with their global ids)
  std::uint64_t users = 0, comparisons = 0;  // the model's
};

// `option` names the option in messages (e.g. "--init model:m.h5"). Collective.
WarmStart warm_start(const mpi::Comm& comm, const std::string& path, const std::string& option,
                     const Partitions& parts, const FitConfig& cfg);

}  // namespace pref
