#include "solver/base/partition.hpp"

#include <algorithm>
#include <limits>
#include <stdexcept>

#include "solver/base/rng.hpp"

namespace pref {

Partition::Partition(std::vector<GlobalId> bounds) : bounds_(std::move(bounds)) {
  if (bounds_.empty() || bounds_.front() != 0 || !std::is_sorted(bounds_.begin(), bounds_.end()))
    throw Error("Partition: bounds must start at 0 and be non-decreasing");
}

Partition Partition::uniform(GlobalId n, int p) {
  std::vector<GlobalId> b(p + 1);
  for (int r = 0; r <= p; ++r) b[r] = n / p * r + std::min<GlobalId>(r, n % p);
  return Partition(std::move(b));
}

int Partition::owner(GlobalId g) const {
  // The last range whose begin is <= g and that is non-empty.
  auto it = std::upper_bound(bounds_.begin(), bounds_.end(), g);
  return static_cast<int>(it - bounds_.begin()) - 1;
}

Partition Partition::balanced(const mpi::Comm& comm, const Partition& blocks,
                              std::span<const std::uint64_t> counts) {
  const int p = comm.size();
  const int me = comm.rank();
  const GlobalId n = blocks.size();
  std::uint64_t local_total = 0;
  for (auto c : counts) local_total += c;
  const std::uint64_t total = mpi::allreduce_sum(comm, local_total);
  if (total == 0) return uniform(n, p);
  std::uint64_t prefix = mpi::exscan_sum(comm, local_total);
  // Boundary k is the smallest id j whose prefix weight sum_{i<j} w_i reaches k*total/p
  // (rounded up); each rank finds the boundaries that fall in its block, a MIN-reduce merges.
  std::vector<GlobalId> b(p + 1, n);
  b[0] = 0;
  auto target = [&](int k) {
    return static_cast<std::uint64_t>((static_cast<uint128>(total) * k + p - 1) / p);
  };
  GlobalId j = blocks.begin(me);
  int k = 1;
  while (k < p && target(k) <= prefix) ++k;  // reached before this block: owned by a lower rank
  for (std::size_t i = 0; i < counts.size() && k < p; ++i) {
    prefix += counts[i];
    ++j;
    while (k < p && target(k) <= prefix) b[k++] = j;
  }
  mpi::allreduce(comm, std::span<GlobalId>(b.data() + 1, p - 1), MPI_MIN);
  for (int kk = 1; kk < p; ++kk) b[kk] = std::max(b[kk], b[kk - 1]);
  b[p] = n;
  return Partition(std::move(b));
}

std::vector<std::uint64_t> count_by_block(const mpi::Comm& comm, GlobalId n,
                                          std::span<const std::uint32_t> ids) {
  const int p = comm.size();
  const Partition blocks = Partition::uniform(n, p);
  // Where this rank's ids lie in a range not much wider than their number (a file sorted or
  // grouped by id, or few distinct ids such as comparisons), they are counted here first and
  // each id present goes to its owner once, as (count << 32 | id); otherwise every id is sent
  // as it is (4 bytes, as the file slice's own column). The owner adds both, so the result does
  // not depend on which way a rank chose.
  std::uint32_t lo_id = std::numeric_limits<std::uint32_t>::max(), hi_id = 0;
  for (auto id : ids) {
    lo_id = std::min(lo_id, id);
    hi_id = std::max(hi_id, id);
  }
  const std::uint64_t span = ids.empty() ? 0 : std::uint64_t{hi_id} - lo_id + 1;
  const bool dense = span <= 2 * std::uint64_t{ids.size()} + (1u << 16) &&
                     ids.size() < std::numeric_limits<std::uint32_t>::max();
  std::vector<std::uint64_t> pair_counts(p, 0), id_counts(p, 0), pairs;
  std::vector<std::uint32_t> raw;
  if (dense) {
    std::vector<std::uint32_t> hist(span, 0);
    for (auto id : ids) ++hist[id - lo_id];
    // ids ascend, so each owner's ids are one run: walk the blocks along.
    int r = span ? blocks.owner(lo_id) : 0;
    for (std::uint64_t k = 0; k < span; ++k) {
      if (!hist[k]) continue;
      const GlobalId id = lo_id + k;
      while (id >= blocks.end(r)) ++r;
      ++pair_counts[r];
      pairs.push_back(std::uint64_t{hist[k]} << 32 | id);
    }
  } else {
    for (auto id : ids) ++id_counts[blocks.owner(id)];
    std::vector<std::uint64_t> off(p, 0);
    for (int r = 1; r < p; ++r) off[r] = off[r - 1] + id_counts[r - 1];
    raw.resize(ids.size());
    for (auto id : ids) raw[off[blocks.owner(id)]++] = id;
  }
  std::vector<std::uint64_t> counts(blocks.count(comm.rank()), 0);
  const GlobalId lo = blocks.begin(comm.rank());
  for (auto v : mpi::alltoallv<std::uint64_t>(comm, pairs, pair_counts))
    counts[(v & 0xffffffffu) - lo] += v >> 32;
  pairs = {};
  for (auto id : mpi::alltoallv<std::uint32_t>(comm, raw, id_counts)) ++counts[id - lo];
  return counts;
}

}  // namespace pref
