#include "solver/newton/ordinal.hpp"

#include <fmt/core.h>

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

void check_categorical(const LabelColumns& cols, const std::string& what) {
  for (std::size_t i = 0; i < cols.size(); ++i)
    if (outcome(cols.value[i]) < 0)
      throw InputError(fmt::format("{}: row {}: value {} is not 0, 0.5 or 1 (the ordinal label "
                                   "model of pref types needs categorical answers)",
                                   what, cols.first_row + i, cols.value[i]),
                       cols.first_row + i);
}

}  // namespace pref::ordinal
