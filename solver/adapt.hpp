#pragma once
// New users from a few answers (issue 13, docs/design.md "Adapting new users"): with the
// comparison factors Z fixed, a new user's weights u are the minimizer of
//   f(u) = sum_k BCE(sigmoid(z_{c_k} . u), y_k) + 1/2 (u - m)^T P (u - m)
// over the answers given so far, where the penalty (m, P) is either the population prior
// N(m, Sigma) with P = Sigma^-1 (MAP) or the paper's 0.001 I ridge around 0 (its MLE made
// well defined). f is solved exactly by Newton with the row solver's line-search ladder.
//
// Questions come from the user's pool only. After t answers with estimate u_t,
//   V_t = P + sum_{s asked} sigma'(u_t . z_s) z_s z_s^T
// is the Hessian of f at u_t, and the next question is the unasked pool comparison maximizing
//   sigma'(u_t . z)^2 z^T V_t^-1 z
// (the paper's criterion with P = 0.001 I and the MLE for `active`; with the prior's precision
// and the MAP for `bayes`). Ties go to the lowest pool index.
//
// Everything about one user is a pure function of the user's pool, Z, the penalty and the seed,
// so results do not depend on the rank count.
#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "solver/newton.hpp"
#include "solver/ordinal.hpp"

namespace pref::adapt {

enum class Select { kRandom, kActive, kBayes, kInfo };
const char* select_name(Select s);

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

// scores[c] = sigma'(u . x_c)^2 x_c^T V^-1 x_c for the rows x_c of `candidates`, V = L L^T;
// W is scratch.
void criterion(const Eigen::VectorXd& u, const Eigen::LLT<Eigen::MatrixXd>& V,
               const Eigen::MatrixXd& candidates, Eigen::VectorXd& scores, Eigen::MatrixXd& W);

// The index of the largest score among candidates not yet asked; the lowest index among equal
// scores; -1 when all are asked. NaN scores never win.
int best_unasked(const Eigen::VectorXd& scores, const std::vector<char>& asked);

// A mixture-of-Gaussians prior sum_k pi_k N(m_k, Sigma_k) (`--prior mixture`): the
// population's fitted users clustered by k-means (k-means++ seeding from the counter-based
// stream kMixtureStream, at most kMixtureIterations Lloyd iterations, ties to the lowest
// centre), each cluster's covariance its members' (maximum likelihood, divided by the count)
// plus kMixtureRidge I, or the pooled within-cluster covariance plus the ridge when the cluster
// has at most 3 J members; pi_k the cluster's share. Empty clusters are dropped.
// k-means of n rows (n x J, row-major) into min(K, n) centres: k-means++ seeding from the
// counter-based stream kMixtureStream, at most kMixtureIterations Lloyd iterations, ties to the
// lowest centre; a centre left without members keeps its place. assign[i] is the centre of
// row i after the last assignment step. Pure function of its arguments (the same on every
// rank). The one k-means of pref: `--prior mixture` and `pref types` (solver/types.hpp).
struct KMeans {
  int K = 0;
  std::vector<double> centres;  // K x J, row-major
  std::vector<int> assign;      // n
};
KMeans kmeans(const double* rows, std::size_t n, int J, int K, std::uint64_t seed);

struct Mixture {
  std::vector<Penalty> components;
  std::vector<double> log_weight;   // log pi_k
  std::vector<double> log_det_cov;  // log det Sigma_k
  int size() const { return static_cast<int>(components.size()); }
};
inline constexpr std::uint32_t kMixtureStream = 102;
inline constexpr int kMixtureIterations = 50;
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

// `info`: the mutual information between a candidate's answer and the prior component,
//   H(sum_k w_k p_k) - sum_k w_k H(p_k),  p_k = sigmoid(u_k.z / sqrt(1 + pi/8 z^T H_k^-1 z))
// (H the binary entropy in nats; p_k the probit approximation of the component's predictive
// probability). Components with w_k < kInfoMinWeight are left out of both sums.
inline constexpr double kInfoMinWeight = 1e-12;
void information(const MixturePosterior& post, const Eigen::MatrixXd& candidates,
                 Eigen::VectorXd& scores, Workspace& ws);

// The discrete prior of `adapt --types` (a types file of `pref types`, solver/types.hpp): the
// user is one of K atoms a_k with prior probability pi_k (the atoms' shares of the training
// users; atoms without members are left out), and answers follow the ordinal label model. The
// posterior over the atoms is exact: w_k proportional to pi_k prod_s P(y_s | a_k . z_s). The
// reported weights are its mean sum_k w_k a_k, the covariance its covariance
// sum_k w_k (a_k - mean)(a_k - mean)^T (singular when the posterior sits on fewer than J + 1
// atoms).
struct Types {
  int J = 0;
  std::vector<double> atoms;      // K x J, row-major
  std::vector<double> log_prior;  // K: log pi_k
  ordinal::Params lik;
  // The answer model of every comparison against every atom, kTableRow K doubles per
  // comparison (answer_row), when tabulate made it: new users' pools share comparisons, so each
  // is computed once per rank instead of once per user that can be asked it.
  std::vector<double> table;
  static constexpr int kTableRow = 7;
  static constexpr std::uint64_t kTableBytes = std::uint64_t{1} << 29;  // 512 MiB per rank
  int K() const { return static_cast<int>(log_prior.size()); }
  // From a types file's atoms and weights (those of weight 0 dropped); throws InputError when
  // none is left.
  static Types from_file(const std::vector<double>& atoms, const std::vector<double>& weights,
                         int J, const ordinal::Params& lik);
  // Comparison z against the K atoms, into row (kTableRow K doubles): P(outcome o | a_k . z) at
  // [o K + k], its log at [(3 + o) K + k] (o = 0 second, 1 tie, 2 first), the answer's entropy
  // at [6 K + k].
  void answer_row(const double* z, double* row) const;
  // The table of all P comparisons (Z: P x J, row-major), unless it would exceed kTableBytes
  // (then adapt computes each pool's rows per user; the values are the same).
  void tabulate(const double* Z, std::uint64_t P);
};

// `info` with --types: the mutual information between a candidate's answer (3 outcomes) and
// the atom under the posterior w,
//   H(sum_k w_k q_k) - sum_k w_k H(q_k),  q_k = P(. | a_k . z) (Q[o](c, k), entropies in nats),
// with Hq(c, k) = H(q_k) of candidate c precomputed.
void discrete_information(const Eigen::VectorXd& w, const std::array<Eigen::MatrixXd, 3>& Q,
                          const Eigen::MatrixXd& Hq, Eigen::VectorXd& scores);

struct UserPool {
  std::span<const std::uint32_t> comparison;  // askable part, in pool order
  std::span<const float> value;
  std::span<const std::uint32_t> test_comparison;  // held out, never asked
  std::span<const float> test_value;
};

struct Plan {
  Select select = Select::kActive;
  int answers = 10;
  std::vector<int> budgets;  // increasing, each in 1..answers: held-out AUC recorded there
  std::uint64_t seed = 1;
  const Penalty* estimate = nullptr;   // the reported estimator
  const Penalty* selection = nullptr;  // the criterion's (active: ridge, bayes: prior)
  // When set, the reported estimator is the mixture posterior's mean (estimate is unused);
  // `info` requires it.
  const Mixture* mixture = nullptr;
  // When set (adapt --types), the estimator is the exact discrete posterior over its atoms and
  // the selection random or info (discrete_information); estimate, selection and mixture are
  // unused.
  const Types* types = nullptr;
};

struct UserResult {
  Eigen::VectorXd u;
  Eigen::MatrixXd covariance;  // inverse Hessian of the estimator's f at u (mixture: the
                               // posterior's covariance, MixturePosterior)
  std::vector<std::uint32_t> asked;
  std::vector<float> answers;
  std::vector<double> budget_auc;  // per budget; NaN when the test part lacks a class
  int newton_steps = 0;
};

// Runs one user's question loop. user is the global id (it keys the random stream).
void adapt_user(std::uint64_t user, const double* Z, int J, const UserPool& pool, const Plan& plan,
                Workspace& ws, UserResult& out);

// The Philox stream of the random question choices (and of `active`'s first question):
// draw t of user i picks uniformly among the unasked pool entries, Rng(seed, kAdaptStream, i).
inline constexpr std::uint32_t kAdaptStream = 101;

}  // namespace pref::adapt
