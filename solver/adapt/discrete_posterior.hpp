#pragma once
#include <Eigen/Core>
#include <array>
#include <cstdint>
#include <vector>

#include "solver/newton/ordinal.hpp"

namespace pref::adapt {

// The discrete prior of `adapt --types` (a types file of `pref types`, solver/discrete/types.hpp):
// the user is one of K atoms a_k with prior probability pi_k (the atoms' shares of the training
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

}  // namespace pref::adapt
