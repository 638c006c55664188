#include "solver/distribute.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <numeric>

namespace pref {

Partitions balanced_partitions(const mpi::Comm& comm, const LabelColumns& cols,
                               std::uint64_t users, std::uint64_t comparisons) {
  const int p = comm.size();
  Partitions out;
  {
    auto counts = count_by_block(comm, users, cols.user);
    out.users = Partition::balanced(comm, Partition::uniform(users, p), counts);
  }
  {
    auto counts = count_by_block(comm, comparisons, cols.comparison);
    out.comparisons = Partition::balanced(comm, Partition::uniform(comparisons, p), counts);
  }
  return out;
}

namespace {

struct Entry {
  std::uint32_t partner;
  float value;
};

// Sends (row, partner, value) to the owner of row and builds the owner's CSR.
Csr exchange_and_build(const mpi::Comm& comm, const std::vector<std::uint32_t>& rows,
                       const std::vector<std::uint32_t>& partners,
                       const std::vector<float>& values, const Partition& part) {
  const int p = comm.size();
  const std::size_t n = rows.size();
  // The owner is looked up twice (count, then place) rather than stored: 4 bytes per label
  // less at the peak of loading.
  std::vector<std::uint64_t> counts(p, 0);
  for (std::size_t i = 0; i < n; ++i) ++counts[part.owner(rows[i])];
  std::vector<std::uint64_t> off(p, 0);
  for (int r = 1; r < p; ++r) off[r] = off[r - 1] + counts[r - 1];
  std::vector<std::uint32_t> srow(n), spartner(n);
  std::vector<float> sval(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint64_t k = off[part.owner(rows[i])]++;
    srow[k] = rows[i];
    spartner[k] = partners[i];
    sval[k] = values[i];
  }
  auto rrow = mpi::alltoallv<std::uint32_t>(comm, srow, counts);
  srow = {};
  auto rpartner = mpi::alltoallv<std::uint32_t>(comm, spartner, counts);
  spartner = {};
  auto rval = mpi::alltoallv<float>(comm, sval, counts);
  sval = {};

  // Counting sort by local row, then each row sorted by (partner, value).
  const std::uint64_t lo = part.begin(comm.rank());
  Csr csr;
  csr.ptr.assign(part.count(comm.rank()) + 1, 0);
  for (auto r : rrow) ++csr.ptr[r - lo + 1];
  std::partial_sum(csr.ptr.begin(), csr.ptr.end(), csr.ptr.begin());
  std::vector<std::uint64_t> fill(csr.ptr.begin(), csr.ptr.end() - 1);
  std::vector<Entry> entries(rrow.size());
  for (std::size_t i = 0; i < rrow.size(); ++i) entries[fill[rrow[i] - lo]++] = {rpartner[i], rval[i]};
  rrow = {};
  rpartner = {};
  rval = {};
  for (std::size_t r = 0; r < csr.rows(); ++r)
    std::sort(entries.begin() + csr.ptr[r], entries.begin() + csr.ptr[r + 1],
              [](const Entry& a, const Entry& b) {
                return a.partner != b.partner ? a.partner < b.partner : a.value < b.value;
              });
  csr.col.resize(entries.size());
  csr.val.resize(entries.size());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    csr.col[i] = entries[i].partner;
    csr.val[i] = entries[i].value;
  }
  return csr;
}

// The first duplicate (row, partner) of a CSR, as row << 32 | partner, or UINT64_MAX.
std::uint64_t first_duplicate(const Csr& csr, std::uint64_t first_row) {
  for (std::size_t r = 0; r < csr.rows(); ++r)
    for (std::uint64_t k = csr.ptr[r] + 1; k < csr.ptr[r + 1]; ++k)
      if (csr.col[k] == csr.col[k - 1]) return ((first_row + r) << 32) | csr.col[k];
  return UINT64_MAX;
}

// Averages duplicates in place (entries of a row are sorted by partner, then value, so the sum
// runs in the same order in both orientations).
void merge_duplicates(Csr& csr) {
  std::vector<std::uint64_t> ptr(1, 0);
  ptr.reserve(csr.ptr.size());
  std::size_t out = 0;
  for (std::size_t r = 0; r < csr.rows(); ++r) {
    std::uint64_t k = csr.ptr[r];
    while (k < csr.ptr[r + 1]) {
      std::uint64_t e = k;
      double sum = 0;
      while (e < csr.ptr[r + 1] && csr.col[e] == csr.col[k]) sum += csr.val[e++];
      csr.col[out] = csr.col[k];
      csr.val[out] = static_cast<float>(sum / static_cast<double>(e - k));
      ++out;
      k = e;
    }
    ptr.push_back(out);
  }
  csr.ptr = std::move(ptr);
  csr.col.resize(out);
  csr.val.resize(out);
  csr.col.shrink_to_fit();
  csr.val.shrink_to_fit();
}

}  // namespace

LabelMatrix distribute(const mpi::Comm& comm, LabelColumns cols, const Partitions& parts,
                       std::uint64_t users, std::uint64_t comparisons, Duplicates dups,
                       const std::string& what) {
  LabelMatrix m;
  m.users = users;
  m.comparisons = comparisons;
  m.parts = parts;
  m.by_user = exchange_and_build(comm, cols.user, cols.comparison, cols.value, parts.users);
  const std::uint64_t dup =
      mpi::allreduce_min(comm, first_duplicate(m.by_user, m.first_user(comm)));
  if (dup != UINT64_MAX) {
    if (dups == Duplicates::kError) {
      // Name the first two rows of the file holding this pair.
      const std::uint32_t du = static_cast<std::uint32_t>(dup >> 32);
      const std::uint32_t dc = static_cast<std::uint32_t>(dup);
      std::uint64_t rows[2] = {UINT64_MAX, UINT64_MAX};
      for (std::size_t i = 0; i < cols.size(); ++i)
        if (cols.user[i] == du && cols.comparison[i] == dc) {
          const std::uint64_t row = cols.first_row + i;
          if (row < rows[0]) {
            rows[1] = rows[0];
            rows[0] = row;
          } else if (row < rows[1]) {
            rows[1] = row;
          }
        }
      const std::uint64_t r0 = mpi::allreduce_min(comm, rows[0]);
      const std::uint64_t r1 = mpi::allreduce_min(comm, rows[0] == r0 ? rows[1] : rows[0]);
      throw InputError(fmt::format("{}: duplicate label for user {}, comparison {} (rows {} and "
                                   "{}); pass --duplicates mean to average them",
                                   what, du, dc, r0, r1),
                       r0, /*collective=*/true);
    }
    merge_duplicates(m.by_user);
  }
  // The file slice is no longer needed: the comparison orientation is built from the user
  // one (duplicates already merged), which keeps the peak memory of loading lower.
  cols = LabelColumns{};
  {
    std::vector<std::uint32_t> user_ids(m.by_user.nnz());
    const std::uint64_t u0 = m.first_user(comm);
    for (std::size_t r = 0; r < m.by_user.rows(); ++r)
      std::fill(user_ids.begin() + m.by_user.ptr[r], user_ids.begin() + m.by_user.ptr[r + 1],
                static_cast<std::uint32_t>(u0 + r));
    m.by_comparison =
        exchange_and_build(comm, m.by_user.col, user_ids, m.by_user.val, parts.comparisons);
  }
  m.labels = mpi::allreduce_sum(comm, static_cast<std::uint64_t>(m.by_user.nnz()));
  return m;
}

}  // namespace pref
