#pragma once
// The sparse label matrix M of the SVD initialization as a distributed operator
// (solver/svd/init.hpp): products M X and M^T Q on row-major blocks of k columns.
#include <algorithm>
#include <cstdint>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "solver/base/mpi.hpp"
#include "solver/layout/distribute.hpp"
#include "solver/layout/exchange.hpp"
#include "solver/svd/init.hpp"

namespace pref::svd {

// ---------------------------------------------------------------------------------------------
// The sparse M (M_ip = 2 y_ip - 1) as an operator on row-major blocks of k columns.
//
// Only one orientation of the labels is used: the rows of the side with more ids ("row side",
// normally users) are iterated in order, and the other side ("partner side", normally the
// comparisons) is a table of k doubles per partner. A product whose output is on the row side
// gathers partner rows (M X: y_i = sum_p M_ip x_p, after fetching the x_p from their owners);
// one whose output is on the partner side scatters (M^T Q: the rank adds M_ip q_i into its
// copy of row p, and the copies are reduced to the owners in rank order). So every product
// streams this rank's labels once and touches at random only the smaller side's table, which
// is small enough to stay in cache in the usual shape (10^4 comparisons x 18 doubles: 1.4 MB),
// instead of gathering a users' table (10^6 x 18 doubles, 144 MB) for M^T Q.
//
// The table holds every partner id (no per-label translation: the partner id is the slot) when
// it is small (at most kDenseTableBytes and no more ids than labels per rank), else only the
// partners this rank's labels touch (a GhostPlan; the labels' partners are then translated to
// slots once, 4 bytes per label). Either gives the same bits: ranks without a label on a
// partner add exact zeros.
//
// Sums: a gathered row sums its labels in their (sorted) order; a scattered partner row sums
// this rank's labels in row order within fixed chunks of rows (each with its own table, when
// the tables are small; chosen from the data only), the chunks in order, then the ranks in rank
// order. So results are bitwise repeatable at a given rank count and independent of the number
// of threads (gather: threads take whole rows; scatter: threads take whole chunks, or, with one
// chunk, each thread owns a range of partner slots and walks every row).

inline constexpr std::uint64_t kDenseTableBytes = std::uint64_t{512} << 20;
inline constexpr std::size_t kPrefetchAhead = 16;  // labels
inline constexpr int kMaxFixedWidth = 64;          // compile-time widths 1..64
inline constexpr std::size_t kRowBlock = 4096;     // rows per task in the gather
// The scatter's row chunks: at most kScatterChunks, each of at least kScatterRows rows, their
// tables together at most kScatterBytes.
inline constexpr std::uint64_t kScatterChunks = 16;
inline constexpr std::uint64_t kScatterRows = 32768;
inline constexpr std::uint64_t kScatterBytes = std::uint64_t{64} << 20;

// The label value as an entry of M.
inline double entry(float y) {
  return 2.0 * static_cast<double>(y) - 1.0;
}

// RW: 0 to read, 1 to write (a template parameter: __builtin_prefetch needs a constant, also in
// unoptimized builds).
template <int K, int RW>
inline void prefetch_row(const double* row) {
  // Every cache line of the row's K doubles (8 K bytes).
  __builtin_prefetch(row, RW, 3);
  for (int o = 8; o < K; o += 8) __builtin_prefetch(row + o, RW, 3);
  __builtin_prefetch(row + K - 1, RW, 3);
}

struct LabelView {
  const std::uint64_t* ptr;
  const std::uint32_t* idx;  // partner slots
  const float* val;
  std::size_t nnz;
};

// out rows [r0, r1) (k doubles each) = sum over the row's labels of M_e x[slot_e]. K == 0: run-time
// width k.
template <int K>
void gather_rows(const LabelView& m, std::size_t r0, std::size_t r1, const double* x, int k,
                 double* out) {
  if constexpr (K > 0) {
    (void)k;
    const std::size_t last = m.nnz ? m.nnz - 1 : 0;
    for (std::size_t r = r0; r < r1; ++r) {
      double acc[K] = {};
      for (std::uint64_t e = m.ptr[r]; e < m.ptr[r + 1]; ++e) {
        prefetch_row<K, 0>(x +
                           std::size_t(m.idx[std::min<std::size_t>(e + kPrefetchAhead, last)]) * K);
        const double v = entry(m.val[e]);
        const double* xr = x + std::size_t(m.idx[e]) * K;
        for (int j = 0; j < K; ++j) acc[j] += v * xr[j];
      }
      double* o = out + r * K;
      for (int j = 0; j < K; ++j) o[j] = acc[j];
    }
  } else {
    for (std::size_t r = r0; r < r1; ++r) {
      double* o = out + r * k;
      std::fill(o, o + k, 0.0);
      for (std::uint64_t e = m.ptr[r]; e < m.ptr[r + 1]; ++e) {
        const double v = entry(m.val[e]);
        const double* xr = x + std::size_t(m.idx[e]) * k;
        for (int j = 0; j < k; ++j) o[j] += v * xr[j];
      }
    }
  }
}

// table[slot_e] += M_e x[row] for the labels of rows [r0, r1) whose slot is in [lo, hi) (all
// when !ranged); slots are ascending within a row.
template <int K>
void scatter_rows(const LabelView& m, std::size_t r0, std::size_t r1, const double* x, int k,
                  double* table, std::uint32_t lo, std::uint32_t hi, bool ranged) {
  const std::size_t last = m.nnz ? m.nnz - 1 : 0;
  for (std::size_t r = r0; r < r1; ++r) {
    std::uint64_t e = m.ptr[r], end = m.ptr[r + 1];
    if (ranged) {
      // Counting (branch-free; rows are short) rather than binary search.
      std::uint64_t b = e, f = e;
      for (std::uint64_t i = e; i < end; ++i) {
        b += m.idx[i] < lo;
        f += m.idx[i] < hi;
      }
      e = b;
      end = f;
    }
    if (e == end) continue;
    if constexpr (K > 0) {
      (void)k;
      double xr[K];
      for (int j = 0; j < K; ++j) xr[j] = x[r * K + j];
      for (; e < end; ++e) {
        prefetch_row<K, 1>(table +
                           std::size_t(m.idx[std::min<std::size_t>(e + kPrefetchAhead, last)]) * K);
        const double v = entry(m.val[e]);
        double* g = table + std::size_t(m.idx[e]) * K;
        for (int j = 0; j < K; ++j) g[j] += v * xr[j];
      }
    } else {
      const double* xr = x + r * k;
      for (; e < end; ++e) {
        const double v = entry(m.val[e]);
        double* g = table + std::size_t(m.idx[e]) * k;
        for (int j = 0; j < k; ++j) g[j] += v * xr[j];
      }
    }
  }
}

// Calls f(std::integral_constant<int, K>) with K = k if 1 <= k <= kMaxFixedWidth, else K = 0.
template <class F, int... Ks>
void with_width_impl(int k, F&& f, std::integer_sequence<int, Ks...>) {
  const bool hit =
      ((k == Ks + 1 ? (f(std::integral_constant<int, Ks + 1>{}), true) : false) || ...);
  if (!hit) f(std::integral_constant<int, 0>{});
}
template <class F>
void with_width(int k, F&& f) {
  with_width_impl(k, std::forward<F>(f), std::make_integer_sequence<int, kMaxFixedWidth>{});
}

class SparseOp {
 public:
  SparseOp(const mpi::Comm& comm, const LabelMatrix& train, int k, int threads,
           SvdConfig::Table table)
      : rows_are_users_(train.comparisons <= train.users),
        csr_(rows_are_users_ ? train.by_user : train.by_comparison),
        partners_(rows_are_users_ ? train.parts.comparisons : train.parts.users),
        k_(k),
        threads_(std::max(1, threads)) {
    const std::uint64_t n_partners = partners_.size();
    const std::uint64_t per_rank = train.labels / static_cast<std::uint64_t>(comm.size());
    dense_ = table == SvdConfig::Table::kDense ||
             (table == SvdConfig::Table::kAuto && n_partners <= per_rank &&
              n_partners * static_cast<std::uint64_t>(k) * sizeof(double) <= kDenseTableBytes);
    if (dense_) {
      std::vector<std::uint32_t> all(n_partners);
      for (std::uint64_t g = 0; g < n_partners; ++g) all[g] = static_cast<std::uint32_t>(g);
      plan_ = GhostPlan(comm, IdSet({std::span<const std::uint32_t>(all)}), partners_);
      view_ = {csr_.ptr.data(), csr_.col.data(), csr_.val.data(), csr_.nnz()};
    } else {
      plan_ = GhostPlan(comm, IdSet({std::span<const std::uint32_t>(csr_.col)}), partners_);
      slots_.resize(csr_.nnz());
      for (std::size_t e = 0; e < csr_.nnz(); ++e) slots_[e] = plan_.index_of(csr_.col[e]);
      view_ = {csr_.ptr.data(), slots_.data(), csr_.val.data(), csr_.nnz()};
    }
    // Scattering: chunks of rows with a table each, added in chunk order, when the tables are
    // small; else one table, the threads taking ranges of slots. The chunks depend only on the
    // data (not on the threads), so either way the sums do not depend on the thread count.
    const std::size_t ghosts = plan_.ghosts();
    const std::size_t rows = csr_.rows();
    const std::uint64_t table_bytes =
        std::max<std::uint64_t>(1, ghosts * static_cast<std::uint64_t>(k) * sizeof(double));
    const std::uint64_t chunks = std::min<std::uint64_t>(
        {kScatterChunks, kScatterBytes / table_bytes, (rows + kScatterRows - 1) / kScatterRows});
    chunk_rows_.assign(1, 0);
    for (std::uint64_t c = 1; c < chunks; ++c) {  // balanced by labels
      const std::uint64_t target = view_.nnz * c / chunks;
      chunk_rows_.push_back(static_cast<std::size_t>(
          std::lower_bound(csr_.ptr.begin(), csr_.ptr.end(), target) - csr_.ptr.begin()));
    }
    chunk_rows_.push_back(rows);
    bounds_.assign(threads_ + 1, static_cast<std::uint32_t>(ghosts));
    bounds_[0] = 0;
    if (threads_ > 1 && chunk_rows_.size() <= 2) {
      std::vector<std::uint64_t> count(ghosts + 1, 0);
      for (std::size_t e = 0; e < view_.nnz; ++e) ++count[view_.idx[e]];
      std::uint64_t seen = 0;
      int t = 1;
      for (std::size_t g = 0; g < ghosts && t < threads_; ++g) {
        seen += count[g];
        while (t < threads_ && seen * threads_ >= view_.nnz * static_cast<std::uint64_t>(t))
          bounds_[t++] = static_cast<std::uint32_t>(g + 1);
      }
    }
  }

