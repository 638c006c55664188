#include "solver/svd_init.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <span>

#include "solver/base/error.hpp"
#include "solver/base/rng.hpp"
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
// The sparse M (M_ip = 2 y_ip - 1) in both orientations, partners as ghost indices.

class SparseM {
 public:
  SparseM(const mpi::Comm& comm, const LabelMatrix& train)
      : zplan(comm, IdSet({std::span<const std::uint32_t>(train.by_user.col)}),
              train.parts.comparisons),
        uplan(comm, IdSet({std::span<const std::uint32_t>(train.by_comparison.col)}),
              train.parts.users) {
    localize(train.by_user, zplan, by_user_);
    localize(train.by_comparison, uplan, by_comp_);
  }

  // y (this rank's users x k) = M x, x given as the ghost rows of zplan (ghosts x k).
  void times(const std::vector<double>& xghost, int k, std::vector<double>& y) const {
    by_user_.apply(xghost, k, y);
  }
  // w (this rank's comparisons x k) = M^T q, q given as the ghost rows of uplan.
  void times_t(const std::vector<double>& qghost, int k, std::vector<double>& w) const {
    by_comp_.apply(qghost, k, w);
  }

  GhostPlan zplan;  // comparisons that this rank's users have labels on
  GhostPlan uplan;  // users that this rank's comparisons have labels from

 private:
  struct Rows {
    std::vector<std::uint64_t> ptr{0};
    std::vector<std::uint32_t> idx;
    std::vector<double> val;
    void apply(const std::vector<double>& ghost, int k, std::vector<double>& out) const {
      const std::size_t n = ptr.size() - 1;
      out.assign(n * k, 0.0);
      for (std::size_t r = 0; r < n; ++r) {
        double* o = out.data() + r * k;
        for (std::uint64_t e = ptr[r]; e < ptr[r + 1]; ++e) {
          const double v = val[e];
          const double* x = ghost.data() + std::size_t(idx[e]) * k;
          for (int j = 0; j < k; ++j) o[j] += v * x[j];
        }
      }
    }
  };
  static void localize(const Csr& csr, const GhostPlan& plan, Rows& out) {
    out.ptr = csr.ptr;
    out.idx.resize(csr.nnz());
    out.val.resize(csr.nnz());
    for (std::size_t e = 0; e < csr.nnz(); ++e) {
      out.idx[e] = plan.index_of(csr.col[e]);
      out.val[e] = 2.0 * static_cast<double>(csr.val[e]) - 1.0;
    }
  }
  Rows by_user_, by_comp_;
};

