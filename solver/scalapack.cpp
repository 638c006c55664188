#include "solver/scalapack.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <climits>
#include <cmath>

#include "solver/base/error.hpp"

namespace pref::scalapack {

void check(const char* routine, int info) {
  if (info == 0) return;
  if (info < 0) {
    const int a = -info;
    if (a >= 100)
      throw Error(fmt::format("{}: entry {} of argument {} had an illegal value (info = {})",
                              routine, a % 100, a / 100, info));
    throw Error(fmt::format("{}: argument {} had an illegal value (info = {})", routine, a, info));
  }
  throw Error(fmt::format("{}: failed (info = {})", routine, info));
}

GridShape square_shape(int p) {
  GridShape g;
  for (int r = 1; r * r <= p; ++r)
    if (p % r == 0) g.rows = r;
  g.cols = p / g.rows;
  return g;
}

// ---------------------------------------------------------------------------------------------
// BlacsGrid

BlacsGrid::BlacsGrid(const mpi::Comm& comm, int nprow, int npcol) {
  if (nprow < 1 || npcol < 1 || nprow * npcol != comm.size())
    throw Error(fmt::format("BLACS grid {} x {}: needs {} ranks, the communicator has {}", nprow,
                            npcol, nprow * npcol, comm.size()));
  int me = 0, np = 0;
  Cblacs_pinfo(&me, &np);  // initializes BLACS on first use (no communication)
  handle_ = Csys2blacs_handle(comm.get());
  context_ = handle_;
  Cblacs_gridinit(&context_, "Row", nprow, npcol);
  Cblacs_gridinfo(context_, &nprow_, &npcol_, &myrow_, &mycol_);
  if (context_ < 0 || nprow_ != nprow || npcol_ != npcol || myrow_ != comm.rank() / npcol ||
      mycol_ != comm.rank() % npcol)
    throw Error(fmt::format("Cblacs_gridinit: rank {} got process ({}, {}) of a {} x {} grid",
                            comm.rank(), myrow_, mycol_, nprow_, npcol_));
  // Repeatable and coherent combine topologies: reductions give the same bits on every
  // process and from run to run (pdgesvd asks for this when repeatability matters).
  const int one = 1;
  Cblacs_set(context_, 15, &one);  // SGET_TOPSREPEAT
  Cblacs_set(context_, 16, &one);  // SGET_TOPSCOHRNT
}

BlacsGrid::~BlacsGrid() {
  if (context_ >= 0) Cblacs_gridexit(context_);
  if (handle_ >= 0) Cfree_blacs_system_handle(handle_);
}

// ---------------------------------------------------------------------------------------------
// DistMatrix

DistMatrix::DistMatrix(const BlacsGrid& grid, int m, int n, int mb, int nb)
    : m_(m),
      n_(n),
      mb_(std::max(1, mb)),
      nb_(std::max(1, nb)),
      nprow_(grid.rows()),
      npcol_(grid.cols()),
      myrow_(grid.row()),
      mycol_(grid.col()) {
  const int zero = 0;
  lrows_ = numroc_(&m_, &mb_, &myrow_, &zero, &nprow_);
  lcols_ = numroc_(&n_, &nb_, &mycol_, &zero, &npcol_);
  lld_ = std::max(1, lrows_);
  int info = 0;
  const int ctxt = grid.context();
  descinit_(desc_, &m_, &n_, &mb_, &nb_, &zero, &zero, &ctxt, &lld_, &info);
  check("descinit", info);
  local_.assign(static_cast<std::size_t>(lld_) * std::max(1, lcols_), 0.0);
}

// ---------------------------------------------------------------------------------------------
// Tall-skinny QR

std::vector<double> move_rows(const mpi::Comm& comm, const Partition& from, const Partition& to,
                              const std::vector<double>& local, int width) {
  const int p = comm.size(), me = comm.rank();
  std::vector<std::uint64_t> counts(p, 0);
  const GlobalId lo = from.begin(me), hi = from.end(me);
  for (int r = 0; r < p; ++r) {
    const GlobalId a = std::max(lo, to.begin(r)), b = std::min(hi, to.end(r));
    if (a < b) counts[r] = (b - a) * static_cast<std::uint64_t>(width);
  }
  // Both layouts are ordered ranges, so this rank's rows go out in order and arrive in order.
  return mpi::alltoallv<double>(comm, local, counts);
}

void gemm(const char* transa, const char* transb, int m, int n, int k, const DistMatrix& a,
          const DistMatrix& b, DistMatrix& c) {
  const int one = 1;
  const double alpha = 1.0, beta = 0.0;
  pdgemm_(transa, transb, &m, &n, &k, &alpha, a.data(), &one, &one, a.desc(), b.data(), &one, &one,
          b.desc(), &beta, c.data(), &one, &one, c.desc(), 1, 1);
}

void qr_in_place(const mpi::Comm& comm, DistMatrix& a, std::vector<double>* r) {
  const int m = a.m(), k = a.n();
  if (m < k || k < 1) throw Error(fmt::format("qr_in_place: {} x {} is not tall", m, k));
  const int one = 1;
  std::vector<double> tau(std::max(1, a.local_cols()));
  int info = 0, lwork = -1;
  double query = 0;
  pdgeqrf_(&m, &k, a.data(), &one, &one, a.desc(), tau.data(), &query, &lwork, &info);
  check("pdgeqrf", info);
  lwork = static_cast<int>(query) + 1;
  std::vector<double> work(lwork);
  pdgeqrf_(&m, &k, a.data(), &one, &one, a.desc(), tau.data(), work.data(), &lwork, &info);
  check("pdgeqrf", info);

  if (r) {
    // R is the upper triangle of the leading k x k block: each entry is on one process.
    r->assign(static_cast<std::size_t>(k) * k, 0.0);
    for (long lj = 0; lj < a.local_cols(); ++lj) {
      const long j = a.global_col(lj);
      for (long li = 0; li < a.local_rows(); ++li) {
        const long i = a.global_row(li);
        if (i > j) break;  // global rows grow with li
        (*r)[i * k + j] = a.local_at(li, lj);
      }
    }
    mpi::allreduce(comm, std::span<double>(*r), MPI_SUM);  // adds zeros: exact
  }

  lwork = -1;
  pdorgqr_(&m, &k, &k, a.data(), &one, &one, a.desc(), tau.data(), &query, &lwork, &info);
  check("pdorgqr", info);
  lwork = static_cast<int>(query) + 1;
  work.assign(lwork, 0.0);
  pdorgqr_(&m, &k, &k, a.data(), &one, &one, a.desc(), tau.data(), work.data(), &lwork, &info);
  check("pdorgqr", info);
}

void tall_skinny_qr(const mpi::Comm& comm, const BlacsGrid& column, const Partition& rows, int k,
                    std::vector<double>& local, std::vector<double>* r) {
  const int p = comm.size(), me = comm.rank();
  if (column.rows() != p || column.cols() != 1)
    throw Error("tall_skinny_qr: needs a P x 1 grid over the communicator");
  if (rows.size() > static_cast<GlobalId>(INT_MAX) || k < 1 ||
      rows.size() < static_cast<GlobalId>(k))
    throw Error(fmt::format("tall_skinny_qr: {} x {} is not tall-skinny", rows.size(), k));
  const int m = static_cast<int>(rows.size());
  const int mb = (m + p - 1) / p;
  std::vector<GlobalId> bounds(p + 1);
  for (int q = 0; q <= p; ++q) bounds[q] = std::min<GlobalId>(static_cast<GlobalId>(q) * mb, m);
  const Partition blocks(bounds);

  DistMatrix a(column, m, k, mb, k);
  {
    const std::vector<double> mine = move_rows(comm, rows, blocks, local, k);
    const long n = static_cast<long>(blocks.count(me));
    if (n != a.local_rows()) throw Error("tall_skinny_qr: block layout mismatch");
    for (long i = 0; i < n; ++i)
      for (int j = 0; j < k; ++j) a.local_at(i, j) = mine[i * k + j];
  }
  qr_in_place(comm, a, r);

  std::vector<double> q(static_cast<std::size_t>(a.local_rows()) * k);
  for (long i = 0; i < a.local_rows(); ++i)
    for (int j = 0; j < k; ++j) q[i * k + j] = a.local_at(i, j);
  local = move_rows(comm, blocks, rows, q, k);
}

// ---------------------------------------------------------------------------------------------
// SVDs

void small_svd(int n, const std::vector<double>& a, std::vector<double>& u, std::vector<double>& s,
               std::vector<double>& vt) {
  u.assign(static_cast<std::size_t>(n) * n, 0.0);
  vt.assign(static_cast<std::size_t>(n) * n, 0.0);
  s.assign(n, 0.0);
  if (n == 0) return;
  std::vector<double> cm(static_cast<std::size_t>(n) * n), ucm(cm.size()), vtcm(cm.size());
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) cm[i + j * n] = a[i * n + j];
  int info = 0, lwork = -1;
  double query = 0;
  dgesvd_("A", "A", &n, &n, cm.data(), &n, s.data(), ucm.data(), &n, vtcm.data(), &n, &query,
          &lwork, &info, 1, 1);
  check("dgesvd", info);
  lwork = static_cast<int>(query) + 1;
  std::vector<double> work(lwork);
  dgesvd_("A", "A", &n, &n, cm.data(), &n, s.data(), ucm.data(), &n, vtcm.data(), &n, work.data(),
          &lwork, &info, 1, 1);
  check("dgesvd", info);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      u[i * n + j] = ucm[i + j * n];
      vt[i * n + j] = vtcm[i + j * n];
    }
}

