#pragma once
// The loss of one label and what a pass over labels computes, below both the label kernels
// (solver/kernels*.cpp) and the Newton row solver (solver/newton/newton.hpp): the binary
// cross-entropy of sigmoid(margin) and its change along a step, the line search's ladder of step
// lengths and the LabelPass that names a pass's outputs.
#include <algorithm>
#include <cmath>

namespace pref {

// Numerically safe pieces for any margin.
inline double softplus(double m) {
  return std::max(m, 0.0) + std::log1p(std::exp(-std::abs(m)));
}
inline double sigmoid(double m) {
  if (m >= 0) return 1.0 / (1.0 + std::exp(-m));
  const double e = std::exp(m);
  return e / (1.0 + e);
}
// BCE(sigmoid(m), y) = softplus(m) - y m.
inline double bce(double m, double y) {
  return softplus(m) - y * m;
}

// BCE(sigmoid(m + delta), y) - BCE(sigmoid(m), y), without subtracting two losses:
// softplus(m + delta) - softplus(m) = log1p(sigmoid(m) expm1(delta)) keeps full relative precision
// for small delta.
// p must be sigmoid(m) (passed in because the Hessian pass has it already).
inline double bce_change(double m, double p, double delta, double y) {
  const double sp = std::abs(delta) <= 1.0 ? std::log1p(p * std::expm1(delta))
                                           : softplus(m + delta) - softplus(m);
  return sp - y * delta;
}
inline double bce_change(double m, double delta, double y) {
  return bce_change(m, sigmoid(m), delta, y);
}

// Step lengths tried in order: 1, 1/2, ..., 2^-(kLadder-1); the first that satisfies the Armijo
// condition f(t) - f(0) <= kArmijo * t * g.d is taken, and none means no step. The change
// f(t) - f(0) is summed term by term (bce_change, and mu t (w.d + t |d|^2 / 2) for the
// regularization) rather than computed as the difference of two objectives: near convergence the
// decrease of a Newton step falls below the rounding error of f itself, and the test would
// then decide at random, differently for different summation orders (rank counts, exchange
// patterns), so that their results would part by about sqrt(machine epsilon).
inline constexpr int kLadder = 12;
inline constexpr double kArmijo = 1e-4;
inline double ladder_step(int k) {
  return std::ldexp(1.0, -k);
}

// What one pass over a row's labels computes, at w: any of the gradient sum_k (p_k - y_k) x_k
// (added to g), the lower triangle of the Hessian sum_k p_k (1 - p_k) x_k x_k^T (added to H,
// J x J column-major), the loss (returned), and per label the margin and p = sigmoid(margin).
struct LabelPass {
  double* g = nullptr;
  double* H = nullptr;
  bool loss = false;
  double* margins = nullptr;
  double* probs = nullptr;
};

}  // namespace pref
