#pragma once
// Exchange plans, built once per fit: which factor rows this rank needs from whom ("ghosts"),
// and which of its own rows it sends to whom.
//  - fetch():  owners send rows to the ranks that need them (Spark ALS's in/out blocks).
//  - reduce(): the reverse: ranks send per-ghost partial sums to the owners, which add them
//              (a reduce-scatter over the ghost pattern, whose volume does not grow with the
//              number of partner rows).
#include <cstdint>
#include <span>
#include <vector>

#include "solver/base/mpi.hpp"
#include "solver/base/partition.hpp"

namespace pref {

// A set of global ids as a bitmap over the span of its members, with a rank directory so that
// the position of a member among the sorted members is found in O(1).
class IdSet {
 public:
  IdSet() = default;
  // Inserts every id of every list.
  explicit IdSet(std::initializer_list<std::span<const std::uint32_t>> lists);
  std::vector<std::uint32_t> sorted() const;
  // Position of member g among the sorted members.
  std::uint32_t index_of(std::uint32_t g) const {
    const std::uint64_t off = g - lo_;
    const std::uint64_t word = bits_[off >> 6];
    return rank_[off >> 6] + static_cast<std::uint32_t>(__builtin_popcountll(
                                 word & ((std::uint64_t{1} << (off & 63)) - 1)));
  }

 private:
  std::uint32_t lo_ = 0;
  std::vector<std::uint64_t> bits_;
  std::vector<std::uint32_t> rank_;
};

class GhostPlan {
 public:
  GhostPlan() = default;
  // ids: the global ids this rank needs, sorted and unique; owners: who owns each id.
  // Collective.
  GhostPlan(const mpi::Comm& comm, const IdSet& ids, const Partition& owners);

  std::size_t ghosts() const { return ids_.size(); }
  const std::vector<std::uint32_t>& ids() const { return ids_; }
  // Index of global id g among the ghosts (g must be one of them).
  std::uint32_t index_of(std::uint32_t g) const { return set_.index_of(g); }

  // Fills ghost (ghosts() x width, row-major) with the owners' rows of `local`
  // (local rows x width, row-major, rows indexed from the owner's first id). Collective.
  void fetch(const mpi::Comm& comm, std::span<const double> local, int width,
             std::span<double> ghost) const;
  template <class Vector>
  void fetch(const mpi::Comm& comm, std::span<const double> local, int width, Vector& ghost) const {
    ghost.resize(ghosts() * std::size_t(width));
    fetch(comm, local, width, std::span<double>(ghost));
  }
  // Adds every rank's ghost rows (ghosts() x width) into the owners' `local` rows
  // (set to the sum; local must have the owner's row count x width). Collective.
  void reduce(const mpi::Comm& comm, std::span<const double> ghost, int width,
              std::vector<double>& local) const;

  // Bytes one fetch of `width` doubles per row moves between different ranks (this rank's
  // receive side; reduce moves the same the other way).
  std::uint64_t remote_rows() const { return remote_rows_; }

 private:
  IdSet set_;
  std::vector<std::uint32_t> ids_;
  std::vector<std::uint64_t> recv_counts_;  // per owner: ids_ are grouped by owner in order
  std::vector<std::uint64_t> send_counts_;  // per requester
  std::vector<std::uint32_t> send_rows_;    // local rows to send, grouped by requester
  std::uint64_t remote_rows_ = 0;
  mutable std::vector<double> send_;  // fetch's send buffer, reused
};

// Moves rows of `width` doubles (row-major) from one contiguous row layout to another (both
// one range per rank of comm, same total). Collective.
std::vector<double> move_rows(const mpi::Comm& comm, const Partition& from, const Partition& to,
                              const std::vector<double>& local, int width);

}  // namespace pref
