#pragma once
// Who owns what: a split of global ids [0, n) into contiguous ranges, one per rank.
// A value type kept apart from any storage; global ids are uint64, local indices are offsets
// into a rank's own range.
#include <cstdint>
#include <span>
#include <vector>

#include "solver/base/mpi.hpp"

namespace pref {

using GlobalId = std::uint64_t;

class Partition {
 public:
  Partition() = default;
  explicit Partition(std::vector<GlobalId> bounds);

  // n ids split into p ranges whose sizes differ by at most one.
  static Partition uniform(GlobalId n, int p);
  // Split so that each range holds about the same total weight. counts are the weights of the
  // ids of this rank's range in `blocks`, which must be uniform(n, comm.size()). Collective.
  // The result depends only on the global weights and the number of ranks.
  static Partition balanced(const mpi::Comm& comm, const Partition& blocks,
                            std::span<const std::uint64_t> counts);

  int parts() const { return static_cast<int>(bounds_.size()) - 1; }
  GlobalId size() const { return bounds_.back(); }
  GlobalId begin(int r) const { return bounds_[r]; }
  GlobalId end(int r) const { return bounds_[r + 1]; }
  GlobalId count(int r) const { return bounds_[r + 1] - bounds_[r]; }
  // The rank owning id g (g < size()).
  int owner(GlobalId g) const;
  const std::vector<GlobalId>& bounds() const { return bounds_; }
  bool operator==(const Partition&) const = default;

 private:
  std::vector<GlobalId> bounds_{0};
};

// Global weights of ids, given for each local item its global id: sends each id to its owner in
// uniform(n, p) and returns the weights (item counts) of this rank's uniform block. Collective.
std::vector<std::uint64_t> count_by_block(const mpi::Comm& comm, GlobalId n,
                                          std::span<const std::uint32_t> ids);

}  // namespace pref
