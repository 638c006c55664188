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
  // [o K + k] (o = 0 second, 1 tie, 2 first), the answer's entropy at [3 K + k] (what info
  // reads), log P(o | a_k . z) at [(4 + o) K + k] (what an answer adds to the log posterior):
  // each quantity's K values side by side.
  void answer_row(const double* z, double* row) const;
  // The table of all P comparisons (Z: P x J, row-major), unless it would exceed kTableBytes
  // (then adapt computes each pool's rows per user; the values are the same).
  void tabulate(const double* Z, std::uint64_t P);
};

// The posterior's support as `info` uses it: the atoms whose log weight is within kPosteriorCut
// of the largest. The others weigh less than e^-50 of it together (K e^-50 < 1e-19 for any
// K below 10^3), below the rounding of the sums the criterion forms, and leaving them out makes a
// question cost O(n |support|) instead of O(n K): after a few answers the posterior sits on a
// handful of atoms.
inline constexpr double kPosteriorCut = 50;

// `info` with --types: the mutual information between a candidate's answer (3 outcomes) and
// the atom under the posterior,
//   H(sum_k w_k q_k) - sum_k w_k H(q_k),  q_k = P(. | a_k . z) (entropies in nats),
// for each candidate c not asked (asked ones score NaN) from its answer row rows[c]
// (Types::answer_row of K atoms); the sums run over the atoms of `support` (increasing), whose
// weights are w (w[i] of atom support[i]).
void discrete_information(const std::vector<double>& w, const std::vector<int>& support,
                          const std::vector<const double*>& rows, int K,
                          const std::vector<char>& asked, Eigen::VectorXd& scores);

// The same for one user's successive questions: the candidates' terms (the three outcome
// probabilities and the entropy, for every atom of a working set) are copied once into one
// contiguous matrix, 4 rows per candidate and a column per atom, and copied again only when the
// support leaves the working set or shrinks to half of it; a question is then one matrix-vector
// product over it (atoms of the set outside the support weigh 0). A question's cost follows the
// support (126 atoms at the first question on the adaptation population, 28 on average over 40)
// with the rows read contiguously instead of gathered from the answer table.
class InfoTerms {
 public:
  // A new user: its pool's answer rows, K atoms per row.
  void start(const std::vector<const double*>& rows, int K);
  // The posterior's support and its weights (as discrete_information's), then the scores.
  void scores(const std::vector<int>& support, const std::vector<double>& w,
              const std::vector<char>& asked, Eigen::VectorXd& out);

 private:
  void fill(const std::vector<int>& support);
  const std::vector<const double*>* rows_ = nullptr;
  int K_ = 0;
  std::vector<int> atom_;    // column -> atom
  std::vector<int> column_;  // atom -> column, -1 outside the working set
  Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> terms_;
  Eigen::VectorXd weight_, p_;
};

}  // namespace pref::adapt
