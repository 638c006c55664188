#include "solver/svd/scalapack.hpp"

#include <fmt/core.h>

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <climits>
#include <cmath>
#include <limits>

#include "solver/base/error.hpp"
#include "solver/layout/exchange.hpp"  // move_rows
#include "solver/newton/blas.hpp"      // dsyrk_, dtrsm_: the local steps of CholeskyQR

namespace pref::scalapack {

void check(const char* routine, int info, const char* file, int line) {
  if (info == 0) return;
  const std::string at = fmt::format("at {}:{}", file, line);
  if (info < 0) {
    const int a = -info;
    if (a >= 100)
      throw Error(fmt::format("{}: entry {} of argument {} had an illegal value (info = {}) {}",
                              routine, a % 100, a / 100, info, at));
    throw Error(
        fmt::format("{}: argument {} had an illegal value (info = {}) {}", routine, a, info, at));
  }
  throw Error(fmt::format("{}: failed (info = {}) {}", routine, info, at));
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
  handle_.id = Csys2blacs_handle(comm.get());
  int context = handle_.id;
  Cblacs_gridinit(&context, "Row", nprow, npcol);
  context_.id = context;
  Cblacs_gridinfo(context_.id, &nprow_, &npcol_, &myrow_, &mycol_);
  if (context_.id < 0 || nprow_ != nprow || npcol_ != npcol || myrow_ != comm.rank() / npcol ||
      mycol_ != comm.rank() % npcol)
    throw Error(fmt::format("Cblacs_gridinit: rank {} got process ({}, {}) of a {} x {} grid",
                            comm.rank(), myrow_, mycol_, nprow_, npcol_));
  // Repeatable and coherent combine topologies: reductions give the same bits on every
  // process and from run to run (pdgesvd asks for this when repeatability matters).
  const int one = 1;
  Cblacs_set(context_.id, 15, &one);  // SGET_TOPSREPEAT
  Cblacs_set(context_.id, 16, &one);  // SGET_TOPSCOHRNT
}

BlacsGrid::~BlacsGrid() = default;

BlacsGrid::Context::~Context() {
  if (id >= 0) Cblacs_gridexit(id);
}

BlacsGrid::SystemHandle::~SystemHandle() {
  if (id >= 0) Cfree_blacs_system_handle(id);
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

void small_svd(const mpi::Comm& comm, int n, const std::vector<double>& a, std::vector<double>& u,
               std::vector<double>& s, std::vector<double>& vt) {
  u.assign(static_cast<std::size_t>(n) * n, 0.0);
  vt.assign(static_cast<std::size_t>(n) * n, 0.0);
  s.assign(n, 0.0);
  if (n == 0) return;
  // Rows in blocks of nb over the first q ranks, every one of which holds a block (pdgesvd
  // reports different singular values on different processes when some hold no rows).
  const int nb = (n + std::min(comm.size(), n) - 1) / std::min(comm.size(), n);
  const int q = (n + nb - 1) / nb;
  const bool member = comm.rank() < q;
  MPI_Comm raw = MPI_COMM_NULL;
  PREF_MPI_CHECK(MPI_Comm_split(comm.get(), member ? 0 : MPI_UNDEFINED, comm.rank(), &raw));
  struct Free {
    MPI_Comm& c;
    ~Free() {
      if (c != MPI_COMM_NULL) MPI_Comm_free(&c);
    }
  } free_raw{raw};
  if (member) {
    const mpi::Comm sub(raw);
    const BlacsGrid grid(sub, q, 1);
    DistMatrix d(grid, n, n, nb, nb);
    for (long lj = 0; lj < d.local_cols(); ++lj)
      for (long li = 0; li < d.local_rows(); ++li)
        d.local_at(li, lj) = a[d.global_row(li) * n + d.global_col(lj)];
    DenseSvd svd = dense_svd(grid, d);
    if (comm.rank() == 0) s = svd.s;
    for (long lj = 0; lj < svd.u.local_cols(); ++lj)
      for (long li = 0; li < svd.u.local_rows(); ++li)
        u[svd.u.global_row(li) * n + svd.u.global_col(lj)] = svd.u.local_at(li, lj);
    for (long lj = 0; lj < svd.vt.local_cols(); ++lj)
      for (long li = 0; li < svd.vt.local_rows(); ++li)
        vt[svd.vt.global_row(li) * n + svd.vt.global_col(lj)] = svd.vt.local_at(li, lj);
  }
  // Each entry of u and vt is on one process: summing with zeros elsewhere is exact.
  mpi::allreduce(comm, std::span<double>(u), MPI_SUM);
  mpi::allreduce(comm, std::span<double>(vt), MPI_SUM);
  mpi::broadcast(comm, std::span<double>(s), 0);
}

// ---------------------------------------------------------------------------------------------
// CholeskyQR

std::vector<double> gram(const mpi::Comm& comm, int k, const std::vector<double>& local,
                         int threads) {
  const std::size_t kk = static_cast<std::size_t>(k) * k;
  const std::size_t n = local.size() / k;
  const std::size_t blocks = (n + kGramBlock - 1) / kGramBlock;
  std::vector<double> mine(kk, 0.0), block(blocks * kk, 0.0);
  const double one = 1.0, zero = 0.0;
  threads = std::max(1, threads);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
  for (std::size_t b = 0; b < blocks; ++b) {
    const int rows = static_cast<int>(std::min(kGramBlock, n - b * kGramBlock));
    // Row-major rows x k is column-major k x rows (B): B B^T = A^T A, upper triangle.
    dsyrk_("U", "N", &k, &rows, &one, local.data() + b * kGramBlock * k, &k, &zero,
           block.data() + b * kk, &k);
  }
  for (std::size_t b = 0; b < blocks; ++b)
    for (std::size_t e = 0; e < kk; ++e) mine[e] += block[b * kk + e];
  // Every rank's sum to every rank, then added in rank order.
  std::vector<double> all(kk * comm.size());
  PREF_MPI_CHECK(MPI_Allgather(mine.data(), static_cast<int>(kk), MPI_DOUBLE, all.data(),
                               static_cast<int>(kk), MPI_DOUBLE, comm.get()));
  std::vector<double> g(kk, 0.0);
  for (int q = 0; q < comm.size(); ++q)
    for (std::size_t e = 0; e < kk; ++e) g[e] += all[q * kk + e];
  // Column-major upper triangle (i <= j at i + j k) to a full row-major matrix.
  for (int j = 0; j < k; ++j)
    for (int i = 0; i < j; ++i)
      g[static_cast<std::size_t>(i) * k + j] = g[i + static_cast<std::size_t>(j) * k];
  return g;
}

namespace {

using RowMat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// max / min eigenvalue of a symmetric Gram matrix (inf when the smallest is not positive).
double gram_condition(int k, const std::vector<double>& g) {
  const Eigen::Map<const RowMat> m(g.data(), k, k);
  const Eigen::VectorXd ev =
      Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>(m, Eigen::EigenvaluesOnly).eigenvalues();
  const double lo = ev.minCoeff(), hi = ev.maxCoeff();
  if (!(lo > 0) || !std::isfinite(hi)) return std::numeric_limits<double>::infinity();
  return hi / lo;
}

bool all_finite(const std::vector<double>& v) {
  return std::all_of(v.begin(), v.end(), [](double x) { return std::isfinite(x); });
}

// Upper Cholesky factor R (row-major, R^T R = g) of g + shift I; false if not positive
// definite.
bool cholesky_upper(int k, const std::vector<double>& g, double shift, std::vector<double>& r) {
  r.assign(static_cast<std::size_t>(k) * k, 0.0);
  for (int j = 0; j < k; ++j) {
    // Column j of R: R(i, j) for i <= j (R^T R = G, G(i, j) = sum_l R(l, i) R(l, j)).
    for (int i = 0; i <= j; ++i) {
      double sum = g[static_cast<std::size_t>(i) * k + j] + (i == j ? shift : 0.0);
      for (int l = 0; l < i; ++l)
        sum -= r[static_cast<std::size_t>(l) * k + i] * r[static_cast<std::size_t>(l) * k + j];
      if (i == j) {
        if (!(sum > 0) || !std::isfinite(sum)) return false;
        r[static_cast<std::size_t>(j) * k + j] = std::sqrt(sum);
      } else {
        r[static_cast<std::size_t>(i) * k + j] = sum / r[static_cast<std::size_t>(i) * k + i];
      }
    }
  }
  return true;
}

// local (n x k row-major) := local R^-1, R upper triangular row-major, in blocks of rows.
void solve_right(int k, const std::vector<double>& r, std::vector<double>& local, int threads) {
  const std::size_t n = local.size() / k;
  const std::size_t blocks = (n + kGramBlock - 1) / kGramBlock;
  const double one = 1.0;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
  for (std::size_t b = 0; b < blocks; ++b) {
    const int rows = static_cast<int>(std::min(kGramBlock, n - b * kGramBlock));
    // Column-major: local^T (k x rows); Q^T = R^-T A^T, and R's row-major storage is R^T in
    // column-major (lower): solve L X = B with L = R^T.
    dtrsm_("L", "L", "N", "N", &k, &rows, &one, r.data(), &k, local.data() + b * kGramBlock * k,
           &k);
  }
}

// c = a b for upper triangular k x k (row-major).
std::vector<double> upper_product(int k, const std::vector<double>& a,
                                  const std::vector<double>& b) {
  std::vector<double> c(static_cast<std::size_t>(k) * k, 0.0);
  for (int i = 0; i < k; ++i)
    for (int j = i; j < k; ++j) {
      double sum = 0;
      for (int l = i; l <= j; ++l)
        sum += a[static_cast<std::size_t>(i) * k + l] * b[static_cast<std::size_t>(l) * k + j];
      c[static_cast<std::size_t>(i) * k + j] = sum;
    }
  return c;
}

}  // namespace

QrPath orthonormalize(const mpi::Comm& comm, const BlacsGrid& column, const Partition& rows, int k,
                      std::vector<double>& local, std::vector<double>* r, TallSkinnyQr method,
                      int threads) {
  threads = std::max(1, threads);
  if (rows.size() < static_cast<GlobalId>(k) || k < 1)
    throw Error(fmt::format("orthonormalize: {} x {} is not tall-skinny", rows.size(), k));
  if (local.size() != rows.count(comm.rank()) * static_cast<std::size_t>(k))
    throw Error("orthonormalize: local rows do not match the layout");
  // The accumulated R (row-major upper), identity to start with.
  std::vector<double> acc(static_cast<std::size_t>(k) * k, 0.0);
  for (int j = 0; j < k; ++j) acc[static_cast<std::size_t>(j) * k + j] = 1.0;
  auto householder = [&]() {
    std::vector<double> rh;
    tall_skinny_qr(comm, column, rows, k, local, r ? &rh : nullptr);
    if (r) *r = upper_product(k, rh, acc);
    return QrPath::kHouseholder;
  };
  if (method == TallSkinnyQr::kHouseholder) return householder();

  // One CholeskyQR step with the given shift; false (and local untouched) if the Cholesky fails.
  std::vector<double> rf;
  auto step = [&](const std::vector<double>& g, double shift) {
    if (!cholesky_upper(k, g, shift, rf)) return false;
    solve_right(k, rf, local, threads);
    acc = upper_product(k, rf, acc);
    return true;
  };

  // Plain steps on Gram matrices with cond < kCholeskyQr2MaxCond; two in a row end it
  // (CholeskyQR2). Otherwise one shifted step first (then two plain ones: shifted CholeskyQR3),
  // and at most one more plain step on a Gram matrix that is still ill-conditioned after the
  // shift but below kCholeskyQrMaxCond (its Cholesky then leaves an almost orthonormal block;
  // beyond, the block is rank-deficient to working precision).
  // Anything else: Householder.
  const double m = static_cast<double>(rows.size());
  const double u = std::numeric_limits<double>::epsilon() / 2;
  QrPath path = QrPath::kCholeskyQr2;
  int good = 0, rough = 0;
  while (good < 2) {
    const std::vector<double> g = gram(comm, k, local, threads);
    if (!all_finite(g)) return householder();
    double trace = 0;
    for (int j = 0; j < k; ++j) trace += g[static_cast<std::size_t>(j) * k + j];
    if (!(trace > 0)) return householder();  // A = 0
    const double cond = gram_condition(k, g);
    if (cond < kCholeskyQr2MaxCond && step(g, 0.0)) {
      ++good;
      continue;
    }
    good = 0;
    if (path == QrPath::kCholeskyQr2) {
      // Shifted CholeskyQR (Fukaya et al. 2020, with ||A||_2^2 <= ||A||_F^2 = trace(G)).
      const double shift = 11.0 * (m * k + static_cast<double>(k) * (k + 1)) * u * trace;
      if (!step(g, shift)) return householder();
      path = QrPath::kShiftedCholeskyQr3;
    } else if (rough++ == 0 && cond < kCholeskyQrMaxCond) {
      if (!step(g, 0.0)) return householder();
    } else {
      return householder();  // still ill-conditioned: A is numerically rank-deficient
    }
  }
  if (r) *r = acc;
  return path;
}

}  // namespace pref::scalapack