// ---------------------------------------------------------------------------------------------
// The randomized range finder (Halko, Martinsson, Tropp 2011, algorithms 4.4 and 5.1).

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

  SparseM op(comm, train);
  const BlacsGrid column(comm, comm.size(), 1);
  double t = 0;
  auto tick = [&] { t = MPI_Wtime(); };
  auto tock = [&](double& acc) { acc += MPI_Wtime() - t; };

  // Omega (comparisons x k): row p is k standard normals of Rng(seed, kSketch, p), made here
  // for exactly the comparisons this rank's users need (no communication).
  std::vector<double> ghost(op.zplan.ghosts() * std::size_t(k));
  for (std::size_t g = 0; g < op.zplan.ghosts(); ++g) {
    Rng rng(cfg.seed, Stream::kSketch, op.zplan.ids()[g]);
    for (int j = 0; j < k; ++j) ghost[g * k + j] = rng.normal();
  }
  std::vector<double> Y, W;  // users x k, comparisons x k (this rank's rows)
  auto qr = [&](const Partition& rows, std::vector<double>& a, std::vector<double>* r) {
    tick();
    scalapack::tall_skinny_qr(comm, column, rows, k, a, r);
    tock(out.seconds_factorizations);
  };
  tick();
  op.times(ghost, k, Y);  // Y = M Omega
  tock(out.seconds_products);
  qr(train.parts.users, Y, nullptr);
  for (int it = 0; it < cfg.power_iterations; ++it) {
    tick();
    op.uplan.fetch(comm, Y, k, ghost);
    op.times_t(ghost, k, W);  // W = M^T Q
    tock(out.seconds_products);
    qr(train.parts.comparisons, W, nullptr);
    tick();
    op.zplan.fetch(comm, W, k, ghost);
    op.times(ghost, k, Y);  // Y = M W
    tock(out.seconds_products);
    qr(train.parts.users, Y, nullptr);
  }
  // M ~ Q Q^T M = Q W^T with W = M^T Q = Qw R, so M ~ Q R^T Qw^T; with R^T = Ur S Vr^T,
  // M ~ (Q Ur) S (Qw Vr)^T.
  tick();
  op.uplan.fetch(comm, Y, k, ghost);
  op.times_t(ghost, k, W);
  tock(out.seconds_products);
  std::vector<double> R;
  qr(train.parts.comparisons, W, &R);
  std::vector<double> Rt(R.size());
  for (int i = 0; i < k; ++i)
    for (int j = 0; j < k; ++j) Rt[i * k + j] = R[j * k + i];
  std::vector<double> Ur, S, Vrt;
  tick();
  scalapack::small_svd(k, Rt, Ur, S, Vrt);
  tock(out.seconds_factorizations);

  const int r = out.r;
  out.S.assign(S.begin(), S.begin() + r);
  out.spectrum = S;
  out.A.assign(nu * r, 0.0);
  out.B.assign(nc * r, 0.0);
  for (std::uint64_t i = 0; i < nu; ++i)
    for (int l = 0; l < k; ++l) {
      const double y = Y[i * k + l];
      for (int j = 0; j < r; ++j) out.A[i * r + j] += y * Ur[l * k + j];
    }
  for (std::uint64_t p = 0; p < nc; ++p)
    for (int l = 0; l < k; ++l) {
      const double w = W[p * k + l];
      for (int j = 0; j < r; ++j) out.B[p * r + j] += w * Vrt[j * k + l];  // Vr = Vrt^T
    }
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
  for (int it = 0; it < cfg.power_iterations; ++it) {
    scalapack::gemm("T", "N", n, k, m, x, y, w);  // W = X^T Q
    scalapack::qr_in_place(comm, w);
    scalapack::gemm("N", "N", m, k, n, x, w, y);
    scalapack::qr_in_place(comm, y);
  }
  scalapack::gemm("T", "N", n, k, m, x, y, w);
  std::vector<double> R;
  scalapack::qr_in_place(comm, w, &R);
  std::vector<double> Rt(R.size());
  for (int i = 0; i < k; ++i)
    for (int j = 0; j < k; ++j) Rt[i * k + j] = R[j * k + i];
  std::vector<double> Ur, S, Vrt;
  scalapack::small_svd(k, Rt, Ur, S, Vrt);
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
  if (cfg.oversampling < 0 || cfg.power_iterations < 0 || cfg.impute_rounds < 0)
    throw InputError(
        "SVD initialization: oversampling, power iterations and impute rounds must "
        "be >= 0",
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

double rms_margin(const mpi::Comm& comm, const LabelMatrix& m, const Factors& f) {
  const int J = f.J;
  const GhostPlan plan(comm, IdSet({std::span<const std::uint32_t>(m.by_user.col)}),
                       m.parts.comparisons);
  std::vector<double> zg;
  plan.fetch(comm, f.Z, J, zg);
  double sum = 0;
  const Csr& c = m.by_user;
  for (std::size_t r = 0; r < c.rows(); ++r)
    for (std::uint64_t e = c.ptr[r]; e < c.ptr[r + 1]; ++e) {
      const double* z = zg.data() + std::size_t(plan.index_of(c.col[e])) * J;
      const double* u = f.U.data() + r * J;
      double d = 0;
      for (int j = 0; j < J; ++j) d += u[j] * z[j];
      sum += d * d;
    }
  sum = mpi::allreduce_sum(comm, sum);
  return m.labels ? std::sqrt(sum / static_cast<double>(m.labels)) : 0.0;
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
    FitConfig fc;
    fc.J = J;
    fc.seed = cfg.seed;
    fc.init_scale = cfg.init_scale;
    const Factors rnd = random_factors(comm, train.parts, fc);
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
