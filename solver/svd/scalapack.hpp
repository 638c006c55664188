#pragma once
// ScaLAPACK and BLACS from C++.
//
// Debian's scalapack-openmpi ships no C headers, so the prototypes used here are declared below
// (LP64: every integer is a C int; Fortran routines get the hidden lengths of their character
// arguments, which are harmless for the C ones).
//
// On top of them:
//  - BlacsGrid: RAII over a BLACS system handle and process grid built from any communicator
//    (not only MPI_COMM_WORLD), with repeatable combine topologies so that runs are bitwise
//    reproducible at a given rank count;
//  - DistMatrix: a 2-D block-cyclic matrix (descriptor + local column-major storage);
//  - check(): ScaLAPACK's info codes as pref::Error naming the routine;
//  - tall_skinny_qr(): the Householder QR (pdgeqrf + pdorgqr) of a tall-skinny matrix that is
//    distributed by contiguous row ranges (pref's layout), on a P x 1 grid;
//  - orthonormalize(): the tall-skinny orthonormalization used by the SVD initialization:
//    CholeskyQR2 in place on the row ranges (local dsyrk, a Gram matrix summed in a fixed order,
//    Cholesky, triangular solve, twice), shifted CholeskyQR3 when the block is ill-conditioned,
//    and the Householder tall_skinny_qr() when neither applies (or when asked for);
//  - small_svd(): the SVD of a small replicated matrix by pdgesvd over the ranks.
//
// BLACS initializes itself on first use from MPI_COMM_WORLD without communicating (ScaLAPACK
// 2.2), and building a grid is collective over the grid's communicator only, so grids over
// sub-communicators (e.g. MPI_COMM_SELF) work.
#include <mpi.h>

#include <cstddef>
#include <vector>

#include "solver/base/enum_names.hpp"
#include "solver/base/mpi.hpp"
#include "solver/base/partition.hpp"

extern "C" {
// BLACS (inside libscalapack-openmpi)
void Cblacs_pinfo(int* mypnum, int* nprocs);
void Cblacs_get(int context, int what, int* val);
void Cblacs_set(int context, int what, const int* val);
void Cblacs_gridinit(int* context, const char* order, int nprow, int npcol);
void Cblacs_gridinfo(int context, int* nprow, int* npcol, int* myrow, int* mycol);
void Cblacs_gridexit(int context);
int Csys2blacs_handle(MPI_Comm comm);
void Cfree_blacs_system_handle(int handle);

// ScaLAPACK tools
void descinit_(int* desc, const int* m, const int* n, const int* mb, const int* nb,
               const int* irsrc, const int* icsrc, const int* ictxt, const int* lld, int* info);
int numroc_(const int* n, const int* nb, const int* iproc, const int* isrcproc, const int* nprocs);

// ScaLAPACK / PBLAS
void pdgeqrf_(const int* m, const int* n, double* a, const int* ia, const int* ja, const int* desca,
              double* tau, double* work, const int* lwork, int* info);
void pdorgqr_(const int* m, const int* n, const int* k, double* a, const int* ia, const int* ja,
              const int* desca, const double* tau, double* work, const int* lwork, int* info);
void pdgesvd_(const char* jobu, const char* jobvt, const int* m, const int* n, double* a,
              const int* ia, const int* ja, const int* desca, double* s, double* u, const int* iu,
              const int* ju, const int* descu, double* vt, const int* ivt, const int* jvt,
              const int* descvt, double* work, const int* lwork, int* info, std::size_t jobu_len,
              std::size_t jobvt_len);
void pdgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
             const double* alpha, const double* a, const int* ia, const int* ja, const int* desca,
             const double* b, const int* ib, const int* jb, const int* descb, const double* beta,
             double* c, const int* ic, const int* jc, const int* descc, std::size_t transa_len,
             std::size_t transb_len);
}

namespace pref::scalapack {

// Throws pref::Error("<routine>: ... at <file>:<line>") when info != 0 (negative: the illegal
// argument's position, as ScaLAPACK numbers it; positive: the routine's own failure code). The
// location is the caller's (the builtins are evaluated where check is called): info comes back
// through an argument, so no macro is needed. (Not std::source_location: clang 14, which
// builds the fuzzers, cannot compile libstdc++ 12's.)
void check(const char* routine, int info, const char* file = __builtin_FILE(),
           int line = __builtin_LINE());

// Rows and columns of the most square grid for p processes (rows <= cols, rows * cols == p).
struct GridShape {
  int rows = 1, cols = 1;
};
GridShape square_shape(int p);

// A BLACS process grid over every rank of a communicator, in row-major order: the rank r of
// comm is process (r / cols, r % cols). Collective over comm (construction and destruction).
class BlacsGrid {
 public:
  BlacsGrid(const mpi::Comm& comm, int nprow, int npcol);
  ~BlacsGrid();
  BlacsGrid(const BlacsGrid&) = delete;
  BlacsGrid& operator=(const BlacsGrid&) = delete;

