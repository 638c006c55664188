#include "solver/adapt/discrete_posterior.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "solver/base/error.hpp"

namespace pref::adapt {

Types Types::from_file(const std::vector<double>& atoms, const std::vector<double>& weights, int J,
                       const ordinal::Params& lik) {
  Types t;
  t.J = J;
  t.lik = lik;
  double total = 0;
  for (double w : weights) total += w;
  for (std::size_t k = 0; k < weights.size(); ++k) {
    if (!(weights[k] > 0)) continue;
    t.atoms.insert(t.atoms.end(), atoms.begin() + k * J, atoms.begin() + (k + 1) * J);
    t.log_prior.push_back(std::log(weights[k] / total));
  }
  if (t.log_prior.empty()) throw InputError("the types file has no atom of positive weight");
  return t;
}

namespace {
double entropy3(double a, double b, double c) {  // the answer's entropy in the table
  double h = 0;
  for (double p : {a, b, c})
    if (p > 0) h -= p * std::log(p);
  return h;
}
}  // namespace

namespace {
// H(p0, p1, p2) - hbar for every candidate (p: p0, p1, p2 and hbar of the n candidates one after
// the other); asked candidates score NaN.
void information_scores(const Eigen::VectorXd& p, const std::vector<char>& asked,
                        Eigen::VectorXd& scores) {
  const auto n = static_cast<Eigen::Index>(asked.size());
  // p log p, 0 at p = 0, over the pool at once (Eigen's vectorized log).
  constexpr double kTiny = 1e-300;
  auto xlogx = [&](int o) {
    const auto q = p.segment(o * n, n).array();
    return q * q.max(kTiny).log();
  };
  scores = (-(xlogx(0) + xlogx(1) + xlogx(2)) - p.segment(3 * n, n).array()).matrix();
  for (Eigen::Index c = 0; c < n; ++c)
    if (asked[c]) scores[c] = std::numeric_limits<double>::quiet_NaN();
}
}  // namespace

void InfoTerms::start(const std::vector<const double*>& rows, int K) {
  rows_ = &rows;
  K_ = K;
  atom_.clear();
  column_.assign(K, -1);
}

void InfoTerms::fill(const std::vector<int>& support) {
  const std::vector<const double*>& rows = *rows_;
  const auto n = static_cast<Eigen::Index>(rows.size()),
             W = static_cast<Eigen::Index>(support.size());
  for (int k : atom_) column_[k] = -1;
  atom_ = support;
  for (Eigen::Index i = 0; i < W; ++i) column_[atom_[i]] = static_cast<int>(i);
  // Row o n + c: term o (P(second), P(tie), P(first), the entropy) of candidate c.
  terms_.resize(4 * n, W);
  const bool all = W == K_;  // the support is every atom, in order
  for (int o = 0; o < 4; ++o)
    for (Eigen::Index c = 0; c < n; ++c) {
      const double* from = rows[c] + std::size_t(o) * K_;
      double* to = &terms_(o * n + c, 0);
      if (all)
        std::copy(from, from + W, to);
      else
        for (Eigen::Index i = 0; i < W; ++i) to[i] = from[atom_[i]];
    }
}

void InfoTerms::scores(const std::vector<int>& support, const std::vector<double>& w,
                       const std::vector<char>& asked, Eigen::VectorXd& out) {
  bool covered = 2 * support.size() > atom_.size();
  for (int k : support) covered = covered && column_[k] >= 0;
  if (!covered) fill(support);
  weight_.setZero(static_cast<Eigen::Index>(atom_.size()));
  for (std::size_t i = 0; i < support.size(); ++i) weight_[column_[support[i]]] = w[i];
  p_.noalias() = terms_ * weight_;
  information_scores(p_, asked, out);
}

void discrete_information(const std::vector<double>& w, const std::vector<int>& support,
                          const std::vector<const double*>& rows, int K,
                          const std::vector<char>& asked, Eigen::VectorXd& scores) {
  InfoTerms t;
  t.start(rows, K);
  t.scores(support, w, asked, scores);
}

void Types::answer_row(const double* z, double* row) const {
  const int k_atoms = K();
  for (int k = 0; k < k_atoms; ++k) {
    const double* a = atoms.data() + std::size_t(k) * J;
    double m = 0;
    for (int j = 0; j < J; ++j) m += a[j] * z[j];
    const std::array<double, 3> q = ordinal::probs(m, lik);
    for (int o = 0; o < 3; ++o) {
      row[o * k_atoms + k] = q[o];
      row[(4 + o) * k_atoms + k] = ordinal::log_lik(o, m, lik);
    }
    row[3 * k_atoms + k] = entropy3(q[0], q[1], q[2]);
  }
}

void Types::tabulate(const double* Z, std::uint64_t P) {
  const std::uint64_t width = std::uint64_t(kTableRow) * std::uint64_t(K());
  table.clear();
  if (P * width * sizeof(double) > kTableBytes) return;
  table.resize(P * width);
  for (std::uint64_t p = 0; p < P; ++p) answer_row(Z + p * J, table.data() + p * width);
}

}  // namespace pref::adapt
