#pragma once
// Where the fit's labels live on a rank and how factor rows move to them (docs/design.md, "The
// fit"): both orientations of the rank's training labels with partners as ghost-table slots,
// the validation labels of its users, the ghost plans that fetch Z rows to the users and U rows
// to the comparison owners, and the choice between the two exchange patterns of the comparison
// half-step by a cost model:
//   ship:   comparison owners fetch the U rows of their labels and solve locally;
//   reduce: users stay in place; every rank sums, per comparison it touches, the partial
//           gradient, Hessian and loss of its own users, and reduces them to the owner, which
//           takes the Newton step; the line search runs the same way.
#include <cstdint>
#include <span>
#include <vector>

#include "solver/base/mpi.hpp"
#include "solver/fit/fit.hpp"
#include "solver/layout/distribute.hpp"
#include "solver/layout/exchange.hpp"

namespace pref {

// One orientation of a rank's labels with partners as indices into a ghost table.
struct LocalRows {
  std::vector<std::uint64_t> ptr{0};
  std::vector<std::uint32_t> idx;
  std::vector<float> y;
  std::size_t rows() const { return ptr.size() - 1; }
  std::size_t bytes() const {
    return ptr.size() * sizeof(ptr[0]) + idx.size() * sizeof(idx[0]) + y.size() * sizeof(y[0]);
  }
  std::span<const std::uint32_t> idx_of(std::size_t r) const {
    return {idx.data() + ptr[r], ptr[r + 1] - ptr[r]};
  }
  std::span<const float> y_of(std::size_t r) const {
    return {y.data() + ptr[r], ptr[r + 1] - ptr[r]};
  }
};

struct FitLayout {
  Partitions parts;
  std::uint64_t labels = 0;             // training labels, all ranks
  bool has_validation = false;          // a validation split with labels
  std::uint64_t validation_labels = 0;  // all ranks
  // zplan: the Z rows the users' training and validation labels touch; uplan (ship): the U rows
  // the comparisons' labels touch.
  GhostPlan zplan, uplan;
  LocalRows users, users_val;  // by own user, partners = zplan slots
  LocalRows comps;             // ship: by own comparison, partners = uplan slots
  LocalRows ghost_comps;       // reduce: by zplan slot, partners = own user rows
  Exchange exchange = Exchange::kShip;
  // The cost model's bytes per sweep and seconds per sweep of the slowest rank.
  double bytes_ship = 0, bytes_reduce = 0, cost_ship = 0, cost_reduce = 0;

  // Takes over the labels (their arrays become the layout's). The item models (cfg.items not
  // comparisons) force the ship pattern. Collective.
  FitLayout(const mpi::Comm& comm, LabelMatrix&& train, LabelMatrix* validation,
            const FitConfig& cfg);
  // Bytes per training label that this rank keeps for both orientations of its labels.
  double label_bytes_per_label() const;
};

}  // namespace pref