  int context() const { return context_.id; }
  int rows() const { return nprow_; }
  int cols() const { return npcol_; }
  int row() const { return myrow_; }
  int col() const { return mycol_; }
  // The rank in the grid's communicator of process (prow, pcol).
  int rank_of(int prow, int pcol) const { return prow * npcol_ + pcol; }

 private:
  // Each owned by its own member, so that a constructor that throws after making either one
  // still releases it (the grid first: members die in reverse order).
  struct SystemHandle {
    int id = -1;
    SystemHandle() = default;
    SystemHandle(const SystemHandle&) = delete;
    SystemHandle& operator=(const SystemHandle&) = delete;
    ~SystemHandle();
  };
  struct Context {
    int id = -1;
    Context() = default;
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;
    ~Context();
  };
  SystemHandle handle_;
  Context context_;
  int nprow_ = 0, npcol_ = 0, myrow_ = -1, mycol_ = -1;
};

// Block-cyclic index arithmetic (0-based; the first block on process 0).
inline int bc_owner(long g, int nb, int nprocs) {
  return static_cast<int>((g / nb) % nprocs);
}
inline long bc_local(long g, int nb, int nprocs) {
  return (g / (static_cast<long>(nb) * nprocs)) * nb + g % nb;
}
inline long bc_global(long l, int nb, int iproc, int nprocs) {
  return ((l / nb) * nprocs + iproc) * nb + l % nb;
}

// An m x n matrix distributed block-cyclically (mb x nb blocks) over a grid; this process's
// part is stored column-major with leading dimension lld().
class DistMatrix {
 public:
  DistMatrix(const BlacsGrid& grid, int m, int n, int mb, int nb);

  int m() const { return m_; }
  int n() const { return n_; }
  int mb() const { return mb_; }
  int nb() const { return nb_; }
  int local_rows() const { return lrows_; }
  int local_cols() const { return lcols_; }
  int lld() const { return lld_; }
  const int* desc() const { return desc_; }
  double* data() { return local_.data(); }
  const double* data() const { return local_.data(); }
  std::vector<double>& local() { return local_; }
  const std::vector<double>& local() const { return local_; }
  double& local_at(long li, long lj) { return local_[li + lj * lld_]; }
  double local_at(long li, long lj) const { return local_[li + lj * lld_]; }

  long global_row(long li) const { return bc_global(li, mb_, myrow_, nprow_); }
  long global_col(long lj) const { return bc_global(lj, nb_, mycol_, npcol_); }
  int owner_row(long i) const { return bc_owner(i, mb_, nprow_); }
  int owner_col(long j) const { return bc_owner(j, nb_, npcol_); }
  long local_row(long i) const { return bc_local(i, mb_, nprow_); }
  long local_col(long j) const { return bc_local(j, nb_, npcol_); }

