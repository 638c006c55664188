#pragma once
// The factorization's gauge (docs/design.md, "The population prior"): the model is unchanged by
// U -> U A^-T, Z -> Z A (with m -> A^-1 m, Sigma -> A^-1 Sigma A^-T) for any invertible J x J
// matrix A; only Z's ridge and the prior's log det see A. Two uses of that freedom:
//   - rotate_to_prior_basis, after each M-step: A orthogonal, the prior's eigenbasis (largest
//     variance first, each eigenvector's largest entry positive): fixes the frame of the output;
//   - balance_start, once before a fresh fit: the start's balanced form (below);
//   - align_to, in SQUAREM's cycle: A orthogonal, the turn that brings one state closest to
//     another.
#include <vector>

#include "solver/fit/context.hpp"
#include "solver/fit/state.hpp"

namespace pref {

// The start of a fresh fit in a canonical form (FitConfig::canonical_start): U and Z scaled
// alike so that the training labels' RMS margin is 1 (as the SVD initialization leaves it; a
// random start's margins are tiny), then moved along the gauge to its balanced form:
// U^T U = Z^T Z = Lambda diagonal (the "balanced realization": with
// U^T U = L L^T and L^T Z^T Z L = W Lambda^2 W^T, A = L W Lambda^-1/2). An SVD start
// (U = V S^1/2, Z = U S^1/2) is balanced already; starts that differ from each other by a scale
// or a rotation of the factor space land on the same state up to the signs of its factors,
// which no prediction sees, so they give the same predictions sweep after sweep
// (tests/test_fit_rules.cpp). Left as it is when U^T U is singular. Collective.
void balance_start(FitContext& ctx);

// `more`: further row arrays of the state that turn with U (and the same for Z), e.g. the
// extrapolation's previous factors; null entries are skipped.
void rotate_to_prior_basis(FitContext& ctx, std::vector<double>* u_more,
                           std::vector<double>* z_more);

// The orthogonal turn of the factor space that brings the state `a` closest to `b` (orthogonal
// Procrustes): Q = W V^T from the SVD W S V^T of U_a^T U_b + Z_a^T Z_b (every rank's rows, one
// allreduce), which minimizes |U_a Q - U_b|^2 + |Z_a Q - Z_b|^2 over orthogonal Q; then
// a <- a Q: its U and Z rows, and the prior's mean, covariance and spread (not its precision and
// log det: `a` may be a difference of states). No prediction, and no term of the objective, sees
// the turn. SQUAREM uses it to measure a cycle's change without the turn that plain sweeps add
// each sweep (docs/design.md, "Accelerating the EM"). Every rank turns by the same Q. Collective.
void align_to(const mpi::Comm& comm, int J, Snapshot& a, const Snapshot& b);

}  // namespace pref
