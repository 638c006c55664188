#include "solver/adapt/questions.hpp"

#include <cmath>

namespace pref::adapt {

void criterion(const Eigen::VectorXd& u, const Eigen::LLT<Eigen::MatrixXd>& V,
               const Eigen::MatrixXd& candidates, Eigen::VectorXd& scores, Eigen::MatrixXd& W,
               const ordinal::Params* lik) {
  const Eigen::Index n = candidates.rows();
  const int J = static_cast<int>(u.size());
  // z^T V^-1 z = |L^-1 z|^2 for the whole pool at once: a forward substitution on the
  // candidates as columns (column i holds coordinate i of every candidate), so each of its
  // J^2 / 2 updates, and the squared norms, are vectorized passes over the pool.
  thread_local Eigen::ArrayXd norm2;
  W = candidates;
  scores.noalias() = W * u;  // the margins, before W is overwritten
  norm2.setZero(n);
  const Eigen::MatrixXd& L = V.matrixLLT();  // lower triangle
  for (int i = 0; i < J; ++i) {
    for (int j = 0; j < i; ++j) W.col(i) -= L(i, j) * W.col(j);
    W.col(i) *= 1.0 / L(i, i);
    norm2 += W.col(i).array().square();
  }
  if (lik) {
    for (Eigen::Index c = 0; c < n; ++c)
      scores[c] = ordinal::sensitivity(scores[c], *lik) * norm2[c];
    return;
  }
  // sigma'(m) = e / (1 + e)^2 with e = exp(-|m|) (symmetric, never inf / inf), by Eigen's
  // vectorized exp.
  const Eigen::ArrayXd e = (-scores.array().abs()).exp();
  const Eigen::ArrayXd sp = e / (1 + e).square();
  scores = (sp.square() * norm2).matrix();
}

namespace {
double binary_entropy(double p) {
  if (!(p > 0 && p < 1)) return 0;
  return -(p * std::log(p) + (1 - p) * std::log1p(-p));
}
}  // namespace

void information(const MixturePosterior& post, const Eigen::MatrixXd& candidates,
                 Eigen::VectorXd& scores, Workspace& ws) {
  const Eigen::Index n = candidates.rows();
  const int K = static_cast<int>(post.u.size());
  Eigen::ArrayXd pbar = Eigen::ArrayXd::Zero(n), hbar = Eigen::ArrayXd::Zero(n);
  const double c = M_PI / 8;
  for (int k = 0; k < K; ++k) {
    const double w = post.weight[k];
    if (!(w >= kInfoMinWeight)) continue;
    // z^T H_k^-1 z for the pool at once (as criterion: a forward substitution on columns).
    const Eigen::MatrixXd& L = post.H[k].matrixLLT();
    const int J = static_cast<int>(L.rows());
    ws.W = candidates;
    ws.margins.noalias() = ws.W * post.u[k];
    Eigen::ArrayXd v = Eigen::ArrayXd::Zero(n);
    for (int i = 0; i < J; ++i) {
      for (int j = 0; j < i; ++j) ws.W.col(i) -= L(i, j) * ws.W.col(j);
      ws.W.col(i) *= 1.0 / L(i, i);
      v += ws.W.col(i).array().square();
    }
    for (Eigen::Index r = 0; r < n; ++r) {
      const double p = sigmoid(ws.margins[r] / std::sqrt(1 + c * v[r]));
      pbar[r] += w * p;
      hbar[r] += w * binary_entropy(p);
    }
  }
  scores.resize(n);
  for (Eigen::Index r = 0; r < n; ++r) scores[r] = binary_entropy(pbar[r]) - hbar[r];
}

int best_unasked(const Eigen::VectorXd& scores, const std::vector<char>& asked) {
  int best = -1;
  for (Eigen::Index c = 0; c < scores.size(); ++c) {
    if (asked[c] || std::isnan(scores[c])) continue;
    // Strictly greater: the first (lowest) index of equal scores stays.
    if (best < 0 || scores[c] > scores[best]) best = static_cast<int>(c);
  }
  return best;
}

}  // namespace pref::adapt
