#include "solver/svd_init.hpp"

#include <Eigen/SVD>

#include <fmt/core.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <limits>
#include <span>
#include <type_traits>
#include <utility>

#include "solver/base/error.hpp"
#include "solver/base/rng.hpp"
#include "solver/blas.hpp"
#include "solver/exchange.hpp"
#include "solver/scalapack.hpp"

namespace pref {

const char* svd_kind_name(SvdKind k) {
  switch (k) {
    case SvdKind::kRandomized:
      return "svd";
    case SvdKind::kExact:
      return "svd-exact";
    case SvdKind::kImpute:
      return "svd-impute";
  }
  return "?";
}

namespace {

using scalapack::BlacsGrid;
using scalapack::DistMatrix;

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

// ---------------------------------------------------------------------------------------------
// The randomized range finder (Halko, Martinsson, Tropp 2011, algorithms 4.4 and 5.1).

// The end of the power iterations (randomized_svd, dense_randomized): settled() is true when
// every one of the top r singular values of R (k x k, replicated) changed by less than tol
// relatively since the previous call. Rank 0 decides and every rank follows, so all ranks
// take the same number of passes.
class PowerStop {
 public:
  PowerStop(int r, double tol) : r_(r), tol_(tol) {}
  bool settled(const mpi::Comm& comm, const std::vector<double>& R, int k) {
    if (!(tol_ > 0)) return false;
    double decided[2] = {0, 0};  // settled, change
    if (comm.rank() == 0) {
      const Eigen::Map<const Eigen::MatrixXd> rm(R.data(), k, k);
      const Eigen::VectorXd sv = Eigen::JacobiSVD<Eigen::MatrixXd>(rm).singularValues();
      if (!prev_.empty()) {
        change_ = 0;
        for (int j = 0; j < std::min(r_, k); ++j)
          change_ = std::max(change_, std::abs(sv[j] - prev_[j]) / std::max(sv[j], 1e-300));
      }
      prev_.assign(sv.data(), sv.data() + k);
      decided[0] = change_ < tol_;
      decided[1] = change_;
    }
    mpi::broadcast(comm, std::span<double>(decided, 2), 0);
    change_ = decided[1];
    return decided[0] != 0;
  }
  // The last change measured (infinity before two calls).
  double change() const { return change_; }

