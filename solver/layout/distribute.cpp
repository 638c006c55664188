#include "solver/layout/distribute.hpp"

#include "solver/base/hash.hpp"
#include "solver/base/memory.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <bit>
#include <limits>
#include <numeric>
#include <span>

namespace pref {

Partitions balanced_partitions(const mpi::Comm& comm, const LabelColumns& cols, std::uint64_t users,
                               std::uint64_t comparisons, const std::string& what) {
  const int p = comm.size();
  // Label counts here, then row offsets (and in a fit factor rows) are kept for every id of a
  // rank's range, whether it has labels or not: a file that declares far more ids than it uses
  // is refused with its numbers, rather than by the allocator or the kernel's OOM killer.
  mem::require(comm,
               2 *
                   (Partition::uniform(users, p).count(comm.rank()) +
                    Partition::uniform(comparisons, p).count(comm.rank())) *
                   sizeof(std::uint64_t),
               fmt::format("{}: {} users and {} comparisons declared (16 bytes per id at "
                           "least, whether it has labels or not)",
                           what, users, comparisons));
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

// Labels per pair of ranks per round of the label exchange: its buffers stay near 32 MB per
// rank, whatever the number of labels.
std::uint64_t round_cap(int ranks) {
  return std::max<std::uint64_t>(1 << 12, (std::uint64_t{32} << 20) / (12 * std::uint64_t(ranks)));
}

// A label on its way to the owner of its row.
struct Triple {
  std::uint32_t row, partner;
  float value;
};

// The owner of each id of [lo, lo + span) in one table when that is not larger than the
// labels it serves (a lookup instead of a binary search, twice per label), else by search.
class Owners {
 public:
  Owners(const Partition& part, std::span<const std::uint32_t> ids) : part_(part) {
    if (ids.empty()) return;
    const auto [mn, mx] = std::minmax_element(ids.begin(), ids.end());
    const std::uint64_t span = std::uint64_t{*mx} - *mn + 1;
    if (span > ids.size() + 4096) return;
    lo_ = *mn;
    table_.resize(span);
    int r = part.owner(lo_);
    for (std::uint64_t k = 0; k < span; ++k) {
      while (lo_ + k >= part.end(r)) ++r;
      table_[k] = r;
    }
  }
  int operator()(std::uint32_t id) const {
    return table_.empty() ? part_.owner(id) : table_[id - lo_];
  }

 private:
  const Partition& part_;
  std::uint64_t lo_ = 0;
  std::vector<int> table_;
};

// Sends label i = (rows[i], partner(d, i), values[i]) to the owner d of rows[i] and builds the
// owner's CSR, rows sorted by (partner, value). Two passes in bounded rounds: the row ids alone
// (counted, not stored: they give the CSR's row sizes), then the labels, placed at their row's
// next free slot. Where a slot per row and source rank costs no more than 1 byte per label,
// each source's labels of a row are placed together, in the source's order: a row is then in
// the order of the file (or of the other orientation's rows, which ascend by source rank), and
// only rows that are not already in order are sorted. Memory beyond the inputs and the CSR: the
// send order (4 bytes per label), those slots and the round buffers (the owner table, at most 4
// bytes per label, is freed before the CSR is allocated).
template <class Partner>
Csr exchange_and_build(const mpi::Comm& comm, std::span<const std::uint32_t> rows,
                       Partner&& partner, std::span<const float> values, const Partition& part) {
  const int p = comm.size();
  const std::size_t n = rows.size();
  const std::uint64_t most = mpi::allreduce_max(comm, std::uint64_t{n});
  if (most > std::numeric_limits<std::uint32_t>::max())
    throw Error(
        fmt::format("{} labels of a file slice on one rank: more than 2^32; use more ranks", most),
        /*collective=*/true);
  // The send order: label indices grouped by destination, in input order within each.
  std::vector<std::uint64_t> counts(p, 0), soff(p + 1, 0);
  std::vector<std::uint32_t> order(n);
  {
    const Owners owner(part, rows);  // freed before the CSR is allocated
    for (std::size_t i = 0; i < n; ++i) ++counts[owner(rows[i])];
    for (int r = 0; r < p; ++r) soff[r + 1] = soff[r] + counts[r];
    std::vector<std::uint64_t> at(soff.begin(), soff.end() - 1);
    for (std::size_t i = 0; i < n; ++i) order[at[owner(rows[i])]++] = static_cast<std::uint32_t>(i);
  }
  std::vector<std::uint64_t> rcounts(p);
  PREF_MPI_CHECK(
      MPI_Alltoall(counts.data(), 1, MPI_UINT64_T, rcounts.data(), 1, MPI_UINT64_T, comm.get()));
  std::uint64_t m = 0;
  for (auto c : rcounts) m += c;
  const std::uint64_t cap = round_cap(p);
  const std::uint64_t lo = part.begin(comm.rank());
  const std::uint64_t nrows = part.count(comm.rank());
  const bool by_source = nrows * std::uint64_t(p) <= m / 8;

  Csr csr;
  csr.ptr.assign(nrows + 1, 0);
  // by_source: fill[row * p + source], first the labels of each (row, source), then the slots.
  std::vector<std::uint64_t> fill(by_source ? nrows * p : 0);
  mpi::alltoallv_rounds<std::uint32_t>(
      comm, counts, rcounts, cap,
      [&](int d, std::uint64_t from, std::uint64_t c, std::uint32_t* out) {
        const std::uint32_t* o = order.data() + soff[d] + from;
        for (std::uint64_t k = 0; k < c; ++k) out[k] = rows[o[k]];
      },
      [&](int src, std::uint64_t, std::span<const std::uint32_t> got) {
        if (by_source)
          for (auto r : got) ++fill[(r - lo) * p + src];
        else
          for (auto r : got) ++csr.ptr[r - lo + 1];
      });
  if (by_source) {
    std::uint64_t at = 0;
    for (std::uint64_t r = 0; r < nrows; ++r) {
      csr.ptr[r] = at;
      for (int q = 0; q < p; ++q) {
        const std::uint64_t c = fill[r * p + q];
        fill[r * p + q] = at;
        at += c;
      }
    }
    csr.ptr[nrows] = at;
  } else {
    std::partial_sum(csr.ptr.begin(), csr.ptr.end(), csr.ptr.begin());
    fill.assign(csr.ptr.begin(), csr.ptr.end() - 1);
  }
  csr.col.resize(m);
  csr.val.resize(m);
  mpi::alltoallv_rounds<Triple>(
      comm, counts, rcounts, cap,
      [&](int d, std::uint64_t from, std::uint64_t c, Triple* out) {
        const std::uint32_t* o = order.data() + soff[d] + from;
        for (std::uint64_t k = 0; k < c; ++k) out[k] = {rows[o[k]], partner(d, o[k]), values[o[k]]};
      },
      [&](int src, std::uint64_t, std::span<const Triple> got) {
        const std::uint64_t stride = by_source ? p : 1, shift = by_source ? src : 0;
        for (const Triple& t : got) {
          const std::uint64_t at = fill[(t.row - lo) * stride + shift]++;
          csr.col[at] = t.partner;
          csr.val[at] = t.value;
        }
      });
  order = {};
  fill = {};
  // Each row sorted by (partner, value): the layout does not depend on where labels came from.
  const auto before = [](const Entry& x, const Entry& y) {
    return x.partner != y.partner ? x.partner < y.partner : x.value < y.value;
  };
  std::vector<Entry> tmp;
  for (std::size_t r = 0; r < csr.rows(); ++r) {
    const std::uint64_t b = csr.ptr[r], e = csr.ptr[r + 1];
    bool sorted = true;
    for (std::uint64_t k = b + 1; k < e && sorted; ++k)
      sorted = !before({csr.col[k], csr.val[k]}, {csr.col[k - 1], csr.val[k - 1]});
    if (sorted) continue;
    tmp.resize(e - b);
    for (std::uint64_t k = b; k < e; ++k) tmp[k - b] = {csr.col[k], csr.val[k]};
    std::sort(tmp.begin(), tmp.end(), before);
    for (std::uint64_t k = b; k < e; ++k) {
      csr.col[k] = tmp[k - b].partner;
      csr.val[k] = tmp[k - b].value;
    }
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

std::uint64_t labels_checksum(const mpi::Comm& comm, const LabelMatrix& m) {
  const Csr& c = m.by_user;
  const std::uint64_t u0 = m.parts.users.begin(comm.rank());
  std::uint64_t s = 0;
  for (std::size_t r = 0; r < c.rows(); ++r)
    for (std::uint64_t k = c.ptr[r]; k < c.ptr[r + 1]; ++k)
      s += hash::label(u0 + r, c.col[k], c.val[k]);
  return mpi::allreduce_sum(comm, s);
}

LabelMatrix distribute(const mpi::Comm& comm, LabelColumns cols, const Partitions& parts,
                       std::uint64_t users, std::uint64_t comparisons, Duplicates dups,
                       const std::string& what) {
  LabelMatrix m;
  m.users = users;
  m.comparisons = comparisons;
  m.parts = parts;
  m.by_user = exchange_and_build(
      comm, cols.user, [&](int, std::uint32_t i) { return cols.comparison[i]; }, cols.value,
      parts.users);
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
                                   "{}); one label per user and comparison is expected",
                                   what, du, dc, r0, r1),
                       r0, /*collective=*/true);
    }
    merge_duplicates(m.by_user);
  }
  // The file slice is no longer needed: the comparison orientation is built from the user
  // one (duplicates already merged), which keeps the peak memory of loading lower.
  cols = LabelColumns{};
  {
    // The user of label i, found by a cursor per destination: each destination's labels are
    // packed in increasing i.
    const std::uint64_t u0 = m.first_user(comm);
    const Csr& bu = m.by_user;
    std::vector<std::size_t> row(comm.size(), 0);
    m.by_comparison = exchange_and_build(
        comm, bu.col,
        [&](int d, std::uint32_t i) {
          std::size_t& r = row[d];
          while (bu.ptr[r + 1] <= i) ++r;
          return static_cast<std::uint32_t>(u0 + r);
        },
        bu.val, parts.comparisons);
  }
  m.labels = mpi::allreduce_sum(comm, static_cast<std::uint64_t>(m.by_user.nnz()));
  return m;
}

}  // namespace pref
