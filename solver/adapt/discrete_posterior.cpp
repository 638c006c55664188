#include "solver/adapt/discrete_posterior.hpp"

#include <cmath>

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
double entropy3(double a, double b, double c) {
  double h = 0;
  for (double p : {a, b, c})
    if (p > 0) h -= p * std::log(p);
  return h;
}
}  // namespace

void discrete_information(const Eigen::VectorXd& w, const std::array<Eigen::MatrixXd, 3>& Q,
                          const Eigen::MatrixXd& Hq, Eigen::VectorXd& scores) {
  const Eigen::Index n = Q[0].rows();
  const Eigen::VectorXd p0 = Q[0] * w, p1 = Q[1] * w, p2 = Q[2] * w, hbar = Hq * w;
  scores.resize(n);
  for (Eigen::Index c = 0; c < n; ++c) scores[c] = entropy3(p0[c], p1[c], p2[c]) - hbar[c];
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
      row[(3 + o) * k_atoms + k] = ordinal::log_lik(o, m, lik);
    }
    row[6 * k_atoms + k] = entropy3(q[0], q[1], q[2]);
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
