#include "solver/adapt/discrete_posterior.hpp"

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

void discrete_information(const std::vector<double>& w, const std::vector<int>& support,
                          const std::vector<const double*>& rows, const std::vector<char>& asked,
                          Eigen::VectorXd& scores) {
  const auto n = static_cast<Eigen::Index>(rows.size());
  const std::size_t S = support.size();
  thread_local Eigen::ArrayXd p0, p1, p2, hbar;
  p0.setConstant(n, 1.0);
  p1.setZero(n);
  p2.setZero(n);
  hbar.setZero(n);
  for (Eigen::Index c = 0; c < n; ++c) {
    if (asked[c]) continue;
    double a0 = 0, a1 = 0, a2 = 0, h = 0;
    for (std::size_t i = 0; i < S; ++i) {
      const double* e = rows[c] + 4 * std::size_t(support[i]);
      const double wi = w[i];
      a0 += wi * e[0];
      a1 += wi * e[1];
      a2 += wi * e[2];
      h += wi * e[3];
    }
    p0[c] = a0, p1[c] = a1, p2[c] = a2, hbar[c] = h;
  }
  // p log p, 0 at p = 0, over the pool at once (Eigen's vectorized log).
  constexpr double kTiny = 1e-300;
  auto xlogx = [&](const Eigen::ArrayXd& p) { return p * p.max(kTiny).log(); };
  scores = (-(xlogx(p0) + xlogx(p1) + xlogx(p2)) - hbar).matrix();
  for (Eigen::Index c = 0; c < n; ++c)
    if (asked[c]) scores[c] = std::numeric_limits<double>::quiet_NaN();
}

void Types::answer_row(const double* z, double* row) const {
  const int k_atoms = K();
  for (int k = 0; k < k_atoms; ++k) {
    const double* a = atoms.data() + std::size_t(k) * J;
    double m = 0;
    for (int j = 0; j < J; ++j) m += a[j] * z[j];
    const std::array<double, 3> q = ordinal::probs(m, lik);
    for (int o = 0; o < 3; ++o) {
      row[4 * k + o] = q[o];
      row[(4 + o) * k_atoms + k] = ordinal::log_lik(o, m, lik);
    }
    row[4 * k + 3] = entropy3(q[0], q[1], q[2]);
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