  bool rows_are_users() const { return rows_are_users_; }
  bool dense_table() const { return dense_; }

  // y (this rank's users x k) = M x, x: this rank's comparisons x k.
  void times(const mpi::Comm& comm, const std::vector<double>& x, std::vector<double>& y) {
    if (rows_are_users_)
      gather(comm, x, y);
    else
      scatter(comm, x, y);
  }
  // w (this rank's comparisons x k) = M^T q, q: this rank's users x k.
  void times_t(const mpi::Comm& comm, const std::vector<double>& q, std::vector<double>& w) {
    if (rows_are_users_)
      scatter(comm, q, w);
    else
      gather(comm, q, w);
  }

 private:
  // out (own rows x k) = M_rows x, x: the partners' owners' rows (fetched into the table).
  void gather(const mpi::Comm& comm, const std::vector<double>& x, std::vector<double>& out) {
    plan_.fetch(comm, x, k_, table_);
    const std::size_t rows = csr_.rows();
    out.resize(rows * k_);
    const std::size_t blocks = (rows + kRowBlock - 1) / kRowBlock;
    with_width(k_, [&](auto width) {
      constexpr int K = decltype(width)::value;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads_) if (threads_ > 1)
      for (std::size_t b = 0; b < blocks; ++b)
        gather_rows<K>(view_, b * kRowBlock, std::min(rows, (b + 1) * kRowBlock), table_.data(), k_,
                       out.data());
    });
  }
  // out (own partners x k) = M_rows^T x, x: this rank's rows x k.
  void scatter(const mpi::Comm& comm, const std::vector<double>& x, std::vector<double>& out) {
    const std::size_t size = plan_.ghosts() * k_;
    const std::size_t chunks = chunk_rows_.size() - 1;
    table_.assign(size, 0.0);
    if (chunks > 1) {
      chunk_tables_.assign(chunks * size, 0.0);
      with_width(k_, [&](auto width) {
        constexpr int K = decltype(width)::value;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads_) if (threads_ > 1)
        for (std::size_t c = 0; c < chunks; ++c)
          scatter_rows<K>(view_, chunk_rows_[c], chunk_rows_[c + 1], x.data(), k_,
                          chunk_tables_.data() + c * size, 0, 0, false);
      });
      const std::size_t blocks = (size + kRowBlock - 1) / kRowBlock;
#pragma omp parallel for schedule(static) num_threads(threads_) if (threads_ > 1)
      for (std::size_t b = 0; b < blocks; ++b) {
        const std::size_t lo = b * kRowBlock, hi = std::min(size, lo + kRowBlock);
        for (std::size_t c = 0; c < chunks; ++c) {
          const double* t = chunk_tables_.data() + c * size;
          for (std::size_t i = lo; i < hi; ++i) table_[i] += t[i];
        }
      }
    } else {
      with_width(k_, [&](auto width) {
        constexpr int K = decltype(width)::value;
#pragma omp parallel for schedule(static, 1) num_threads(threads_) if (threads_ > 1)
        for (int t = 0; t < threads_; ++t)
          scatter_rows<K>(view_, 0, csr_.rows(), x.data(), k_, table_.data(), bounds_[t],
                          bounds_[t + 1], threads_ > 1);
      });
    }
    out.resize(partners_.count(comm.rank()) * k_);
    plan_.reduce(comm, table_, k_, out);
  }

  bool rows_are_users_;
  const Csr& csr_;
  Partition partners_;
  int k_, threads_;
  bool dense_ = false;
  GhostPlan plan_;
  std::vector<std::uint32_t> slots_;  // partner slots per label (sparse table only)
  LabelView view_{};
  std::vector<std::size_t> chunk_rows_;  // row bounds of the scatter's chunks
  std::vector<std::uint32_t> bounds_;    // threads_ + 1 slot bounds (one chunk)
  std::vector<double> table_;            // ghosts x k
  std::vector<double> chunk_tables_;     // chunks x ghosts x k
};

}  // namespace pref::svd
