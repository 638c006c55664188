#include "solver/newton/ordinal.hpp"

#include <fmt/core.h>

#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#include <cmath>

#include "solver/base/error.hpp"
#include "solver/newton/loss.hpp"

namespace pref::ordinal {

std::array<double, 3> Params::theta() const {
  return {std::log(r) - std::log1p(-r), std::log(s), std::log(a)};
}

Params Params::from_theta(const std::array<double, 3>& t) {
  return {sigmoid(t[0]), std::exp(t[1]), std::exp(t[2])};
}

int outcome(float y) {
  if (y == 0.0f) return 0;
  if (y == 0.5f) return 1;
  if (y == 1.0f) return 2;
  return -1;
}

namespace {
// log sigmoid(b) without overflow.
double log_sigmoid(double b) {
  return -softplus(-b);
}
}  // namespace

double log_lik(int o, double m, const Params& p) {
  const double k = m * m / (p.s * p.s);
  if (o == 1) return std::log(p.r) - 0.5 * k;
  const double pt = p.r * std::exp(-0.5 * k);
  return std::log1p(-pt) + log_sigmoid(o == 2 ? p.a * m : -p.a * m);
}

std::array<double, 3> probs(double m, const Params& p) {
  const double pt = p.r * std::exp(-0.5 * m * m / (p.s * p.s));
  const double first = sigmoid(p.a * m);
  return {(1 - pt) * (1 - first), pt, (1 - pt) * first};
}

MDerivs m_derivs(int o, double m, const Params& p) {
  const double is2 = 1 / (p.s * p.s), k = m * m * is2;
  if (o == 1) return {std::log(p.r) - 0.5 * k, -m * is2};
  const double pt = p.r * std::exp(-0.5 * k);
  const double t = o == 2 ? 1.0 : -1.0, b = t * p.a * m;
  return {std::log1p(-pt) + log_sigmoid(b), pt * m * is2 / (1 - pt) + sigmoid(-b) * t * p.a};
}

MDerivs2 m_derivs2(int o, double m, const Params& p) {
  const double is2 = 1 / (p.s * p.s), k = m * m * is2;
  if (o == 1) return {std::log(p.r) - 0.5 * k, -m * is2, -is2};
  // log(1 - pt) + log sigmoid(b), pt = r exp(-k / 2), b = t a m.
  const double pt = p.r * std::exp(-0.5 * k), q = 1 - pt;
  const double d1 = -pt * m * is2, d2 = pt * (k * is2 - is2);  // pt', pt''
  const double t = o == 2 ? 1.0 : -1.0, b = t * p.a * m;
  const double sb = sigmoid(b), sn = sigmoid(-b);
  return {std::log1p(-pt) + log_sigmoid(b), -d1 / q + sn * t * p.a,
          -d2 / q - d1 * d1 / (q * q) - sb * sn * p.a * p.a};
}

Derivs derivs(int o, double m, const Params& p) {
  Derivs d;
  const double r = p.r, is2 = 1 / (p.s * p.s), k = m * m * is2;
  if (o == 1) {
    d.value = std::log(r) - 0.5 * k;
    d.g = {-m * is2, 1 - r, k, 0};
    d.h[0][0] = -is2;
    d.h[0][2] = d.h[2][0] = 2 * m * is2;
    d.h[1][1] = -r * (1 - r);
    d.h[2][2] = -2 * k;
    return d;
  }
  const double pt = r * std::exp(-0.5 * k), q = 1 - pt;
  // Derivatives of pt in x = (m, logit r, log s, log a).
  const std::array<double, 4> P = {-pt * m * is2, pt * (1 - r), pt * k, 0};
  std::array<std::array<double, 4>, 4> PP{};
  PP[0][0] = pt * (m * m * is2 * is2 - is2);
  PP[0][1] = PP[1][0] = -pt * (1 - r) * m * is2;
  PP[0][2] = PP[2][0] = pt * m * is2 * (2 - k);
  PP[1][1] = pt * (1 - r) * (1 - 2 * r);
  PP[1][2] = PP[2][1] = pt * k * (1 - r);
  PP[2][2] = pt * k * (k - 2);
  // log(1 - pt): A_i = -P_i / q, A_ij = -P_ij / q - P_i P_j / q^2.
  for (int i = 0; i < 4; ++i) {
    d.g[i] = -P[i] / q;
    for (int j = 0; j < 4; ++j) d.h[i][j] = -PP[i][j] / q - P[i] * P[j] / (q * q);
  }
  // log sigmoid(b), b = t a m: in m and log a.
  const double t = o == 2 ? 1.0 : -1.0, b = t * p.a * m;
  const double sb = sigmoid(b), sn = sigmoid(-b), w = sb * sn;
  d.value = std::log1p(-pt) + log_sigmoid(b);
  d.g[0] += sn * t * p.a;
  d.g[3] += sn * b;
  d.h[0][0] += -w * p.a * p.a;
  const double h03 = -w * b * t * p.a + sn * t * p.a;
  d.h[0][3] += h03;
  d.h[3][0] += h03;
  d.h[3][3] += -w * b * b + sn * b;
  return d;
}

double fisher_m(double m, const Params& p) {
  const double is2 = 1 / (p.s * p.s);
  const double pt = p.r * std::exp(-0.5 * m * m * is2), q = 1 - pt;
  const double first = sigmoid(p.a * m), second = sigmoid(-p.a * m);
  const double dt = -m * is2, base = pt * m * is2 / q;
  const double d2 = base + p.a * second, d0 = base - p.a * first;
  return pt * dt * dt + q * first * d2 * d2 + q * second * d0 * d0;
}

double sensitivity(double m, const Params& p) {
  const double is2 = 1 / (p.s * p.s);
  const double pt = p.r * std::exp(-0.5 * m * m * is2), dpt = -pt * m * is2;
  const double first = sigmoid(p.a * m), second = sigmoid(-p.a * m);
  const double ds = p.a * first * second;  // d sigmoid(a m) / dm
  const double d_first = -dpt * first + (1 - pt) * ds, d_second = -dpt * second - (1 - pt) * ds;
  return dpt * dpt + d_first * d_first + d_second * d_second;
}

void add_param_sums(int o, double m, const Params& p, bool derivs, double* out) {
  if (!derivs) {
    out[0] += log_lik(o, m, p);
    return;
  }
  const Derivs d = ordinal::derivs(o, m, p);
  out[0] += d.value;
  for (int i = 0; i < 3; ++i) out[1 + i] += d.g[1 + i];
  for (int i = 0, c = 0; i < 3; ++i)
    for (int j = 0; j <= i; ++j, ++c) out[4 + c] += d.h[1 + i][1 + j];
}

namespace {
constexpr int kParamHalvings = 24;  // step lengths 1, 1/2, ..., 2^-23
constexpr double kParamArmijo = 1e-4;
}  // namespace

int maximize_params(Params& params, double tol, int max_steps, const ParamSums& sums) {
  int it = 0;
  for (; it < max_steps; ++it) {
    const Params p = params;
    const std::vector<double> s = sums(p, true);
    Eigen::Vector3d g(s[1], s[2], s[3]);
    if (!(g.cwiseAbs().maxCoeff() > tol)) break;
    Eigen::Matrix3d H;
    for (int i = 0, c = 0; i < 3; ++i)
      for (int j = 0; j <= i; ++j, ++c) H(i, j) = H(j, i) = -s[4 + c];
    Eigen::SelfAdjointEigenSolver<Eigen::Matrix3d> es(H);
    Eigen::Vector3d ev = es.eigenvalues().cwiseAbs();
    const double floor = std::max(1e-10 * ev.maxCoeff(), 1e-300);
    for (int i = 0; i < 3; ++i) ev[i] = std::max(ev[i], floor);
    const Eigen::Vector3d d =
        es.eigenvectors() * (es.eigenvectors().transpose() * g).cwiseQuotient(ev);
    const double slope = g.dot(d);
    const std::array<double, 3> th = p.theta();
    bool moved = false;
    double gain = 0;
    for (int j = 0; j < kParamHalvings && !moved; ++j) {
      const double t = std::ldexp(1.0, -j);
      const Params q = Params::from_theta({th[0] + t * d[0], th[1] + t * d[1], th[2] + t * d[2]});
      if (!(q.r > 0 && q.r < 1 && q.s > 0 && q.a > 0 && std::isfinite(q.s) && std::isfinite(q.a)))
        continue;
      const double f = sums(q, false)[0];
      if (f >= s[0] + kParamArmijo * t * slope) {
        params = q;
        moved = true;
        gain = f - s[0];
      }
    }
    // Done when no step passes, or when the gain is at the level of rounding in L.
    if (!moved || gain <= 1e-12 * std::abs(s[0])) break;
  }
  return it;
}

void check_categorical(const LabelColumns& cols, const std::string& what) {
  for (std::size_t i = 0; i < cols.size(); ++i)
    if (outcome(cols.value[i]) < 0)
      throw InputError(fmt::format("{}: row {}: value {} is not 0, 0.5 or 1 (the ordinal label "
                                   "model of pref types needs categorical answers)",
                                   what, cols.first_row + i, cols.value[i]),
                       cols.first_row + i);
}

}  // namespace pref::ordinal
