#include "solver/adapt/ordinal_user.hpp"

#include <Eigen/Cholesky>
#include <cmath>

#include "solver/newton/loss.hpp"

namespace pref::adapt {

namespace {
// The gradient of f and V (ws.H) at u, the answers' margins (ws.margins) and, when `observed` is
// given, f's Hessian there.
void pass(const Eigen::VectorXd& u, const Answers& a, const Penalty& p, const ordinal::Params& lik,
          Workspace& ws, Eigen::MatrixXd* observed) {
  const int J = a.J;
  const std::size_t n = a.idx.size();
  ws.g.setZero(J);
  ws.H.setZero(J, J);
  if (observed) observed->setZero(J, J);
  ws.margins.resize(static_cast<Eigen::Index>(n));
  for (std::size_t k = 0; k < n; ++k) {
    Eigen::Map<const Eigen::VectorXd> z(a.Z + std::size_t(a.idx[k]) * J, J);
    const double m = z.dot(u);
    ws.margins[k] = m;
    const ordinal::MDerivs2 d = ordinal::m_derivs2(ordinal::outcome(a.y[k]), m, lik);
    ws.g.noalias() -= d.dm * z;
    ws.H.selfadjointView<Eigen::Lower>().rankUpdate(z, ordinal::fisher_m(m, lik));
    if (observed) observed->selfadjointView<Eigen::Lower>().rankUpdate(z, -d.dmm);
  }
  ws.H.triangularView<Eigen::StrictlyUpper>() = ws.H.transpose();
  ws.diff = u - p.mean;
  ws.g.noalias() += p.precision * ws.diff;
  ws.H += p.precision;
  if (observed) {
    observed->triangularView<Eigen::StrictlyUpper>() = observed->transpose();
    *observed += p.precision;
  }
}
}  // namespace

void fisher_information(const Eigen::VectorXd& u, const Answers& a, const Penalty& p,
                        const ordinal::Params& lik, Workspace& ws) {
  pass(u, a, p, lik, ws, nullptr);
}

SolveStats solve_ordinal(Eigen::VectorXd& u, const Answers& a, const Penalty& p,
                         const ordinal::Params& lik, Workspace& ws) {
  SolveStats st;
  thread_local Eigen::MatrixXd observed;
  const std::size_t n = a.idx.size();
  // Every exit follows a pass at the returned u, so ws.H and ws.g are V and the gradient there.
  for (;;) {
    pass(u, a, p, lik, ws, &observed);
    st.grad_inf = ws.g.cwiseAbs().maxCoeff();
    if (st.grad_inf <= kOrdinalGradTol || st.steps >= kMaxNewtonSteps) break;
    Eigen::LLT<Eigen::MatrixXd> llt(observed);
    if (llt.info() != Eigen::Success) llt.compute(ws.H);
    if (llt.info() != Eigen::Success) break;
    ws.d = -llt.solve(ws.g);
    const double gd = ws.g.dot(ws.d);
    if (!(gd < 0)) break;
    // The change of f along t d: the answers' terms summed one by one, the penalty's apart.
    ws.q.resize(n);
    for (std::size_t k = 0; k < n; ++k)
      ws.q[k] = Eigen::Map<const Eigen::VectorXd>(a.Z + std::size_t(a.idx[k]) * a.J, a.J).dot(ws.d);
    ws.Pd.noalias() = p.precision * ws.d;
    const double lin = ws.diff.dot(ws.Pd), quad = ws.d.dot(ws.Pd);
    int chosen = -1;
    for (int j = 0; j < kLadder && chosen < 0; ++j) {
      const double t = ladder_step(j);
      double change = t * lin + 0.5 * t * t * quad;
      for (std::size_t k = 0; k < n; ++k) {
        const int o = ordinal::outcome(a.y[k]);
        change -= ordinal::log_lik(o, ws.margins[k] + t * ws.q[k], lik) -
                  ordinal::log_lik(o, ws.margins[k], lik);
      }
      if (change <= kArmijo * t * gd) chosen = j;
    }
    if (chosen < 0) break;
    u += ladder_step(chosen) * ws.d;
    ++st.steps;
  }
  return st;
}

ordinal::Params fit_answer_model(const UserAnswers& users, const double* Z, int J,
                                 const Penalty& prior) {
  const std::size_t N = users.ptr.empty() ? 0 : users.ptr.size() - 1;
  std::vector<Eigen::VectorXd> u(N, prior.mean);
  Workspace ws;
  auto answers = [&](std::size_t i) {
    const std::size_t a = users.ptr[i], n = users.ptr[i + 1] - users.ptr[i];
    return Answers{Z, J, users.idx.subspan(a, n), users.y.subspan(a, n)};
  };
  auto sums = [&](const ordinal::Params& p, bool derivs) {
    std::vector<double> out(derivs ? 10 : 1, 0.0);
    for (std::size_t i = 0; i < N; ++i)
      for (std::uint64_t k = users.ptr[i]; k < users.ptr[i + 1]; ++k) {
        const double m =
            Eigen::Map<const Eigen::VectorXd>(Z + std::size_t(users.idx[k]) * J, J).dot(u[i]);
        ordinal::add_param_sums(ordinal::outcome(users.y[k]), m, p, derivs, out.data());
      }
    return out;
  };
  for (std::size_t i = 0; i < N; ++i) solve(u[i], answers(i), prior, ws);
  // The start of pref types: a tie rate of a half, s a third of the margins' spread, a = 1.
  double n = 0, sum = 0, sum2 = 0;
  for (std::size_t i = 0; i < N; ++i)
    for (std::uint64_t k = users.ptr[i]; k < users.ptr[i + 1]; ++k) {
      const double m =
          Eigen::Map<const Eigen::VectorXd>(Z + std::size_t(users.idx[k]) * J, J).dot(u[i]);
      n += 1, sum += m, sum2 += m * m;
    }
  const double mean = sum / std::max(n, 1.0);
  const double sd = std::sqrt(std::max(sum2 / std::max(n, 1.0) - mean * mean, 1e-12));
  ordinal::Params p{0.5, sd / 3, 1.0};
  const double tol = 1e-10 * std::max(n, 1.0);
  constexpr int kSteps = 30;
  ordinal::maximize_params(p, tol, kSteps, sums);
  for (int round = 1; round < kAnswerModelRounds; ++round) {
    for (std::size_t i = 0; i < N; ++i) solve_ordinal(u[i], answers(i), prior, p, ws);
    ordinal::maximize_params(p, tol, kSteps, sums);
  }
  return p;
}

}  // namespace pref::adapt
