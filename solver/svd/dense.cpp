#include "solver/svd/dense.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "solver/base/error.hpp"
#include "solver/base/rng.hpp"
#include "solver/svd/range_finder.hpp"
#include "solver/svd/scalapack.hpp"

namespace pref::svd {

using scalapack::BlacsGrid;
using scalapack::DistMatrix;

namespace {

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

}  // namespace

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

}  // namespace pref::svd
