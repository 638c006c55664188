#include "solver/svd/range_finder.hpp"

#include <fmt/core.h>

#include <climits>

#include "solver/base/error.hpp"
#include "solver/base/rng.hpp"
#include "solver/newton/blas.hpp"
#include "solver/svd/scalapack.hpp"
#include "solver/svd/sparse_op.hpp"

namespace pref::svd {

using scalapack::BlacsGrid;

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

}  // namespace pref::svd
