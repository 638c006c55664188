#pragma once
// Question choice for a new user (docs/design.md "Adapting new users"). Questions come from the
// user's pool only. After t answers with estimate u_t,
//   V_t = P + sum_{s asked} sigma'(u_t . z_s) z_s z_s^T
// is the Hessian of f (solver/adapt/new_user.hpp) at u_t, and the next question is the unasked
// pool comparison maximizing
//   sigma'(u_t . z)^2 z^T V_t^-1 z
// (the paper's criterion with P = 0.001 I and the MLE for `active`; with the prior's precision
// and the MAP for `bayes`). Ties go to the lowest pool index. `info` under a mixture prior is
// the answer's mutual information with the component (below); under discrete types, with the
// atom (solver/adapt/discrete_posterior.hpp).
#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <vector>

#include "solver/adapt/mixture.hpp"
#include "solver/adapt/new_user.hpp"
#include "solver/newton/ordinal.hpp"

namespace pref::adapt {

// scores[c] = sigma'(u . x_c)^2 x_c^T V^-1 x_c for the rows x_c of `candidates`, V = L L^T;
// W is scratch. With the tie-aware answer model (lik given; solver/adapt/ordinal_user.hpp) the
// weight sigma'(m)^2 becomes ordinal::sensitivity(m), sum_o (dP(o | m) / dm)^2: the variance of
// the predicted answer distribution under the Laplace posterior, as sigma'^2 z^T V^-1 z is that
// of the predicted probability for the logistic model.
void criterion(const Eigen::VectorXd& u, const Eigen::LLT<Eigen::MatrixXd>& V,
               const Eigen::MatrixXd& candidates, Eigen::VectorXd& scores, Eigen::MatrixXd& W,
               const ordinal::Params* lik = nullptr);

// The index of the largest score among candidates not yet asked; the lowest index among equal
// scores; -1 when all are asked. NaN scores never win.
int best_unasked(const Eigen::VectorXd& scores, const std::vector<char>& asked);

// `info`: the mutual information between a candidate's answer and the prior component,
//   H(sum_k w_k p_k) - sum_k w_k H(p_k),  p_k = sigmoid(u_k.z / sqrt(1 + pi/8 z^T H_k^-1 z))
// (H the binary entropy in nats; p_k the probit approximation of the component's predictive
// probability). Components with w_k < kInfoMinWeight are left out of both sums.
inline constexpr double kInfoMinWeight = 1e-12;
void information(const MixturePosterior& post, const Eigen::MatrixXd& candidates,
                 Eigen::VectorXd& scores, Workspace& ws);

}  // namespace pref::adapt
