// The SVD initialization (solver/svd/init.cpp) and its ScaLAPACK layer (solver/svd/scalapack.cpp):
//  - the tall-skinny Householder QR on a P x 1 grid from pref's row-range layout, and the
//    CholeskyQR orthonormalization with its fallbacks (shifted CholeskyQR3, Householder) and its
//    replicated, repeatable Gram matrix;
//  - the exact dense SVD (pdgesvd) against an independent Eigen SVD, for every grid shape of
//    the rank count and two block sizes;
//  - the randomized range finder against the exact SVD on matrices with a clear spectral gap
//    (singular values and principal angles between the subspaces);
//  - the paper's imputation variant against a dense Eigen implementation of the same rounds;
//  - the factors: the same at any rank count (against a one-rank computation on MPI_COMM_SELF
//    by rank 0), bitwise the same from run to run and for any number of threads or partner
//    table of the sparse products, the sign convention, the RMS-margin scaling,
//    the random fallback columns, and the dense size limit.
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <Eigen/SVD>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <vector>

#include "solver/base/mpi.hpp"
#include "solver/fit/fit.hpp"
#include "solver/layout/distribute.hpp"
#include "solver/svd/init.hpp"
#include "solver/svd/scalapack.hpp"

using namespace pref;

namespace {

using Matrix = Eigen::MatrixXd;
using RowMajor = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// ---------------------------------------------------------------------------------------------
// Problems, built identically on every rank.

struct Problem {
  std::uint64_t users = 0, comparisons = 0;
  LabelColumns cols;
};

// A planted rank-J sign pattern: users and comparisons fall into J groups of unequal sizes and
// M_ip = P[group(i)][group(p)] for a random nonsingular +-1 pattern P; each entry is observed
// with probability `observed`. All observed: M has rank J exactly; otherwise M is the rank-J
// block matrix times a random mask, a clear gap above a noise floor.
Problem block_problem(std::uint64_t users, std::uint64_t comparisons, int J, double observed,
                      unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> unif(0.0, 1.0);
  Matrix P(J, J);
  do {
    for (int a = 0; a < J; ++a)
      for (int b = 0; b < J; ++b) P(a, b) = unif(gen) < 0.5 ? -1.0 : 1.0;
  } while (std::abs(P.determinant()) < 0.5);
  // Group g has weight g + 1 (unequal sizes: distinct singular values).
  auto group = [&](std::uint64_t i, std::uint64_t n) {
    const double x = (static_cast<double>(i) + 0.5) / static_cast<double>(n) * J * (J + 1) / 2.0;
    int g = 0;
    double acc = 1;
    while (x > acc && g + 1 < J) acc += ++g + 1;
    return g;
  };
  Problem pb;
  pb.users = users;
  pb.comparisons = comparisons;
  for (std::uint64_t i = 0; i < users; ++i)
    for (std::uint64_t p = 0; p < comparisons; ++p)
      if (observed >= 1 || unif(gen) < observed)
        pb.cols.push_back(static_cast<std::uint32_t>(i), static_cast<std::uint32_t>(p),
                          P(group(i, users), group(p, comparisons)) > 0 ? 1.0f : 0.0f);
  std::vector<std::size_t> order(pb.cols.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::shuffle(order.begin(), order.end(), gen);
  LabelColumns shuffled;
  for (auto k : order) shuffled.push_back(pb.cols.user[k], pb.cols.comparison[k], pb.cols.value[k]);
  pb.cols = std::move(shuffled);
  return pb;
}

// Random labels of every kind (0, 0.2, 0.5, 0.8, 1) on a random subset: a generic matrix.
Problem random_problem(std::uint64_t users, std::uint64_t comparisons, double observed,
                       unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> unif(0.0, 1.0);
  const float values[] = {0.0f, 0.2f, 0.5f, 0.8f, 1.0f, 1.0f, 0.0f};
  Problem pb;
  pb.users = users;
  pb.comparisons = comparisons;
  for (std::uint64_t i = 0; i < users; ++i)
    for (std::uint64_t p = 0; p < comparisons; ++p)
      if (unif(gen) < observed)
        pb.cols.push_back(static_cast<std::uint32_t>(i), static_cast<std::uint32_t>(p),
                          values[gen() % 7]);
  return pb;
}

LabelColumns share_of(const mpi::Comm& comm, const LabelColumns& all) {
  const std::size_t n = all.size(), p = comm.size(), r = comm.rank();
  LabelColumns out;
  out.first_row = n * r / p;
  for (std::size_t k = n * r / p; k < n * (r + 1) / p; ++k)
    out.push_back(all.user[k], all.comparison[k], all.value[k]);
  return out;
}

LabelMatrix distribute_problem(const mpi::Comm& comm, const Problem& pb) {
  const LabelColumns mine = share_of(comm, pb.cols);
  const Partitions parts = balanced_partitions(comm, mine, pb.users, pb.comparisons);
  return distribute(comm, mine, parts, pb.users, pb.comparisons, Duplicates::kError, "test");
}

// The dense M (2y - 1 observed, 0 elsewhere) or the paper's X (y observed, 0.5 elsewhere).
Matrix dense(const Problem& pb, bool plus_minus, Matrix* mask = nullptr) {
  Matrix m = Matrix::Constant(pb.users, pb.comparisons, plus_minus ? 0.0 : 0.5);
  if (mask) *mask = Matrix::Zero(pb.users, pb.comparisons);
  for (std::size_t k = 0; k < pb.cols.size(); ++k) {
    const double y = pb.cols.value[k];
    m(pb.cols.user[k], pb.cols.comparison[k]) = plus_minus ? 2 * y - 1 : y;
    if (mask) (*mask)(pb.cols.user[k], pb.cols.comparison[k]) = 1;
  }
  return m;
}

std::vector<double> allgather_rows(const mpi::Comm& comm, const std::vector<double>& mine) {
  const std::vector<int> counts = mpi::allgather(comm, static_cast<int>(mine.size()));
  std::vector<int> displs(counts.size(), 0);
  for (std::size_t r = 1; r < counts.size(); ++r) displs[r] = displs[r - 1] + counts[r - 1];
  std::vector<double> all(displs.back() + counts.back());
  PREF_MPI_CHECK(MPI_Allgatherv(mine.data(), static_cast<int>(mine.size()), MPI_DOUBLE, all.data(),
                                counts.data(), displs.data(), MPI_DOUBLE, comm.get()));
  return all;
}

Matrix as_matrix(const std::vector<double>& rows, Eigen::Index cols) {
  if (cols == 0) return Matrix(static_cast<Eigen::Index>(0), 0);
  return Eigen::Map<const RowMajor>(rows.data(), static_cast<Eigen::Index>(rows.size()) / cols,
                                    cols);
}

struct Gathered {
  std::vector<double> S;
  Matrix A, B;
};
Gathered gather(const mpi::Comm& comm, const TruncatedSvd& svd) {
  return {svd.S, as_matrix(allgather_rows(comm, svd.A), svd.r),
          as_matrix(allgather_rows(comm, svd.B), svd.r)};
}

// The reference sign convention: the largest-magnitude entry of each column of B positive
// (ties within 1e-9 relative: the first).
void fix_signs(Matrix& A, Matrix& B) {
  for (Eigen::Index j = 0; j < B.cols(); ++j) {
    const double mx = B.col(j).cwiseAbs().maxCoeff();
    for (Eigen::Index p = 0; p < B.rows(); ++p)
      if (std::abs(B(p, j)) >= (1 - 1e-9) * mx) {
        if (B(p, j) < 0) {
          A.col(j) *= -1;
          B.col(j) *= -1;
        }
        break;
      }
  }
}

// Largest principal angle between the column spaces of two matrices with orthonormal columns.
double max_angle(const Matrix& a, const Matrix& b) {
  const Matrix resid = b - a * (a.transpose() * b);
  const double s = Eigen::JacobiSVD<Matrix>(resid).singularValues()(0);
  return std::asin(std::min(1.0, s));
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return INFINITY;
  double d = 0;
  for (std::size_t k = 0; k < a.size(); ++k) d = std::max(d, std::abs(a[k] - b[k]));
  return d;
}
double max_abs(const std::vector<double>& a) {
  double d = 0;
  for (double v : a) d = std::max(d, std::abs(v));
  return d;
}

std::vector<int> divisors(int p) {
  std::vector<int> d;
  for (int r = 1; r <= p; ++r)
    if (p % r == 0) d.push_back(r);
  return d;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// ScaLAPACK layer

TEST(ScaLapack, InfoCodesBecomeErrorsNamingTheRoutine) {
  EXPECT_NO_THROW(scalapack::check("pdgeqrf", 0));
  try {
    scalapack::check("pdgeqrf", -7);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("pdgeqrf: argument 7"), std::string::npos) << e.what();
  }
  try {
    scalapack::check("pdgesvd", -804);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("pdgesvd: entry 4 of argument 8"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(scalapack::check("pdgesvd", 3), Error);
  auto world = mpi::Comm::world();
  EXPECT_THROW(scalapack::BlacsGrid(world, world.size() + 1, 1), Error);
}

TEST(ScaLapack, GridShapes) {
  EXPECT_EQ(scalapack::square_shape(1).rows, 1);
  EXPECT_EQ(scalapack::square_shape(4).rows, 2);
  EXPECT_EQ(scalapack::square_shape(6).rows, 2);
  EXPECT_EQ(scalapack::square_shape(6).cols, 3);
  EXPECT_EQ(scalapack::square_shape(7).rows, 1);
  auto world = mpi::Comm::world();
  for (int rows : divisors(world.size())) {
    scalapack::BlacsGrid g(world, rows, world.size() / rows);
    EXPECT_EQ(g.row(), world.rank() / g.cols());
    EXPECT_EQ(g.col(), world.rank() % g.cols());
  }
}

TEST(ScaLapack, TallSkinnyQrOnRowRanges) {
  auto world = mpi::Comm::world();
  const int p = world.size(), me = world.rank();
  const scalapack::BlacsGrid column(world, p, 1);
  std::mt19937 gen(7);
  std::normal_distribution<double> normal;
  // (rows, k): blocks shorter than k, rows with empty ranges, a square case.
  for (auto [m, k] : {std::pair{200, 13}, std::pair{10, 7}, std::pair{3, 3}, std::pair{57, 1}}) {
    Matrix full(m, k);
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < k; ++j) full(i, j) = normal(gen) + (i % 5 == 0 ? 3.0 * j : 0.0);
    // An uneven row layout: rank r gets a share proportional to r + 1 (rank 0 maybe none).
    std::vector<GlobalId> bounds(p + 1, 0);
    for (int r = 0; r < p; ++r)
      bounds[r + 1] = static_cast<GlobalId>(m) * (r + 1) * (r + 2) / (p * (p + 1));
    const Partition rows(bounds);
    std::vector<double> local;
    for (GlobalId i = rows.begin(me); i < rows.end(me); ++i)
      for (int j = 0; j < k; ++j) local.push_back(full(i, j));
    const std::vector<double> input = local;
    // The Householder QR itself, then orthonormalize() with both methods.
    for (int variant = 0; variant < 3; ++variant) {
      local = input;
      std::vector<double> R;
      std::string what = std::to_string(m) + "x" + std::to_string(k);
      if (variant == 0) {
        scalapack::tall_skinny_qr(world, column, rows, k, local, &R);
        what += " tall_skinny_qr";
      } else {
        const auto method = variant == 1 ? scalapack::TallSkinnyQr::kCholesky
                                         : scalapack::TallSkinnyQr::kHouseholder;
        const scalapack::QrPath path =
            scalapack::orthonormalize(world, column, rows, k, local, &R, method);
        EXPECT_EQ(path,
                  variant == 1 ? scalapack::QrPath::kCholeskyQr2 : scalapack::QrPath::kHouseholder);
        what += std::string(" orthonormalize ") + scalapack::qr_path_name(path);
      }
      const Matrix Q = as_matrix(allgather_rows(world, local), k);
      const Matrix Rm = as_matrix(R, k);
      ASSERT_EQ(Q.rows(), m);
      EXPECT_LT((Q.transpose() * Q - Matrix::Identity(k, k)).norm(), 1e-13) << what;
      EXPECT_LT((Q * Rm - full).norm(), 1e-12 * full.norm()) << what;
      EXPECT_EQ(Matrix(Rm.triangularView<Eigen::StrictlyLower>()).norm(), 0.0) << what;
    }
  }
}

namespace {

// A m x k matrix A = U diag(s) V^T with random orthonormal U, V and singular values from 1 down
// to 1 / cond (geometric), or exactly zero from column `rank` on.
Matrix conditioned(int m, int k, double cond, int rank, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> normal;
  Matrix g1(m, k), g2(k, k);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < k; ++j) g1(i, j) = normal(gen);
  for (int i = 0; i < k; ++i)
    for (int j = 0; j < k; ++j) g2(i, j) = normal(gen);
  const Matrix U = Eigen::HouseholderQR<Matrix>(g1).householderQ() * Matrix::Identity(m, k);
  const Matrix V = Eigen::HouseholderQR<Matrix>(g2).householderQ() * Matrix::Identity(k, k);
  Eigen::VectorXd s(k);
  for (int j = 0; j < k; ++j)
    s(j) = j >= rank ? 0.0 : std::pow(cond, -static_cast<double>(j) / std::max(1, k - 1));
  return U * s.asDiagonal() * V.transpose();
}

// orthonormalize() on the rows of `full` split evenly over the ranks.
struct Orthonormalized {
  scalapack::QrPath path;
  Matrix Q, R;
};
Orthonormalized orthonormalize_rows(const mpi::Comm& comm, const Matrix& full) {
  const int p = comm.size(), me = comm.rank();
  const int m = static_cast<int>(full.rows()), k = static_cast<int>(full.cols());
  const scalapack::BlacsGrid column(comm, p, 1);
  const Partition rows = Partition::uniform(m, p);
  std::vector<double> local;
  for (GlobalId i = rows.begin(me); i < rows.end(me); ++i)
    for (int j = 0; j < k; ++j) local.push_back(full(i, j));
  std::vector<double> R;
  Orthonormalized out;
  out.path = scalapack::orthonormalize(comm, column, rows, k, local, &R);
  out.Q = as_matrix(allgather_rows(comm, local), k);
  out.R = as_matrix(R, k);
  return out;
}

}  // namespace

// The fallbacks of the CholeskyQR orthonormalization: an ill-conditioned block (Gram matrix
// beyond kCholeskyQr2MaxCond) goes through shifted CholeskyQR3 and still gives an orthonormal
// basis of the same span as Eigen's Householder QR; rank-deficient and zero blocks go to
// ScaLAPACK's Householder QR.
TEST(ScaLapack, CholeskyQrFallbacks) {
  auto world = mpi::Comm::world();
  const int m = 600, k = 12;
  for (double cond : {1e3, 1e7, 1e11}) {
    const Matrix A = conditioned(m, k, cond, k, 71);
    const Orthonormalized o = orthonormalize_rows(world, A);
    const std::string what = "cond " + std::to_string(cond);
    EXPECT_EQ(o.path,
              cond < 1e5 ? scalapack::QrPath::kCholeskyQr2 : scalapack::QrPath::kShiftedCholeskyQr3)
        << what << ": " << scalapack::qr_path_name(o.path);
    EXPECT_LT((o.Q.transpose() * o.Q - Matrix::Identity(k, k)).norm(), 1e-12) << what;
    EXPECT_LT((o.Q * o.R - A).norm(), 1e-13 * A.norm()) << what;
    EXPECT_EQ(Matrix(o.R.triangularView<Eigen::StrictlyLower>()).norm(), 0.0) << what;
    // The same span as Eigen's QR: both are bases of A's columns to rounding, so their principal
    // angles are at most about u cond(A).
    const Matrix Qe = Eigen::HouseholderQR<Matrix>(A).householderQ() * Matrix::Identity(m, k);
    EXPECT_LT(max_angle(Qe, o.Q), 1e-14 * cond) << what;
    if (world.rank() == 0)
      std::printf("cond %.0e: %s, |Q^T Q - I| %.1e, |A - QR| / |A| %.1e, angle to Eigen's %.1e\n",
                  cond, scalapack::qr_path_name(o.path),
                  (o.Q.transpose() * o.Q - Matrix::Identity(k, k)).norm(),
                  (o.Q * o.R - A).norm() / A.norm(), max_angle(Qe, o.Q));
    EXPECT_LT(((Matrix::Identity(m, m) - o.Q * o.Q.transpose()) * A).norm(), 1e-13 * A.norm())
        << what;
  }
  // Rank 5 of 12, and zero: Householder.
  for (int rank : {5, 0}) {
    const Matrix A = conditioned(m, k, 10.0, rank, 72);
    const Orthonormalized o = orthonormalize_rows(world, A);
    EXPECT_EQ(o.path, scalapack::QrPath::kHouseholder) << "rank " << rank;
    EXPECT_LT((o.Q.transpose() * o.Q - Matrix::Identity(k, k)).norm(), 1e-12) << "rank " << rank;
    EXPECT_LT((o.Q * o.R - A).norm(), 1e-13 * std::max(1.0, A.norm())) << "rank " << rank;
  }
}

// The Gram matrix is the same bits on every rank and from run to run, and equals A^T A to
// rounding.
TEST(ScaLapack, GramIsReplicatedAndRepeatable) {
  auto world = mpi::Comm::world();
  const int k = 9;
  // Several dsyrk blocks, split unevenly.
  const std::size_t n = 3 * scalapack::kGramBlock + 1234 * (world.rank() + 1);
  std::mt19937 gen(81 + world.rank());
  std::normal_distribution<double> normal;
  std::vector<double> local(n * k);
  for (double& v : local) v = normal(gen);
  const std::vector<double> g = scalapack::gram(world, k, local);
  EXPECT_EQ(g, scalapack::gram(world, k, local));
  EXPECT_EQ(g, scalapack::gram(world, k, local, 3));  // threads
  std::vector<double> first = g;
  mpi::broadcast(world, std::span<double>(first), 0);
  EXPECT_EQ(g, first) << "rank " << world.rank();
  const Matrix A = as_matrix(allgather_rows(world, local), k);
  EXPECT_LT((as_matrix(g, k) - A.transpose() * A).norm(), 1e-12 * (A.transpose() * A).norm());
}

// ---------------------------------------------------------------------------------------------
// Exact SVD against Eigen, on every grid shape

TEST(SvdExact, MatchesEigenOnEveryGridShape) {
  auto world = mpi::Comm::world();
  const Problem pb = random_problem(70, 45, 0.6, 11);
  const LabelMatrix m = distribute_problem(world, pb);
  const Eigen::BDCSVD<Matrix> ref(dense(pb, true), Eigen::ComputeThinU | Eigen::ComputeThinV);
  const Eigen::VectorXd s = ref.singularValues();
  const int J = 5;
  Matrix RA = ref.matrixU().leftCols(J), RB = ref.matrixV().leftCols(J);
  fix_signs(RA, RB);
  for (int rows : divisors(world.size()))
    for (int block : {0, 3}) {
      SvdConfig cfg;
      cfg.kind = SvdKind::kExact;
      cfg.J = J;
      cfg.grid_rows = rows;
      cfg.block = block;
      const TruncatedSvd svd = truncated_svd(world, m, cfg);
      const std::string what =
          "grid rows " + std::to_string(rows) + ", block " + std::to_string(block);
      ASSERT_EQ(svd.spectrum.size(), 45u) << what;
      double err = 0;
      for (int j = 0; j < 45; ++j) err = std::max(err, std::abs(svd.spectrum[j] - s(j)));
      EXPECT_LT(err, 1e-10 * s(0)) << what;
      const Gathered g = gather(world, svd);
      EXPECT_LT((g.A - RA).cwiseAbs().maxCoeff(), 1e-9) << what;
      EXPECT_LT((g.B - RB).cwiseAbs().maxCoeff(), 1e-9) << what;
    }
}

TEST(SvdExact, WideMatrixAndTooLarge) {
  auto world = mpi::Comm::world();
  const Problem pb = random_problem(30, 80, 0.5, 12);  // fewer users than comparisons
  const LabelMatrix m = distribute_problem(world, pb);
  SvdConfig cfg;
  cfg.kind = SvdKind::kExact;
  cfg.J = 4;
  const TruncatedSvd svd = truncated_svd(world, m, cfg);
  const Eigen::VectorXd s = Eigen::BDCSVD<Matrix>(dense(pb, true)).singularValues();
  ASSERT_EQ(svd.spectrum.size(), 30u);
  for (int j = 0; j < 30; ++j) EXPECT_NEAR(svd.spectrum[j], s(j), 1e-10 * s(0));

  Problem big;
  big.users = 30000;
  big.comparisons = 20000;
  big.cols.push_back(0, 0, 1.0f);
  big.cols.push_back(29999, 19999, 0.0f);
  const LabelMatrix mb = distribute_problem(world, big);
  for (SvdKind kind : {SvdKind::kExact, SvdKind::kImpute}) {
    cfg.kind = kind;
    try {
      svd_init(world, mb, cfg);
      FAIL() << "no error";
    } catch (const InputError& e) {
      EXPECT_TRUE(e.collective());
      EXPECT_NE(std::string(e.what()).find("M is 30000 x 20000, too large for a dense SVD"),
                std::string::npos)
          << e.what();
      EXPECT_NE(std::string(e.what()).find("use --init svd"), std::string::npos);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Randomized against exact

TEST(SvdRandomized, MatchesExactOnAClearGap) {
  auto world = mpi::Comm::world();
  struct Case {
    Problem pb;
    int J, q;
    std::string what;
  };
  // The subspace error of the range finder is about (sigma_{k+1} / sigma_J)^(2q+1): with the
  // 90%-observed noise floor (ratio 0.18) q = 2 gives 2e-4 rad, so that case uses q = 6.
  const std::vector<Case> cases = {
      {block_problem(150, 90, 4, 1.0, 21), 4, 2, "rank 4, all observed"},
      {block_problem(200, 120, 3, 0.9, 22), 3, 6, "rank 3, 90% observed"},
      {block_problem(3, 50, 2, 1.0, 23), 2, 2, "3 users (fewer than ranks)"},
  };
  for (const Case& c : cases) {
    const LabelMatrix m = distribute_problem(world, c.pb);
    SvdConfig rc;
    rc.J = c.J;
    rc.power_iterations = c.q;
    rc.power_tol = 0;  // exactly q passes
    rc.seed = 5;
    const TruncatedSvd rnd = truncated_svd(world, m, rc);
    // The ScaLAPACK Householder QR instead of CholeskyQR: the same to rounding.
    SvdConfig hc = rc;
    hc.qr = scalapack::TallSkinnyQr::kHouseholder;
    const TruncatedSvd hh = truncated_svd(world, m, hc);
    EXPECT_EQ(hh.qr_paths[2], 2 * rc.power_iterations + 2) << c.what;
    {
      const Gathered gr = gather(world, rnd), gh = gather(world, hh);
      for (int j = 0; j < c.J; ++j) EXPECT_NEAR(hh.S[j], rnd.S[j], 1e-10 * rnd.S[0]) << c.what;
      EXPECT_LT((gr.A - gh.A).cwiseAbs().maxCoeff(), 1e-9) << c.what << ": Householder";
      EXPECT_LT((gr.B - gh.B).cwiseAbs().maxCoeff(), 1e-9) << c.what << ": Householder";
    }
    for (int rows : divisors(world.size())) {
      SvdConfig ec = rc;
      ec.kind = SvdKind::kExact;
      ec.grid_rows = rows;
      const TruncatedSvd ex = truncated_svd(world, m, ec);
      std::string what = c.what + ", exact on grid rows " + std::to_string(rows);
      if (ex.spectrum.size() > static_cast<std::size_t>(c.J + rc.oversampling))
        what +=
            " (sigma_J+1 / sigma_J = " + std::to_string(ex.spectrum[c.J] / ex.spectrum[c.J - 1]) +
            ", sigma_k+1 / sigma_J = " +
            std::to_string(ex.spectrum[c.J + rc.oversampling] / ex.spectrum[c.J - 1]) + ")";
      ASSERT_EQ(rnd.r, c.J) << what;
      ASSERT_EQ(ex.r, c.J) << what;
      // the gap: sigma_{J+1} / sigma_J
      if (ex.spectrum.size() > static_cast<std::size_t>(c.J)) {
        EXPECT_LT(ex.spectrum[c.J], 0.5 * ex.spectrum[c.J - 1]) << what << ": no clear gap";
      }
      for (int j = 0; j < c.J; ++j)
        EXPECT_LT(std::abs(rnd.S[j] - ex.S[j]), 1e-6 * ex.S[j]) << what << ", sigma " << j;
      const Gathered gr = gather(world, rnd), ge = gather(world, ex);
      EXPECT_LT(max_angle(ge.A, gr.A), 1e-6) << what << ": users' subspace";
      EXPECT_LT(max_angle(ge.B, gr.B), 1e-6) << what << ": comparisons' subspace";
      // Distinct singular values: the vectors themselves agree (same sign convention).
      EXPECT_LT((ge.A - gr.A).cwiseAbs().maxCoeff(), 1e-6) << what;
      EXPECT_LT((ge.B - gr.B).cwiseAbs().maxCoeff(), 1e-6) << what;
    }
  }
}

// The power iterations end when the top J singular value estimates settle (power_tol), at the
// latest after power_iterations passes; power_tol = 0 runs exactly power_iterations. Every rank
// takes the same number of passes.
TEST(SvdRandomized, PowerIterationsEndWhenTheSpectrumSettles) {
  auto world = mpi::Comm::world();
  const Problem pb = block_problem(400, 160, 4, 0.5, 26);
  const LabelMatrix m = distribute_problem(world, pb);
  SvdConfig ec;
  ec.kind = SvdKind::kExact;
  ec.J = 4;
  const TruncatedSvd ex = truncated_svd(world, m, ec);
  ASSERT_GT(ex.spectrum.size(), 4u);
  const double gap = ex.spectrum[4] / ex.spectrum[3];
  SvdConfig rc;
  rc.J = 4;
  rc.seed = 7;
  const TruncatedSvd rnd = truncated_svd(world, m, rc);  // defaults: up to 30, tol 1e-3
  const std::string what = "sigma_5 / sigma_4 = " + std::to_string(gap) + ", " +
                           std::to_string(rnd.power_iterations) + " power iterations";
  EXPECT_GE(rnd.power_iterations, 1) << what;
  EXPECT_LT(rnd.power_iterations, rc.power_iterations) << what << ": did not end early";
  EXPECT_LT(rnd.power_change, rc.power_tol) << what;
  EXPECT_EQ(mpi::allreduce_min(world, rnd.power_iterations),
            mpi::allreduce_max(world, rnd.power_iterations))
      << what;
  // Settled estimates are close to the exact values and subspaces.
  for (int j = 0; j < 4; ++j) EXPECT_LT(std::abs(rnd.S[j] - ex.S[j]), 1e-3 * ex.S[j]) << what;
  const Gathered gr = gather(world, rnd), ge = gather(world, ex);
  EXPECT_LT(max_angle(ge.A, gr.A), 0.05) << what;
  EXPECT_LT(max_angle(ge.B, gr.B), 0.05) << what;
  // One pass fewer than it took is the same computation up to there: the cap ends it instead.
  SvdConfig capped = rc;
  capped.power_iterations = rnd.power_iterations - 1;
  const TruncatedSvd c = truncated_svd(world, m, capped);
  EXPECT_EQ(c.power_iterations, capped.power_iterations) << what;
  EXPECT_GE(c.power_change, rc.power_tol) << what;
  // power_tol = 0: exactly power_iterations passes (2q + 2 orthonormalizations).
  SvdConfig fixed = rc;
  fixed.power_tol = 0;
  fixed.power_iterations = 5;
  const TruncatedSvd f = truncated_svd(world, m, fixed);
  EXPECT_EQ(f.power_iterations, 5);
  EXPECT_EQ(f.qr_paths[0] + f.qr_paths[1] + f.qr_paths[2], 2 * 5 + 2);
  // Without a gap (generic random labels) the estimates keep moving: the cap ends it.
  const Problem flat = random_problem(300, 120, 0.3, 27);
  const LabelMatrix mf = distribute_problem(world, flat);
  SvdConfig few = rc;
  few.power_iterations = 2;
  EXPECT_EQ(truncated_svd(world, mf, few).power_iterations, 2);
  // A negative tolerance is refused.
  SvdConfig bad = rc;
  bad.power_tol = -1;
  EXPECT_THROW(truncated_svd(world, m, bad), InputError);
}

// A sketch as wide as the smaller side spans all of M: the range finder is then exact, for the
// compile-time widths of the sparse products (k = 50) and the run-time one (k = 66 > 64), in
// both orientations (more users than comparisons, and fewer).
TEST(SvdRandomized, FullWidthSketchIsExact) {
  auto world = mpi::Comm::world();
  for (int k : {50, 66})
    for (bool tall : {true, false}) {
      const Problem pb = tall ? random_problem(200, k, 0.5, 24) : random_problem(k, 150, 0.5, 25);
      const LabelMatrix m = distribute_problem(world, pb);
      SvdConfig cfg;
      cfg.J = k - 10;
      cfg.oversampling = 10;
      cfg.power_iterations = 1;
      const TruncatedSvd svd = truncated_svd(world, m, cfg);
      const std::string what = "k " + std::to_string(k) + (tall ? ", tall" : ", wide");
      ASSERT_EQ(svd.spectrum.size(), static_cast<std::size_t>(k)) << what;
      const Eigen::BDCSVD<Matrix> ref(dense(pb, true), Eigen::ComputeThinU | Eigen::ComputeThinV);
      const Eigen::VectorXd s = ref.singularValues();
      for (int j = 0; j < k; ++j) EXPECT_NEAR(svd.spectrum[j], s(j), 1e-10 * s(0)) << what;
      // The rank-J approximations agree.
      const Gathered g = gather(world, svd);
      const int J = cfg.J;
      const Matrix L =
          g.A * Eigen::Map<const Eigen::VectorXd>(svd.S.data(), J).asDiagonal() * g.B.transpose();
      const Matrix Lref = ref.matrixU().leftCols(J) * s.head(J).asDiagonal() *
                          ref.matrixV().leftCols(J).transpose();
      EXPECT_LT((L - Lref).cwiseAbs().maxCoeff(), 1e-8 * s(0)) << what;
    }
}

// ---------------------------------------------------------------------------------------------
// The paper's imputation against a dense Eigen implementation of the same rounds

TEST(SvdImpute, MatchesDenseReference) {
  auto world = mpi::Comm::world();
  const Problem pb = block_problem(60, 40, 3, 0.5, 31);
  const LabelMatrix m = distribute_problem(world, pb);
  const int J = 3, rounds = 4;
  Matrix mask;
  Matrix X = dense(pb, false, &mask);
  for (int round = 0; round < rounds; ++round) {
    const Eigen::BDCSVD<Matrix> svd(X, Eigen::ComputeThinU | Eigen::ComputeThinV);
    const Matrix L = svd.matrixU().leftCols(J) * svd.singularValues().head(J).asDiagonal() *
                     svd.matrixV().leftCols(J).transpose();
    for (Eigen::Index i = 0; i < X.rows(); ++i)
      for (Eigen::Index p = 0; p < X.cols(); ++p)
        if (mask(i, p) == 0) X(i, p) = std::clamp(L(i, p), 0.0, 1.0);
  }
  const Eigen::BDCSVD<Matrix> ref(X, Eigen::ComputeThinU | Eigen::ComputeThinV);
  Matrix RA = ref.matrixU().leftCols(J), RB = ref.matrixV().leftCols(J);
  fix_signs(RA, RB);
  for (int rows : divisors(world.size())) {
    SvdConfig cfg;
    cfg.kind = SvdKind::kImpute;
    cfg.J = J;
    cfg.impute_rounds = rounds;
    cfg.impute_exact = true;
    cfg.grid_rows = rows;
    cfg.block = 4;
    const TruncatedSvd svd = truncated_svd(world, m, cfg);
    const Gathered g = gather(world, svd);
    for (int j = 0; j < J; ++j)
      EXPECT_NEAR(svd.S[j], ref.singularValues()(j), 1e-10 * ref.singularValues()(0));
    EXPECT_LT((g.A - RA).cwiseAbs().maxCoeff(), 1e-8) << "grid rows " << rows;
    EXPECT_LT((g.B - RB).cwiseAbs().maxCoeff(), 1e-8) << "grid rows " << rows;
    // The factors are the paper's: u = A sqrt(S), z = B sqrt(S), not rescaled.
    const Factors f = factors_from_svd(world, m, svd, cfg);
    const Matrix U = as_matrix(allgather_rows(world, f.U), J);
    EXPECT_LT(
        (U - RA * ref.singularValues().head(J).cwiseSqrt().asDiagonal()).cwiseAbs().maxCoeff(),
        1e-8);
  }
}

TEST(SvdImpute, RandomizedRoundsMatchExactRounds) {
  auto world = mpi::Comm::world();
  const Problem pb = block_problem(80, 50, 3, 0.6, 32);
  const LabelMatrix m = distribute_problem(world, pb);
  SvdConfig cfg;
  cfg.kind = SvdKind::kImpute;
  cfg.J = 3;
  cfg.impute_rounds = 5;
  cfg.impute_exact = true;
  const TruncatedSvd ex = truncated_svd(world, m, cfg);
  for (int rows : divisors(world.size())) {
    cfg.impute_exact = false;
    // The rounds feed each reconstruction into the next X, and the first rounds' X (mostly
    // 0.5) have smaller gaps than the final one: q = 2 agrees to 1e-4, q = 6 to 1e-6, q = 8
    // well below.
    cfg.power_iterations = 8;
    cfg.power_tol = 0;
    cfg.grid_rows = rows;
    cfg.block = 5;
    const TruncatedSvd rnd = truncated_svd(world, m, cfg);
    const std::string what = "grid rows " + std::to_string(rows) + " (sigma_J+1 / sigma_J = " +
                             std::to_string(ex.spectrum[3] / ex.spectrum[2]) + ")";
    for (int j = 0; j < 3; ++j) EXPECT_LT(std::abs(rnd.S[j] - ex.S[j]), 1e-6 * ex.S[j]) << what;
    const Gathered gr = gather(world, rnd), ge = gather(world, ex);
    EXPECT_LT(max_angle(ge.A, gr.A), 1e-6) << what;
    EXPECT_LT(max_angle(ge.B, gr.B), 1e-6) << what;
  }
}

// ---------------------------------------------------------------------------------------------
// The factors

namespace {
std::vector<SvdConfig> all_kinds(int J) {
  std::vector<SvdConfig> out;
  for (SvdKind kind : {SvdKind::kRandomized, SvdKind::kExact, SvdKind::kImpute}) {
    SvdConfig c;
    c.kind = kind;
    c.J = J;
    c.seed = 99;
    c.impute_rounds = 3;
    out.push_back(c);
  }
  return out;
}
}  // namespace

TEST(SvdInit, SameFactorsAtAnyRankCountAndBitwiseRepeatable) {
  auto world = mpi::Comm::world();
  auto self = mpi::Comm::self();
  // Tall (the sparse products iterate over users) and wide (over comparisons).
  for (const Problem& pb : {block_problem(130, 70, 4, 0.8, 41), block_problem(60, 140, 4, 0.8, 42)})
    for (const SvdConfig& cfg : all_kinds(4)) {
      const std::string what = std::string(svd_kind_name(cfg.kind)) + " on " +
                               std::to_string(pb.users) + " x " + std::to_string(pb.comparisons);
      const LabelMatrix m = distribute_problem(world, pb);
      const Factors a = svd_init(world, m, cfg);
      const Factors b = svd_init(world, m, cfg);
      EXPECT_TRUE(a.U == b.U && a.Z == b.Z) << what << ": two runs differ";
      if (cfg.kind == SvdKind::kRandomized) {
        // Threads and the choice of partner table do not change a bit.
        for (int threads : {2, 3})
          for (auto table : {SvdConfig::Table::kDense, SvdConfig::Table::kSparse}) {
            SvdConfig c = cfg;
            c.threads = threads;
            c.table = table;
            const Factors t = svd_init(world, m, c);
            EXPECT_TRUE(a.U == t.U && a.Z == t.Z)
                << what << ": " << threads << " threads, table " << static_cast<int>(table);
          }
      }
      const std::vector<double> U = allgather_rows(world, a.U), Z = allgather_rows(world, a.Z);
      ASSERT_EQ(U.size(), pb.users * 4);
      ASSERT_EQ(Z.size(), pb.comparisons * 4);
      EXPECT_TRUE(std::all_of(U.begin(), U.end(), [](double v) { return std::isfinite(v); }));
      // After the collective work on every rank (BLACS is initialized), rank 0 alone on
      // MPI_COMM_SELF.
      if (world.rank() == 0) {
        const LabelMatrix m1 = distribute_problem(self, pb);
        const Factors one = svd_init(self, m1, cfg);
        EXPECT_LT(max_abs_diff(U, one.U), 1e-10 * max_abs(one.U)) << what;
        EXPECT_LT(max_abs_diff(Z, one.Z), 1e-10 * max_abs(one.Z)) << what;
        std::printf("%s at %d ranks vs 1: max |dU| %.2e, max |dZ| %.2e (max |U| %.2f)\n",
                    what.c_str(), world.size(), max_abs_diff(U, one.U), max_abs_diff(Z, one.Z),
                    max_abs(one.U));
      }
      world.barrier();
    }
}

// Enough users per rank (over 32768) for the sparse products to scatter in several chunks of
// rows, each with its own table: the factors are still the same bits for any thread count.
TEST(SvdInit, ChunkedScatterIsIndependentOfThreads) {
  auto world = mpi::Comm::world();
  const Problem pb = random_problem(70000 * world.size(), 40, 0.08, 43);
  const LabelMatrix m = distribute_problem(world, pb);
  SvdConfig cfg;
  cfg.J = 3;
  cfg.seed = 7;
  const Factors one = svd_init(world, m, cfg);
  for (int threads : {2, 3}) {
    cfg.threads = threads;
    const Factors t = svd_init(world, m, cfg);
    EXPECT_TRUE(one.U == t.U && one.Z == t.Z) << threads << " threads";
  }
}

TEST(SvdInit, SignConventionAndScaling) {
  auto world = mpi::Comm::world();
  const Problem pb = random_problem(90, 60, 0.3, 51);
  const LabelMatrix m = distribute_problem(world, pb);
  for (const SvdConfig& cfg : all_kinds(5)) {
    const std::string what = svd_kind_name(cfg.kind);
    const TruncatedSvd svd = truncated_svd(world, m, cfg);
    const Gathered g = gather(world, svd);
    for (int j = 0; j < svd.r; ++j) {
      Eigen::Index at = 0;
      g.B.col(j).cwiseAbs().maxCoeff(&at);
      EXPECT_GT(g.B(at, j), 0) << what << ", column " << j;
    }
    const Factors f = factors_from_svd(world, m, svd, cfg);
    const double rms = rms_margin(world, m, f);
    if (cfg.kind == SvdKind::kImpute) {
      // unscaled: the factors are A sqrt(S), B sqrt(S)
      const Matrix U = as_matrix(allgather_rows(world, f.U), 5);
      EXPECT_LT(
          (U - g.A * Eigen::Map<const Eigen::VectorXd>(svd.S.data(), 5).cwiseSqrt().asDiagonal())
              .cwiseAbs()
              .maxCoeff(),
          1e-14);
    } else {
      EXPECT_NEAR(rms, 1.0, 1e-12) << what;
      // the same up to one factor c on both sides: u_i . z_p is c^2 times M's rank-J part
      const Matrix U = as_matrix(allgather_rows(world, f.U), 5);
      const Matrix Z = as_matrix(allgather_rows(world, f.Z), 5);
      const Matrix L =
          g.A * Eigen::Map<const Eigen::VectorXd>(svd.S.data(), 5).asDiagonal() * g.B.transpose();
      const double c2 = (U * Z.transpose())(0, 0) / L(0, 0);
      EXPECT_LT((U * Z.transpose() - c2 * L).cwiseAbs().maxCoeff(),
                1e-10 * c2 * L.cwiseAbs().maxCoeff())
          << what;
    }
  }
}

TEST(SvdInit, FallbackColumnsAreRandomInit) {
  auto world = mpi::Comm::world();
  FitConfig fc;
  fc.J = 6;
  fc.seed = 3;
  // J above min(users, comparisons): columns 4 and 5 come from random_factors.
  const Problem small = random_problem(9, 4, 1.0, 61);
  const LabelMatrix m = distribute_problem(world, small);
  const Factors rnd = random_factors(world, m.parts, fc);
  for (const SvdConfig& base : all_kinds(6)) {
    SvdConfig cfg = base;
    cfg.seed = 3;
    const Factors f = svd_init(world, m, cfg);
    for (std::size_t i = 0; i < f.U.size(); ++i) {
      if (i % 6 >= 4) {
        EXPECT_EQ(f.U[i], rnd.U[i]) << svd_kind_name(cfg.kind);
      }
    }
    for (std::size_t p = 0; p < f.Z.size(); ++p) {
      if (p % 6 >= 4) {
        EXPECT_EQ(f.Z[p], rnd.Z[p]) << svd_kind_name(cfg.kind);
      }
    }
  }
  // All ties: M = 0, every column falls back.
  Problem ties = random_problem(20, 10, 0.5, 62);
  std::fill(ties.cols.value.begin(), ties.cols.value.end(), 0.5f);
  const LabelMatrix mt = distribute_problem(world, ties);
  const Factors rt = random_factors(world, mt.parts, fc);
  SvdConfig cfg;
  cfg.J = 6;
  cfg.seed = 3;
  for (SvdKind kind : {SvdKind::kRandomized, SvdKind::kExact}) {
    cfg.kind = kind;
    const Factors f = svd_init(world, mt, cfg);
    EXPECT_EQ(f.U, rt.U) << svd_kind_name(kind);
    EXPECT_EQ(f.Z, rt.Z) << svd_kind_name(kind);
  }
}
