#include "solver/adapt/new_user.hpp"

#include <cmath>

#include "solver/base/error.hpp"

namespace pref::adapt {

namespace {
// max |d^3 BCE(m, y) / dm^3| / 3! = max |sigma''(m)| / 6 = 1 / (36 sqrt 3).
constexpr double kBceCubic = 1.0 / (36.0 * 1.7320508075688772);
// Safety factor for rounding in the bound (the bound itself is exact arithmetic).
constexpr double kCubicMargin = 0.5;
}  // namespace

Penalty Penalty::ridge(int J, double lambda) {
  Penalty p;
  p.mean = Eigen::VectorXd::Zero(J);
  p.precision = lambda * Eigen::MatrixXd::Identity(J, J);
  return p;
}

Penalty Penalty::gaussian(const Eigen::VectorXd& mean, const Eigen::MatrixXd& covariance,
                          const std::string& what) {
  const int J = static_cast<int>(mean.size());
  Eigen::LLT<Eigen::MatrixXd> llt(covariance);
  if (llt.info() != Eigen::Success || !mean.allFinite() || !covariance.allFinite())
    throw InputError(what + ": the prior covariance is not positive definite");
  Penalty p;
  p.mean = mean;
  p.precision = llt.solve(Eigen::MatrixXd::Identity(J, J));
  // Exactly symmetric, so that the Hessians built from it are too.
  p.precision = 0.5 * (p.precision + p.precision.transpose()).eval();
  return p;
}

void gradient_hessian(const Eigen::VectorXd& u, const Answers& a, const Penalty& p, Workspace& ws) {
  const int J = a.J;
  const std::size_t n = a.idx.size();
  ws.g.setZero(J);
  ws.H.setZero(J, J);
  ws.row.margins.resize(n);
  ws.row.probs.resize(n);
  LabelPass out;
  out.g = ws.g.data();
  out.H = ws.H.data();
  out.margins = ws.row.margins.data();
  out.probs = ws.row.probs.data();
  if (n > 0) accumulate(u.data(), J, a.Z, a.idx, a.y, out, ws.row);
  // accumulate fills the lower triangle; V_t is used (and written) as a full matrix.
  ws.H.triangularView<Eigen::StrictlyUpper>() = ws.H.transpose();
  ws.diff = u - p.mean;
  ws.g.noalias() += p.precision * ws.diff;
  ws.H += p.precision;
}

SolveStats solve(Eigen::VectorXd& u, const Answers& a, const Penalty& p, Workspace& ws) {
  SolveStats st;
  const int J = a.J;
  const std::size_t n = a.idx.size();
  for (;;) {
    gradient_hessian(u, a, p, ws);
    st.grad_inf = ws.g.cwiseAbs().maxCoeff();
    if (st.grad_inf <= kGradTol || st.steps >= kMaxNewtonSteps) break;
    if (!direction(ws.H, ws.g, ws.d)) break;
    const double gd = ws.g.dot(ws.d);
    if (!(gd < 0)) break;
    ws.row.steps.resize(n);
    if (n > 0) project(ws.d.data(), J, a.Z, a.idx, ws.row.steps.data());
    // The penalty's change along t d, summed apart from the losses' (newton.hpp: the
    // objective's own difference would drown in rounding near the optimum).
    ws.Pd.noalias() = p.precision * ws.d;
    const double lin = ws.diff.dot(ws.Pd), quad = ws.d.dot(ws.Pd);  // diff = u - m, kept
    int chosen = -1;
    // The full step needs no evaluation when it provably passes Armijo: the penalty is
    // quadratic and each BCE term's third derivative is sigma'' (|sigma''| <= 1 / (6 sqrt 3)),
    // so f(u + d) - f(u) <= g.d + d^T H d / 2 + kBceCubic sum_k |z_k . d|^3 with H d = -g
    // (d is the Newton direction: the Cholesky solve of the Hessian at u), that is
    // <= g.d / 2 + kBceCubic sum_k |q_k|^3, which is <= kArmijo g.d when the test below holds.
    // Near the optimum every step is accepted this way, without the line search's logarithms.
    double cubic = 0;
    for (std::size_t k = 0; k < n; ++k) {
      const double q = std::abs(ws.row.steps[k]);
      cubic += q * q * q;
    }
    if (kBceCubic * cubic <= kCubicMargin * (0.5 - kArmijo) * -gd) chosen = 0;
    if (chosen < 0)
      chosen = ladder_search(1.0, lin, quad, gd, ws.row.margins.data(), ws.row.probs.data(),
                             ws.row.steps.data(), a.y.data(), n, ws.row.change);
    if (chosen < 0) break;
    u += ladder_step(chosen) * ws.d;
    ++st.steps;
  }
  return st;
}

}  // namespace pref::adapt
