#pragma once
// The factorization's gauge under the population prior (docs/design.md, "The population
// prior"): the model is unchanged by U -> U A^-T, Z -> Z A with m -> A^-1 m, Sigma -> A^-1 Sigma
// A^-T for any invertible J x J matrix A; only Z's ridge and the prior's log det see A. Two steps
// after each M-step use that freedom:
//   - rotate_to_prior_basis: A orthogonal, the prior's eigenbasis (largest variance first, each
//     eigenvector's largest entry positive): fixes the frame of the output;
//   - expand_parameters (--accelerate px|squarem): A = Q diag(a) Q^T in that eigenbasis Q, with
//     a_j^2 = n / ((Q^T Sigma^-1 Q)_jj (Q^T S Q)_jj + mu_z (Q^T Z^T Z Q)_jj), S = sum_i C_i,
//     the minimizer over such A of the objective with the users' posterior spreads C_i held
//     fixed (a parameter-expanded EM step, Liu, Rubin and Wu 1998). At the EM fixed point
//     A = I (there mu_z Z^T Z = n I - Sigma^-1 S), so the fixed point is the same; away from it
//     the step moves the factors' scales, which plain sweeps change only slowly, to the
//     balance the objective prefers. Every rank computes the same A from replicated numbers.
#include <vector>

#include "solver/fit/context.hpp"

namespace pref {

// `more`: further row arrays of the state that turn with U (and the same for Z), e.g. the
// extrapolation's previous factors; null entries are skipped.
void rotate_to_prior_basis(FitContext& ctx, std::vector<double>* u_more,
                           std::vector<double>* z_more);
// Returns the smallest and largest a_j (for the log).
std::pair<double, double> expand_parameters(FitContext& ctx, std::vector<double>* u_more,
                                            std::vector<double>* z_more);

}  // namespace pref