 private:
  int r_;
  double tol_;
  std::vector<double> prev_;
  double change_ = std::numeric_limits<double>::infinity();
};

TruncatedSvd randomized_svd(const mpi::Comm& comm, const LabelMatrix& train, const SvdConfig& cfg) {
  TruncatedSvd out;
  const int me = comm.rank();
  const std::uint64_t nu = train.parts.users.count(me), nc = train.parts.comparisons.count(me);
  const std::uint64_t cap = std::min(train.users, train.comparisons);
  const int k = static_cast<int>(
      std::min<std::uint64_t>(static_cast<std::uint64_t>(cfg.J) + cfg.oversampling, cap));
  out.r = std::min(cfg.J, k);
  if (k == 0) return out;
  if (std::max(train.users, train.comparisons) > static_cast<std::uint64_t>(INT_MAX))
    throw InputError(fmt::format("--init svd: {} users x {} comparisons: ScaLAPACK needs both "
                                 "below 2^31",
                                 train.users, train.comparisons),
                     InputError::kNoOrder, true);

  double t = MPI_Wtime();
  auto tick = [&] { t = MPI_Wtime(); };
  auto tock = [&](double& acc) { acc += MPI_Wtime() - t; };
  SparseOp op(comm, train, k, cfg.threads, cfg.table);
  const BlacsGrid column(comm, comm.size(), 1);
  out.seconds_setup = MPI_Wtime() - t;

  // Omega (comparisons x k): row p is k standard normals of Rng(seed, kSketch, p); each rank
  // makes its own comparisons' rows (no communication).
  std::vector<double> W(nc * std::size_t(k));  // this rank's comparisons x k
  const std::uint64_t c0 = train.first_comparison(comm);
  for (std::uint64_t p = 0; p < nc; ++p) {
    Rng rng(cfg.seed, Stream::kSketch, c0 + p);
    for (int j = 0; j < k; ++j) W[p * k + j] = rng.normal();
  }
  std::vector<double> Y;  // this rank's users x k
  auto orth = [&](const Partition& rows, std::vector<double>& a, std::vector<double>* r) {
    tick();
    const scalapack::QrPath path =
        scalapack::orthonormalize(comm, column, rows, k, a, r, cfg.qr, cfg.threads);
    ++out.qr_paths[static_cast<int>(path)];
    tock(out.seconds_factorizations);
  };
  tick();
  op.times(comm, W, Y);  // Y = M Omega
  tock(out.seconds_products);
  orth(train.parts.users, Y, nullptr);
  // Power iterations: W = M^T Q = Qw R, then Q = orth(M Qw). The singular values of R are the
  // range finder's estimates of the top singular values of M; they rise towards them as the
  // subspace converges (at the rate of the gap to the next values, which is small for sparse
  // labels: 1.06-1.2 on the synthetic populations). The loop ends after power_iterations
  // passes, or earlier when every one of the top r estimates changed by less than power_tol
  // relatively in the last pass (rank 0 decides from the replicated R, every rank follows).
  std::vector<double> R;
  PowerStop stop(out.r, cfg.power_tol);
  for (int it = 0;; ++it) {
    tick();
    op.times_t(comm, Y, W);  // W = M^T Q
    tock(out.seconds_products);
    orth(train.parts.comparisons, W, &R);
    out.power_iterations = it;
    if (it == cfg.power_iterations) break;
    if (stop.settled(comm, R, k)) break;
    tick();
    op.times(comm, W, Y);  // Y = M W
    tock(out.seconds_products);
    orth(train.parts.users, Y, nullptr);
  }
  out.power_change = stop.change();
  // M ~ Q Q^T M = Q W^T with W = M^T Q = Qw R, so M ~ Q R^T Qw^T; with R^T = Ur S Vr^T,
  // M ~ (Q Ur) S (Qw Vr)^T.
  std::vector<double> Rt(R.size());
  for (int i = 0; i < k; ++i)
    for (int j = 0; j < k; ++j) Rt[i * k + j] = R[j * k + i];
  std::vector<double> Ur, S, Vrt;
  tick();
  scalapack::small_svd(comm, k, Rt, Ur, S, Vrt);
  tock(out.seconds_factorizations);

  const int r = out.r;
  out.S.assign(S.begin(), S.begin() + r);
  out.spectrum = S;
  // A = Q Ur[:, :r] and B = Qw Vr[:, :r] (row-major; in BLAS's column-major terms
  // A^T = Ur[:, :r]^T Q^T and B^T = Vrt[:r, :] Qw^T).
  out.A.assign(nu * r, 0.0);
  out.B.assign(nc * r, 0.0);
  const double one = 1.0, zero = 0.0;
  const int inu = static_cast<int>(nu), inc = static_cast<int>(nc);
  if (nu > 0)
    dgemm_("N", "N", &r, &inu, &k, &one, Ur.data(), &k, Y.data(), &k, &zero, out.A.data(), &r);
  if (nc > 0)
    dgemm_("T", "N", &r, &inc, &k, &one, Vrt.data(), &k, W.data(), &k, &zero, out.B.data(), &r);
  return out;
}

// ---------------------------------------------------------------------------------------------
// The dense paths

struct DenseSetup {
  int m = 0, n = 0, nb = 1;
  scalapack::GridShape shape;
};

DenseSetup dense_setup(const mpi::Comm& comm, const LabelMatrix& train, const SvdConfig& cfg) {
  const double entries = static_cast<double>(train.users) * static_cast<double>(train.comparisons);
  if (entries > kMaxDenseEntries)
    throw InputError(
        fmt::format("--init {}: M is {} x {}, too large for a dense SVD (more than "
                    "{:.0e} entries); use --init svd",
                    svd_kind_name(cfg.kind), train.users, train.comparisons, kMaxDenseEntries),
        InputError::kNoOrder, true);
  DenseSetup s;
  s.m = static_cast<int>(train.users);
  s.n = static_cast<int>(train.comparisons);
  const int p = comm.size();
  if (cfg.grid_rows > 0) {
    if (p % cfg.grid_rows != 0)
      throw InputError(fmt::format("SVD grid: {} rows do not divide {} ranks", cfg.grid_rows, p),
                       InputError::kNoOrder, true);
    s.shape = {cfg.grid_rows, p / cfg.grid_rows};
  } else {
    s.shape = scalapack::square_shape(p);
  }
  if (cfg.block > 0) {
    s.nb = cfg.block;
  } else {
    const int per =
        std::min((s.m + s.shape.rows - 1) / s.shape.rows, (s.n + s.shape.cols - 1) / s.shape.cols);
    s.nb = std::clamp(per, 1, 64);
  }
  return s;
}

// Fills x (zeroed to `fill`) with this rank's training labels sent to their block-cyclic owners:
// the value 2y - 1 (plus_minus) or y; mask (same layout as x's local storage) marks observed
// entries. Collective.
void scatter_labels(const mpi::Comm& comm, const BlacsGrid& grid, const LabelMatrix& train,
                    DistMatrix& x, double fill, bool plus_minus, std::vector<std::uint8_t>* mask) {
  const int p = comm.size();
  const std::uint64_t n = train.comparisons;
  const std::uint64_t u0 = train.first_user(comm);
  const Csr& c = train.by_user;
  std::vector<std::uint64_t> counts(p, 0);
  auto dest = [&](std::uint64_t i, std::uint32_t col) {
    return grid.rank_of(x.owner_row(static_cast<long>(i)), x.owner_col(col));
  };
  for (std::size_t r = 0; r < c.rows(); ++r)
    for (std::uint64_t e = c.ptr[r]; e < c.ptr[r + 1]; ++e) ++counts[dest(u0 + r, c.col[e])];
  std::vector<std::uint64_t> off(p + 1, 0);
  for (int q = 0; q < p; ++q) off[q + 1] = off[q] + counts[q];
  std::vector<std::uint64_t> keys(c.nnz());
  std::vector<double> vals(c.nnz());
  for (std::size_t r = 0; r < c.rows(); ++r)
    for (std::uint64_t e = c.ptr[r]; e < c.ptr[r + 1]; ++e) {
      const std::uint64_t at = off[dest(u0 + r, c.col[e])]++;
      keys[at] = (u0 + r) * n + c.col[e];
      const double y = c.val[e];
      vals[at] = plus_minus ? 2.0 * y - 1.0 : y;
    }
  const std::vector<std::uint64_t> rkeys = mpi::alltoallv<std::uint64_t>(comm, keys, counts);
  const std::vector<double> rvals = mpi::alltoallv<double>(comm, vals, counts);
  std::fill(x.local().begin(), x.local().end(), fill);
  if (mask) mask->assign(x.local().size(), 0);
  for (std::size_t e = 0; e < rkeys.size(); ++e) {
    const long li = x.local_row(static_cast<long>(rkeys[e] / n));
    const long lj = x.local_col(static_cast<long>(rkeys[e] % n));
    x.local_at(li, lj) = rvals[e];
    if (mask) (*mask)[li + lj * x.lld()] = 1;
  }
}

// Columns [0, r) of a (transposed: rows [0, r) of a, as columns) moved to the contiguous row
// layout `parts`: this rank's rows x r, row-major. Collective.
std::vector<double> to_rows(const mpi::Comm& comm, const DistMatrix& a, bool transposed, int r,
                            const Partition& parts) {
  const int p = comm.size(), me = comm.rank();
  std::vector<std::uint64_t> counts(p, 0);
  std::vector<std::uint64_t> keys;
  std::vector<double> vals;
  std::vector<int> dests;
  for (long lj = 0; lj < a.local_cols(); ++lj) {
    const long j = a.global_col(lj);
    for (long li = 0; li < a.local_rows(); ++li) {
      const long i = a.global_row(li);
      const long row = transposed ? j : i, c = transposed ? i : j;
      if (c >= r) continue;
      const int d = parts.owner(static_cast<GlobalId>(row));
      ++counts[d];
      dests.push_back(d);
      keys.push_back((static_cast<std::uint64_t>(row) - parts.begin(d)) * r + c);
      vals.push_back(a.local_at(li, lj));
    }
  }
  std::vector<std::uint64_t> off(p + 1, 0);
  for (int q = 0; q < p; ++q) off[q + 1] = off[q] + counts[q];
  std::vector<std::uint64_t> skeys(keys.size());
  std::vector<double> svals(vals.size());
  for (std::size_t e = 0; e < keys.size(); ++e) {
    const std::uint64_t at = off[dests[e]]++;
    skeys[at] = keys[e];
    svals[at] = vals[e];
  }
  const std::vector<std::uint64_t> rkeys = mpi::alltoallv<std::uint64_t>(comm, skeys, counts);
  const std::vector<double> rvals = mpi::alltoallv<double>(comm, svals, counts);
  std::vector<double> out(parts.count(me) * r, 0.0);
  for (std::size_t e = 0; e < rkeys.size(); ++e) out[rkeys[e]] = rvals[e];
  return out;
}

// A truncated SVD of a dense distributed matrix: x ~ a diag(s) b^T, with b stored as vt
// (c x n) when `vt`, else as n x c.
struct DenseTruncated {
  std::vector<double> s;  // every singular value computed, descending
  DistMatrix a;           // m x c
  DistMatrix b;
  bool vt = false;
};

DenseTruncated dense_exact(const BlacsGrid& grid, const DistMatrix& x) {
  DistMatrix work = x;
  scalapack::DenseSvd d = scalapack::dense_svd(grid, work);
  return {std::move(d.s), std::move(d.u), std::move(d.vt), true};
}

// Fills a distributed k x k matrix from a replicated row-major one (transposed if asked).
void fill_small(DistMatrix& d, const std::vector<double>& full, bool transpose) {
  const long k = d.n();
  for (long lj = 0; lj < d.local_cols(); ++lj)
    for (long li = 0; li < d.local_rows(); ++li) {
      const long i = d.global_row(li), j = d.global_col(lj);
      d.local_at(li, lj) = transpose ? full[j * k + i] : full[i * k + j];
    }
}

// The randomized range finder of randomized_svd on a dense block-cyclic x: the same sketch
// (rows of Rng(seed, kSketch, p)), width and power iterations; products by pdgemm and QRs by
// pdgeqrf + pdorgqr on the 2-D grid.
DenseTruncated dense_randomized(const mpi::Comm& comm, const BlacsGrid& grid, const DistMatrix& x,
                                const SvdConfig& cfg) {
  const int m = x.m(), n = x.n(), nb = x.nb();
  const int k = std::min(cfg.J + cfg.oversampling, std::min(m, n));
  DistMatrix omega(grid, n, k, nb, nb);
  std::vector<double> row(k);
  for (long li = 0; li < omega.local_rows(); ++li) {
    Rng rng(cfg.seed, Stream::kSketch, static_cast<std::uint64_t>(omega.global_row(li)));
    for (int j = 0; j < k; ++j) row[j] = rng.normal();
    for (long lj = 0; lj < omega.local_cols(); ++lj)
      omega.local_at(li, lj) = row[omega.global_col(lj)];
  }
  DistMatrix y(grid, m, k, nb, nb), w(grid, n, k, nb, nb);
  scalapack::gemm("N", "N", m, k, n, x, omega, y);  // Y = X Omega
  scalapack::qr_in_place(comm, y);
  std::vector<double> R;
  PowerStop stop(std::min(cfg.J, k), cfg.power_tol);
  for (int it = 0;; ++it) {
    scalapack::gemm("T", "N", n, k, m, x, y, w);  // W = X^T Q
    scalapack::qr_in_place(comm, w, &R);
    if (it == cfg.power_iterations || stop.settled(comm, R, k)) break;
    scalapack::gemm("N", "N", m, k, n, x, w, y);
    scalapack::qr_in_place(comm, y);
  }
  std::vector<double> Rt(R.size());
  for (int i = 0; i < k; ++i)
    for (int j = 0; j < k; ++j) Rt[i * k + j] = R[j * k + i];
  std::vector<double> Ur, S, Vrt;
  scalapack::small_svd(comm, k, Rt, Ur, S, Vrt);
  DistMatrix ur(grid, k, k, nb, nb), vr(grid, k, k, nb, nb);
  fill_small(ur, Ur, false);
  fill_small(vr, Vrt, true);
  DenseTruncated out{std::move(S), DistMatrix(grid, m, k, nb, nb), DistMatrix(grid, n, k, nb, nb),
                     false};
  scalapack::gemm("N", "N", m, k, k, y, ur, out.a);  // A = Q Ur
  scalapack::gemm("N", "N", n, k, k, w, vr, out.b);  // B = Qw Vr
  return out;
}

TruncatedSvd from_dense(const mpi::Comm& comm, const LabelMatrix& train, const DenseTruncated& d,
                        int J) {
  TruncatedSvd out;
  out.r = std::min<int>(J, static_cast<int>(d.s.size()));
  out.S.assign(d.s.begin(), d.s.begin() + out.r);
  out.spectrum = d.s;
  out.A = to_rows(comm, d.a, false, out.r, train.parts.users);
  out.B = to_rows(comm, d.b, d.vt, out.r, train.parts.comparisons);
  return out;
}

TruncatedSvd exact_svd(const mpi::Comm& comm, const LabelMatrix& train, const SvdConfig& cfg) {
  if (train.users == 0 || train.comparisons == 0) return TruncatedSvd{};
  const DenseSetup s = dense_setup(comm, train, cfg);
  const BlacsGrid grid(comm, s.shape.rows, s.shape.cols);
  DistMatrix m(grid, s.m, s.n, s.nb, s.nb);
  scatter_labels(comm, grid, train, m, 0.0, true, nullptr);
  const double t = MPI_Wtime();
  const DenseTruncated d = dense_exact(grid, m);
  const double seconds = MPI_Wtime() - t;
  TruncatedSvd out = from_dense(comm, train, d, cfg.J);
  out.seconds_factorizations = seconds;
  return out;
}

// The paper's imputation rounds, on the dense X (users x comparisons).
TruncatedSvd impute_svd(const mpi::Comm& comm, const LabelMatrix& train, const SvdConfig& cfg) {
  if (train.users == 0 || train.comparisons == 0) return TruncatedSvd{};
  const DenseSetup s = dense_setup(comm, train, cfg);
  const BlacsGrid grid(comm, s.shape.rows, s.shape.cols);
  DistMatrix x(grid, s.m, s.n, s.nb, s.nb);
  std::vector<std::uint8_t> observed;
  scatter_labels(comm, grid, train, x, 0.5, false, &observed);
  double seconds_svd = 0, seconds_rec = 0;
  auto svd_of = [&](const DistMatrix& a) {
    const double t = MPI_Wtime();
    DenseTruncated d =
        cfg.impute_exact ? dense_exact(grid, a) : dense_randomized(comm, grid, a, cfg);
    seconds_svd += MPI_Wtime() - t;
    return d;
  };
  const int r = std::min(cfg.J, std::min(s.m, s.n));
  DistMatrix rec(grid, s.m, s.n, s.nb, s.nb);
  for (int round = 0; round < cfg.impute_rounds; ++round) {
    DenseTruncated d = svd_of(x);
    // rec = A_r diag(S_r) B_r^T
    for (long lj = 0; lj < d.a.local_cols(); ++lj) {
      const long j = d.a.global_col(lj);
      if (j >= r) continue;
      for (long li = 0; li < d.a.local_rows(); ++li) d.a.local_at(li, lj) *= d.s[j];
    }
    const double t = MPI_Wtime();
    scalapack::gemm("N", d.vt ? "N" : "T", s.m, s.n, r, d.a, d.b, rec);
    seconds_rec += MPI_Wtime() - t;
    for (long lj = 0; lj < x.local_cols(); ++lj)
      for (long li = 0; li < x.local_rows(); ++li)
        if (!observed[li + lj * x.lld()])
          x.local_at(li, lj) = std::clamp(rec.local_at(li, lj), 0.0, 1.0);
  }
  const DenseTruncated d = svd_of(x);
  TruncatedSvd out = from_dense(comm, train, d, cfg.J);
  out.seconds_factorizations = seconds_svd;  // the SVDs, with their own products
  out.seconds_products = seconds_rec;        // the reconstructions
  return out;
}

// Flips each singular pair so that the largest-magnitude entry of B's column is positive.
// Entries within a relative 1e-9 of the largest count as ties, and the smallest comparison id
// among them decides, so that round-off differences between rank counts do not change the
// choice for (near-)equal magnitudes.
void fix_signs(const mpi::Comm& comm, const LabelMatrix& train, TruncatedSvd& svd) {
  const int r = svd.r;
  if (r == 0) return;
  const std::uint64_t nc = train.parts.comparisons.count(comm.rank());
  const std::uint64_t c0 = train.first_comparison(comm);
  std::vector<double> mx(r, 0.0);
  for (std::uint64_t p = 0; p < nc; ++p)
    for (int j = 0; j < r; ++j) mx[j] = std::max(mx[j], std::abs(svd.B[p * r + j]));
  mpi::allreduce(comm, std::span<double>(mx), MPI_MAX);
  std::vector<std::uint64_t> first(r, UINT64_MAX);
  for (std::uint64_t p = 0; p < nc; ++p)
    for (int j = 0; j < r; ++j)
      if (first[j] == UINT64_MAX && mx[j] > 0 && std::abs(svd.B[p * r + j]) >= (1 - 1e-9) * mx[j])
        first[j] = c0 + p;
  mpi::allreduce(comm, std::span<std::uint64_t>(first), MPI_MIN);
  std::vector<double> sign(r, 0.0);
  for (int j = 0; j < r; ++j)
    if (first[j] != UINT64_MAX && first[j] >= c0 && first[j] < c0 + nc)
      sign[j] = svd.B[(first[j] - c0) * r + j] < 0 ? -1.0 : 1.0;
  mpi::allreduce(comm, std::span<double>(sign), MPI_SUM);
  for (int j = 0; j < r; ++j) {
    if (sign[j] >= 0) continue;
    for (std::size_t i = j; i < svd.A.size(); i += r) svd.A[i] = -svd.A[i];
    for (std::size_t i = j; i < svd.B.size(); i += r) svd.B[i] = -svd.B[i];
  }
}

}  // namespace

TruncatedSvd truncated_svd(const mpi::Comm& comm, const LabelMatrix& train, const SvdConfig& cfg) {
  if (cfg.J < 1) throw InputError("SVD initialization: J must be >= 1", InputError::kNoOrder, true);
  if (cfg.oversampling < 0 || cfg.power_iterations < 0 || cfg.impute_rounds < 0 ||
      !(cfg.power_tol >= 0))
    throw InputError(
        "SVD initialization: oversampling, power iterations, their tolerance and impute "
        "rounds must be >= 0",
        InputError::kNoOrder, true);
  const double t0 = MPI_Wtime();
  TruncatedSvd svd;
  switch (cfg.kind) {
    case SvdKind::kRandomized:
      svd = randomized_svd(comm, train, cfg);
      break;
    case SvdKind::kExact:
      svd = exact_svd(comm, train, cfg);
      break;
    case SvdKind::kImpute:
      svd = impute_svd(comm, train, cfg);
      break;
  }
  fix_signs(comm, train, svd);
  svd.seconds_total = MPI_Wtime() - t0;
  return svd;
}

Factors factors_from_svd(const mpi::Comm& comm, const LabelMatrix& train, const TruncatedSvd& svd,
                         const SvdConfig& cfg) {
  const int J = cfg.J, r = svd.r, me = comm.rank();
  const std::uint64_t nu = train.parts.users.count(me), nc = train.parts.comparisons.count(me);
  std::vector<bool> usable(J, false);
  bool any = false;
  for (int j = 0; j < r; ++j) {
    usable[j] = std::isfinite(svd.S[j]) && svd.S[0] > 0 && svd.S[j] > 1e-12 * svd.S[0];
    any = any || usable[j];
  }
  Factors f;
  f.J = J;
  f.U.assign(nu * J, 0.0);
  f.Z.assign(nc * J, 0.0);
  for (int j = 0; j < r; ++j) {
    if (!usable[j]) continue;
    const double w = std::sqrt(svd.S[j]);
    for (std::uint64_t i = 0; i < nu; ++i) f.U[i * J + j] = w * svd.A[i * r + j];
    for (std::uint64_t p = 0; p < nc; ++p) f.Z[p * J + j] = w * svd.B[p * r + j];
  }
  // The scaling: u_i . z_p is the rank-J approximation of M_ip (or of X_ip for the impute
  // variant); one factor c on both U and Z sets the RMS margin over the training labels.
  const bool scale = cfg.rms_margin > 0 && (cfg.kind != SvdKind::kImpute || cfg.scale_impute);
  if (scale && any) {
    const double rms = rms_margin(comm, train, f);
    if (rms > 0 && std::isfinite(rms)) {
      const double c = std::sqrt(cfg.rms_margin / rms);
      for (double& v : f.U) v *= c;
      for (double& v : f.Z) v *= c;
    }
  }
  if (std::find(usable.begin(), usable.end(), false) != usable.end()) {
    const Factors rnd = random_factors(comm, train.parts, RandomInit{J, cfg.seed, cfg.init_scale});
    for (int j = 0; j < J; ++j) {
      if (usable[j]) continue;
      for (std::uint64_t i = 0; i < nu; ++i) f.U[i * J + j] = rnd.U[i * J + j];
      for (std::uint64_t p = 0; p < nc; ++p) f.Z[p * J + j] = rnd.Z[p * J + j];
    }
  }
  return f;
}

Factors svd_init(const mpi::Comm& comm, const LabelMatrix& train, const SvdConfig& cfg) {
  return factors_from_svd(comm, train, truncated_svd(comm, train, cfg), cfg);
}

}  // namespace pref
