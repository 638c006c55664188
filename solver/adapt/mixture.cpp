#include "solver/adapt/mixture.hpp"

#include <cmath>
#include <limits>

#include "solver/base/error.hpp"
#include "solver/discrete/kmeans.hpp"

namespace pref::adapt {

Mixture fit_mixture(const double* rows, std::size_t n, int J, int K, std::uint64_t seed) {
  if (n == 0 || K < 1) throw InputError("mixture prior: no users to cluster");
  using RowM = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::Map<const RowM> X(rows, static_cast<Eigen::Index>(n), J);
  const KMeans km = kmeans(rows, n, J, K, seed);
  K = km.K;
  Eigen::Map<const RowM> C(km.centres.data(), K, J);
  const std::vector<int>& assign = km.assign;
  std::vector<std::size_t> count(K);
  std::fill(count.begin(), count.end(), 0);
  std::vector<Eigen::MatrixXd> cov(K, Eigen::MatrixXd::Zero(J, J));
  Eigen::MatrixXd pooled = Eigen::MatrixXd::Zero(J, J);
  for (std::size_t i = 0; i < n; ++i) {
    const Eigen::VectorXd d = (X.row(i) - C.row(assign[i])).transpose();
    cov[assign[i]].noalias() += d * d.transpose();
    ++count[assign[i]];
  }
  for (int k = 0; k < K; ++k) pooled += cov[k];
  pooled /= double(n);
  Mixture mix;
  const Eigen::MatrixXd ridge = kMixtureRidge * Eigen::MatrixXd::Identity(J, J);
  for (int k = 0; k < K; ++k) {
    if (count[k] == 0) continue;
    const Eigen::MatrixXd S = count[k] > std::size_t(3 * J)
                                  ? Eigen::MatrixXd(cov[k] / double(count[k]) + ridge)
                                  : Eigen::MatrixXd(pooled + ridge);
    mix.components.push_back(Penalty::gaussian(C.row(k).transpose(), S, "mixture prior"));
    mix.log_weight.push_back(std::log(double(count[k]) / double(n)));
    Eigen::LLT<Eigen::MatrixXd> L(S);
    mix.log_det_cov.push_back(2 * L.matrixLLT().diagonal().array().log().sum());
  }
  return mix;
}

int mixture_update(const Mixture& mix, const Answers& a, MixturePosterior& post, Workspace& ws) {
  const int K = mix.size(), J = a.J;
  if (post.u.size() != std::size_t(K)) {
    post.u.resize(K);
    for (int k = 0; k < K; ++k) post.u[k] = mix.components[k].mean;
    post.H.resize(K);
    post.log_evidence.resize(K);
    post.weight.resize(K);
  }
  int steps = 0;
  double top = -std::numeric_limits<double>::infinity();
  for (int k = 0; k < K; ++k) {
    const Penalty& p = mix.components[k];
    if (a.idx.empty())
      gradient_hessian(post.u[k], a, p, ws);
    else
      steps += solve(post.u[k], a, p, ws).steps;
    // After solve, ws.row.margins, ws.diff and ws.H are those of the returned u_k.
    double f = 0.5 * ws.diff.dot(p.precision * ws.diff);
    for (std::size_t s = 0; s < a.idx.size(); ++s) f += bce(ws.row.margins[s], a.y[s]);
    post.H[k].compute(ws.H);
    const double log_det_H = 2 * post.H[k].matrixLLT().diagonal().array().log().sum();
    post.log_evidence[k] = mix.log_weight[k] - f - 0.5 * log_det_H - 0.5 * mix.log_det_cov[k];
    top = std::max(top, post.log_evidence[k]);
  }
  double total = 0;
  for (int k = 0; k < K; ++k) total += post.weight[k] = std::exp(post.log_evidence[k] - top);
  post.mean.setZero(J);
  for (int k = 0; k < K; ++k) {
    post.weight[k] /= total;
    post.mean += post.weight[k] * post.u[k];
  }
  post.covariance.setZero(J, J);
  const Eigen::MatrixXd I = Eigen::MatrixXd::Identity(J, J);
  for (int k = 0; k < K; ++k) {
    const Eigen::VectorXd d = post.u[k] - post.mean;
    post.covariance += post.weight[k] * (post.H[k].solve(I) + d * d.transpose());
  }
  post.covariance = 0.5 * (post.covariance + post.covariance.transpose()).eval();
  return steps;
}

}  // namespace pref::adapt