 private:
  int m_, n_, mb_, nb_;
  int nprow_, npcol_, myrow_, mycol_;
  int lrows_ = 0, lcols_ = 0, lld_ = 1;
  int desc_[9] = {};
  std::vector<double> local_;
};

// C = op(A) op(B) (m x n, inner dimension k) on the leading submatrices. Collective over the
// grid.
void gemm(const char* transa, const char* transb, int m, int n, int k, const DistMatrix& a,
          const DistMatrix& b, DistMatrix& c);

// Replaces a (m x k, m >= k) by Q of its Householder QR (pdgeqrf + pdorgqr); if r is not null
// it receives R (k x k, row-major, upper triangular), the same on every rank of comm, which
// must be the grid's communicator. Collective.
void qr_in_place(const mpi::Comm& comm, DistMatrix& a, std::vector<double>* r = nullptr);

// Orthonormalizes the k columns of a tall-skinny m x k matrix (m >= k >= 1) distributed by
// the contiguous row ranges `rows` (one per rank of comm; local: this rank's rows, row-major):
// local is replaced by the rows of Q of the Householder QR (pdgeqrf + pdorgqr). The rows are
// copied to a 1-D block layout on `column`, which must be a comm.size() x 1 grid of comm
// (MB = ceil(m / P), NB = k), and back. If r is not null it receives R (k x k, row-major, upper
// triangular), the same on every rank. Collective.
void tall_skinny_qr(const mpi::Comm& comm, const BlacsGrid& column, const Partition& rows, int k,
                    std::vector<double>& local, std::vector<double>* r = nullptr);

// The tall-skinny orthonormalization of the SVD initialization (see orthonormalize()).
enum class TallSkinnyQr {
  kCholesky,     // CholeskyQR2, shifted CholeskyQR3 when ill-conditioned, Householder last
  kHouseholder,  // always tall_skinny_qr() (pdgeqrf + pdorgqr)
};
inline constexpr EnumNames<TallSkinnyQr, 2> kTallSkinnyQrNames{
    {{{TallSkinnyQr::kCholesky, "cholesky"}, {TallSkinnyQr::kHouseholder, "householder"}}}};
inline const char* tall_skinny_qr_name(TallSkinnyQr m) {
  return kTallSkinnyQrNames.name(m);
}
// Which algorithm produced a Q.
enum class QrPath { kCholeskyQr2, kShiftedCholeskyQr3, kHouseholder };
inline constexpr EnumNames<QrPath, 3> kQrPathNames{
    {{{QrPath::kCholeskyQr2, "CholeskyQR2"},
      {QrPath::kShiftedCholeskyQr3, "shifted CholeskyQR3"},
      {QrPath::kHouseholder, "Householder"}}}};
inline const char* qr_path_name(QrPath p) {
  return kQrPathNames.name(p);
}

// The Gram matrix A^T A (k x k, row-major, both triangles) of a tall-skinny matrix distributed
// by contiguous row ranges (local: this rank's n x k rows, row-major): each rank sums dsyrk
// products of consecutive blocks of kGramBlock rows in order (the blocks on `threads` OpenMP
// threads), and the ranks' sums are added in rank order on every rank (an allgather, not an
// MPI reduction), so the result is the same bits on every rank, from run to run, and for any
// number of threads. Collective.
inline constexpr std::size_t kGramBlock = 16384;
std::vector<double> gram(const mpi::Comm& comm, int k, const std::vector<double>& local,
                         int threads = 1);

// Orthonormalizes the k columns of a tall-skinny m x k matrix (m >= k >= 1) distributed by the
// contiguous row ranges `rows` (local: this rank's rows, row-major), in place: local becomes
// the rows of Q, and r (if not null) R (k x k, row-major, upper triangular, the same on every
// rank) with A = Q R. With kCholesky, a sequence of CholeskyQR steps X <- X R_s^-1 with
// R_s^T R_s = X^T X (+ shift) (gram(), a k x k Cholesky, dtrsm on the local rows; no data
// moves between ranks), R = R_last ... R_1:
//  - CholeskyQR2 (Yamamoto et al. 2015): two plain steps, when the Gram matrix's condition
//    number is below kCholeskyQr2MaxCond (cond(A) < 1e5; Q is then orthonormal to O(u)).
//  - shifted CholeskyQR3 (Fukaya, Kannan, Nakatsukasa, Zhang, Yamamoto 2020) otherwise, or
//    when a Cholesky fails: one step with G + s I, s = 11 (m k + k (k + 1)) u ||A||_F^2, then
//    plain steps as above (with one extra plain step if the Gram matrix after the shift is
//    still beyond the limit but below kCholeskyQrMaxCond: stable for cond(A) up to about 1/u).
//  - Householder (tall_skinny_qr) when A is (numerically) rank-deficient or zero: the Gram
//    matrix is zero or not finite, a Cholesky fails after the shift, or the block stays
//    ill-conditioned. The QR then runs on the current iterate and R is the product of the
//    triangular factors.
// Every decision is taken from replicated k x k matrices, so all ranks take the same path.
// Returns the path. Collective.
inline constexpr double kCholeskyQr2MaxCond = 1e10;  // of the Gram matrix, i.e. cond(A)^2
inline constexpr double kCholeskyQrMaxCond = 1e14;   // the extra plain step after the shift
// `threads`: OpenMP threads over the blocks of rows of the dsyrk and dtrsm calls (the result
// does not depend on it).
QrPath orthonormalize(const mpi::Comm& comm, const BlacsGrid& column, const Partition& rows, int k,
                      std::vector<double>& local, std::vector<double>* r,
                      TallSkinnyQr method = TallSkinnyQr::kCholesky, int threads = 1);

// The SVD of a small n x n matrix (row-major, the same on every rank of comm) by pdgesvd, on a
// q x 1 grid over the first q ranks of comm with the rows in blocks of nb = ceil(n / min(p, n))
// (q = ceil(n / nb), so that every process of the grid holds rows): a = u diag(s) vt, u and vt
// row-major n x n, s descending, the same bits on every rank. Collective over comm.
void small_svd(const mpi::Comm& comm, int n, const std::vector<double>& a, std::vector<double>& u,
               std::vector<double>& s, std::vector<double>& vt);

// The full SVD of a distributed m x n matrix (mb == nb): a is destroyed; s gets the
// min(m, n) singular values (on every process), u the m x min(m, n) left vectors and vt the
// min(m, n) x n right vectors, distributed like a. Collective over the grid.
struct DenseSvd {
  std::vector<double> s;
  DistMatrix u, vt;
};
DenseSvd dense_svd(const BlacsGrid& grid, DistMatrix& a);

}  // namespace pref::scalapack
