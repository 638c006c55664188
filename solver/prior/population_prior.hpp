#pragma once
// The population prior of the users, u_i ~ N(m, Sigma), learned during the fit by empirical
// Bayes (docs/design.md, "The population prior"). This file holds the prior as a value, the
// per-row spread it needs (each user's posterior covariance, the inverse of the row's Newton
// Hessian) and the closed-form update of (m, Sigma) from all users, which is the M-step of an
// EM whose E-step is a Laplace approximation of each user's posterior:
//   m     = (1/n) sum_i u_i
//   Sigma = (1/n) sum_i [ (u_i - m)(u_i - m)^T + C_i ],   C_i = (H_i + Sigma_old^-1)^-1,
// H_i being the Hessian of user i's labels' loss. The C_i keep Sigma from collapsing onto the
// point estimates (which the joint MAP in U and Sigma would do).
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "solver/base/mpi.hpp"

namespace pref {

// u ~ N(mean, covariance); precision = covariance^-1 and log_det = log det covariance are kept
// with it (every rank computes them from the same numbers, so they are the same everywhere).
struct PopulationPrior {
  int J = 0;
  std::vector<double> mean;        // J
  std::vector<double> covariance;  // J x J, symmetric (row-major = column-major)
  std::vector<double> precision;   // J x J
  double log_det = 0;              // log det covariance
  // sum over users of their posterior covariances C_i at the last update (J x J): the
  // objective's term (1/2) tr(Sigma^-1 sum_i C_i) (see prior_objective).
  std::vector<double> spread;
  std::uint64_t users = 0;  // n: the users the prior was estimated from

  // N(0, I / mu), the ridge as a prior: the start of a fit (before its first user half-step,
  // each user's posterior spread is taken to be the prior's own, so spread = n I / mu).
  static PopulationPrior isotropic(int J, double mu, std::uint64_t users);
  // N(mean, covariance) of a start's own user rows U (this rank's, J columns; users: all
  // ranks'), the spread again taken to be the prior's (n Sigma): a first prior that moves with
  // the start along the factorization's gauge (U -> U A^-T takes it to A^-1 Sigma A^-T).
  // Falls back to isotropic(J, mu, users) when that covariance is not positive definite (e.g.
  // a start of fewer distinct rows than J). Collective.
  static PopulationPrior of_start(const mpi::Comm& comm, int J, std::span<const double> U,
                                  std::uint64_t users, double mu);
  // Sets covariance and derives precision and log_det. Throws pref::Error when it is not
  // positive definite.
  void set_covariance(std::vector<double> cov);

  double trace() const;
  // Eigenvalues of the covariance, largest first.
  std::vector<double> eigenvalues() const;
};

// The M-step: the new prior from this rank's user rows U (row-major, J columns) and the sum of
// their posterior covariances (lower triangle, column-major J x J), over all ranks. users is
// the global count. Two passes (mean, then centred second moments), each one allreduce.
// Collective.
PopulationPrior update_prior(const mpi::Comm& comm, int J, std::span<const double> U,
                             std::span<const double> spread_lower, std::uint64_t users);

// The over-relaxed M-step (docs/design.md, "Over-relaxed M-step"): the covariance's spectrum
// is moved past EM's update by a factor w >= 1 in the logarithm, in the eigenbasis of EM's
// update, and the mean is EM's:
//   S = V1 diag(lambda1^w lambda0^(1-w)) V1^T,   m = m1,
// lambda0 and lambda1 the previous prior's and EM's eigenvalues (paired in order), V1 EM's
// eigenvectors (w = 1: EM's update). Only the spectrum is extrapolated, not the orientation:
// EM leaves the rotations of the factorization neutral, and an extrapolated rotation would keep
// turning the state instead of converging (a full affine-invariant extrapolation, tried, ends in
// such a turning state off EM's fixed points). A state the relaxed M-step leaves unchanged up to a
// rotation is one EM's own update leaves so. Near a fixed point, a slow mode of the spectrum
// with EM's rate r contracts at 1 - w (1 - r) per sweep instead of r (the prior's growth when
// the users' labels say little: r about 0.8 on the quick start). The safeguard keeps it a
// generalized EM step: the prior's part of the objective at the current users,
//   F(m, S) = (n/2) [tr(S^-1 (S1 + (m1 - m)(m1 - m)^T)) + log det S],
// which (m1, S1) minimizes, must not exceed F(m0, S0); else w - 1 is halved (at most 4 times,
// then w = 1, which always passes). em: update_prior's result (its spread and users are kept).
// It moves with the start along the gauge's rotations and scalings. Every rank computes the same
// from the same numbers.
struct RelaxedPrior {
  PopulationPrior prior;
  double step = 1;  // the w taken
};
RelaxedPrior relax_prior(const PopulationPrior& previous, PopulationPrior em, double relax);

// The prior's terms of the fit's objective, for this rank's rows (the caller sums over ranks):
//   sum_i (1/2)(u_i - m)^T P (u_i - m)
// and, once for all ranks (returned by prior_constant):
//   (1/2) tr(P spread) + (n/2) log det Sigma.
double prior_rows_term(const PopulationPrior& p, std::span<const double> U);
double prior_constant(const PopulationPrior& p);

// For the per-sweep log and record: trace and the largest eigenvalues (at most `top`).
struct PriorSummary {
  double trace = 0;
  std::vector<double> top_eigenvalues;
};
PriorSummary summarize(const PopulationPrior& p, int top = 3);

// The flat arrays that store a prior (checkpoints) and back: mean, covariance, spread, users.
std::vector<double> prior_to_array(const PopulationPrior& p);
PopulationPrior prior_from_array(int J, std::span<const double> a, const std::string& what);

}  // namespace pref