DenseSvd dense_svd(const BlacsGrid& grid, DistMatrix& a) {
  if (a.mb() != a.nb()) throw Error("pdgesvd: needs square blocks (MB == NB)");
  const int m = a.m(), n = a.n(), size = std::min(m, n);
  DenseSvd out{std::vector<double>(std::max(1, size)), DistMatrix(grid, m, size, a.mb(), a.nb()),
               DistMatrix(grid, size, n, a.mb(), a.nb())};
  if (size == 0) {
    out.s.clear();
    return out;
  }
  const int one = 1;
  int info = 0, lwork = -1;
  double query = 0;
  pdgesvd_("V", "V", &m, &n, a.data(), &one, &one, a.desc(), out.s.data(), out.u.data(), &one, &one,
           out.u.desc(), out.vt.data(), &one, &one, out.vt.desc(), &query, &lwork, &info, 1, 1);
  check("pdgesvd", info);
  const double want = std::ceil(query) + 64;
  if (want > INT_MAX) throw Error(fmt::format("pdgesvd: workspace of {} doubles too large", want));
  lwork = static_cast<int>(want);
  std::vector<double> work(lwork);
  pdgesvd_("V", "V", &m, &n, a.data(), &one, &one, a.desc(), out.s.data(), out.u.data(), &one, &one,
           out.u.desc(), out.vt.data(), &one, &one, out.vt.desc(), work.data(), &lwork, &info, 1,
           1);
  if (info == size + 1)
    throw Error("pdgesvd: the processes computed different singular values (info = " +
                std::to_string(info) + ")");
  check("pdgesvd", info);
  return out;
}

}  // namespace pref::scalapack
