#include "solver/svd/init.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <span>

#include "solver/base/error.hpp"
#include "solver/svd/dense.hpp"
#include "solver/svd/range_finder.hpp"

// The SVD initialization by concept: the sparse label operator (solver/svd/sparse_op.hpp), the
// randomized range finder (solver/svd/range_finder.*), the dense exact and imputation paths
// (solver/svd/dense.*); here the choice between them, the signs, and the factors.

namespace pref {

namespace {

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
      svd = svd::randomized_svd(comm, train, cfg);
      break;
    case SvdKind::kExact:
      svd = svd::exact_svd(comm, train, cfg);
      break;
    case SvdKind::kImpute:
      svd = svd::impute_svd(comm, train, cfg);
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
