#pragma once
// From a file's rows to the owners: label-balanced partitions of users and comparisons, and the
// exchange that stores every label once by user and once by comparison (both CSR, rows sorted by
// partner id, so the layout does not depend on the rank count).
#include <cstdint>
#include <string>

#include "solver/base/labels.hpp"
#include "solver/base/mpi.hpp"
#include "solver/base/partition.hpp"

namespace pref {

struct Partitions {
  Partition users;
  Partition comparisons;
};

// A split's labels, distributed: this rank holds the rows of its users and of its comparisons.
struct LabelMatrix {
  std::uint64_t users = 0, comparisons = 0;
  std::uint64_t labels = 0;  // global count
  Partitions parts;
  Csr by_user;        // row r: user parts.users.begin(rank) + r; col: comparison id
  Csr by_comparison;  // row r: comparison parts.comparisons.begin(rank) + r; col: user id

  std::uint64_t first_user(const mpi::Comm& c) const { return parts.users.begin(c.rank()); }
  std::uint64_t first_comparison(const mpi::Comm& c) const {
    return parts.comparisons.begin(c.rank());
  }
};

// A checksum of a split's labels: the sum modulo 2^64 of a hash of every (user, comparison,
// value) (solver/base/hash.hpp), the same at any rank count. It is what a checkpoint records of
// its training data and what a types or adapted file records of the labels it came from
// (io/provenance.hpp). Collective.
std::uint64_t labels_checksum(const mpi::Comm& comm, const LabelMatrix& m);

// Partitions users and comparisons into contiguous ranges holding about the same number of labels
// (of `cols`, normally the training labels). Collective; depends only on the global labels and
// the rank count. Declared ids whose per-id arrays would not fit in the node's memory are a
// collective InputError led by `what` (the file).
Partitions balanced_partitions(const mpi::Comm& comm, const LabelColumns& cols, std::uint64_t users,
                               std::uint64_t comparisons,
                               const std::string& what = "the label file");

// Moves every label of `cols` (this rank's slice of a file) to the owner of its user and to the
// owner of its comparison. Duplicate (user, comparison) labels are an InputError naming `what`
// (e.g. "data.h5: /labels") and the first two rows, or are averaged with Duplicates::kMean.
// Collective.
// cols is taken by value: pass it with std::move to free the file slice early.
LabelMatrix distribute(const mpi::Comm& comm, LabelColumns cols, const Partitions& parts,
                       std::uint64_t users, std::uint64_t comparisons, Duplicates dups,
                       const std::string& what);

}  // namespace pref
