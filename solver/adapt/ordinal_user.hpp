#pragma once
// The tie-aware answer model on the Gaussian path (issue 24, docs/design.md "Adapting new
// users"): a new user's MAP under a Gaussian penalty with the ordinal label model of
// solver/newton/ordinal.hpp in place of the logistic one,
//   f(u) = -sum_k log P(y_k | z_k . u; r, s, a) + 1/2 (u - m)^T P (u - m),
// where a tie is evidence that |u . z| is small instead of a label of 0.5. f need not be convex
// (log P(first | m) dips near m = 0 when r is large), so the Newton step uses the observed
// Hessian when it is positive definite and the Fisher information otherwise, always with the
// Armijo ladder on f. The precision that the question criterion and the reported covariance use
// is the Fisher information V = P + sum_k F(z_k . u) z_k z_k^T (F = ordinal::fisher_m), positive
// definite at every u; for the logistic model it is the Hessian, as on the logistic path.
//
// The answer model's (r, s, a) are fitted to the population (fit_answer_model): by maximum
// likelihood over the training labels of a sample of training users at their margins, the users
// being re-estimated under the ordinal model in turn (a few alternations, as pref types does
// with its atoms).
#include <Eigen/Core>
#include <cstdint>
#include <span>
#include <vector>

#include "solver/adapt/new_user.hpp"
#include "solver/newton/ordinal.hpp"

namespace pref::adapt {

// Stops when every gradient coordinate is at most this: looser than the logistic kGradTol, since
// the ordinal model's curvature can be far from its Fisher information.
inline constexpr double kOrdinalGradTol = 1e-10;

// Minimizes f by Newton from u (warm start). On return ws.H holds V at the returned u and ws.g
// the gradient there. The answers must be 0, 0.5 or 1 (the caller checks).
SolveStats solve_ordinal(Eigen::VectorXd& u, const Answers& a, const Penalty& p,
                         const ordinal::Params& lik, Workspace& ws);

// The gradient of f and V at u (into ws.g, ws.H).
void fisher_information(const Eigen::VectorXd& u, const Answers& a, const Penalty& p,
                        const ordinal::Params& lik, Workspace& ws);

// The users of fit_answer_model: each user's answers are Z rows idx[ptr[i]..ptr[i+1]) with
// values y (all 0, 0.5 or 1).
struct UserAnswers {
  std::span<const std::uint64_t> ptr;
  std::span<const std::uint32_t> idx;
  std::span<const float> y;
};
inline constexpr int kAnswerModelRounds = 3;
// (r, s, a) from the users' answers: each user's MAP under the logistic model and the penalty,
// the ML fit of (r, s, a) at their margins (from r = 0.5, s = a third of the margins' spread,
// a = 1, as pref types starts), then kAnswerModelRounds - 1 times each user's MAP under the
// ordinal model and the refit. A pure function of its arguments (the same on every rank).
ordinal::Params fit_answer_model(const UserAnswers& users, const double* Z, int J,
                                 const Penalty& prior);

}  // namespace pref::adapt
