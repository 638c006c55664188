#pragma once
// A mixture-of-Gaussians prior sum_k pi_k N(m_k, Sigma_k) (`--prior mixture`): the
// population's fitted users clustered by k-means (solver/discrete/kmeans.hpp), each cluster's
// covariance its members' (maximum likelihood, divided by the count) plus kMixtureRidge I, or
// the pooled within-cluster covariance plus the ridge when the cluster has at most 3 J members;
// pi_k the cluster's share. Empty clusters are dropped.
#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <cstdint>
#include <vector>

#include "solver/adapt/new_user.hpp"

namespace pref::adapt {

struct Mixture {
  std::vector<Penalty> components;
  std::vector<double> log_weight;   // log pi_k
  std::vector<double> log_det_cov;  // log det Sigma_k
  int size() const { return static_cast<int>(components.size()); }
};
inline constexpr double kMixtureRidge = 1e-3;
// rows: n x J, row-major. Pure function of its arguments (the same on every rank).
Mixture fit_mixture(const double* rows, std::size_t n, int J, int K, std::uint64_t seed);

// The Laplace posterior under a mixture prior: per component k its MAP u_k (f with the
// component's penalty), the Hessian H_k there and the log evidence
//   log pi_k - f_k(u_k) - 1/2 log det H_k - 1/2 log det Sigma_k,
// the component weights w = softmax(log evidence), and the posterior's moments
//   mean = sum_k w_k u_k,  covariance = sum_k w_k (H_k^-1 + u_k u_k^T) - mean mean^T.
struct MixturePosterior {
  std::vector<Eigen::VectorXd> u;
  std::vector<Eigen::LLT<Eigen::MatrixXd>> H;
  std::vector<double> log_evidence, weight;
  Eigen::VectorXd mean;
  Eigen::MatrixXd covariance;
};
// Solves every component (warm-started from post.u; from the component means when post is
// empty) and updates weights and moments. Returns the Newton steps taken.
int mixture_update(const Mixture& mix, const Answers& a, MixturePosterior& post, Workspace& ws);

}  // namespace pref::adapt
