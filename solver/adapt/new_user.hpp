#pragma once
// A new user's weights from a few answers (docs/design.md "Adapting new users"): with the
// comparison factors Z fixed, u is the minimizer of
//   f(u) = sum_k BCE(sigmoid(z_{c_k} . u), y_k) + 1/2 (u - m)^T P (u - m)
// over the answers given so far, where the penalty (m, P) is either the population prior
// N(m, Sigma) with P = Sigma^-1 (MAP) or the paper's 0.001 I ridge around 0 (its MLE made
// well defined). f is solved exactly by Newton with the row solver's line-search ladder.
#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "solver/newton/newton.hpp"

namespace pref::adapt {

// The paper's ridge of the new-user MLE (PReF_code discover_user.py: V_0 = 0.001 I).
inline constexpr double kPaperRidge = 1e-3;
// Newton stops when every gradient coordinate is at most this (the tests check 1e-8). Tight,
// because the MLE's Hessian can be as small as the 0.001 ridge: u is then only known to
// |g| / 0.001.
inline constexpr double kGradTol = 1e-12;
inline constexpr int kMaxNewtonSteps = 200;

// The Gaussian penalty 1/2 (u - mean)^T precision (u - mean).
struct Penalty {
  Eigen::VectorXd mean;
  Eigen::MatrixXd precision;  // symmetric positive definite
  static Penalty ridge(int J, double lambda);
  // From a covariance; throws InputError naming `what` when it is not positive definite.
  static Penalty gaussian(const Eigen::VectorXd& mean, const Eigen::MatrixXd& covariance,
                          const std::string& what);
  int J() const { return static_cast<int>(mean.size()); }
};

// The answers a user has given: rows idx[k] of Z (row-major, J columns) with labels y[k].
struct Answers {
  const double* Z = nullptr;
  int J = 0;
  std::span<const std::uint32_t> idx;
  std::span<const float> y;
};

struct Workspace {
  RowWorkspace row;
  Eigen::VectorXd g, d, scores, margins, diff, Pd;
  Eigen::MatrixXd H, W;
  Eigen::MatrixXd candidates;  // the askable pool's Z rows (column-major), gathered once per user
  std::vector<double> q;
};

struct SolveStats {
  int steps = 0;
  double grad_inf = 0;  // max |gradient coordinate| at the returned u
};

// Minimizes f by Newton from u (warm start). On return ws.H holds the full symmetric Hessian of
// f at the returned u (V_t above) and ws.g the gradient there.
SolveStats solve(Eigen::VectorXd& u, const Answers& a, const Penalty& p, Workspace& ws);

// Gradient and full symmetric Hessian of f at u (into ws.g, ws.H).
void gradient_hessian(const Eigen::VectorXd& u, const Answers& a, const Penalty& p, Workspace& ws);

}  // namespace pref::adapt
