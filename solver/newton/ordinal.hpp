#pragma once
// The ordinal ("tie-aware") label model of a comparison answer y in {0, 0.5, 1} at the margin
// m = u . z (issue 13, docs/design.md "Discrete types"):
//   P(tie | m)    = r exp(-m^2 / (2 s^2))
//   P(first | m)  = (1 - P(tie)) sigmoid(a m)
//   P(second | m) = (1 - P(tie)) sigmoid(-a m)
// with r in (0, 1), s > 0, a > 0. Derivatives are taken in the unconstrained parameters
// theta = (logit r, log s, log a). The model needs categorical answers: any other label value
// is bad input (check_categorical).
#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "solver/base/labels.hpp"

namespace pref::ordinal {

struct Params {
  double r = 0.5, s = 1, a = 1;
  // theta = (logit r, log s, log a) and back.
  std::array<double, 3> theta() const;
  static Params from_theta(const std::array<double, 3>& t);
};

// The outcome index of a label: 0 (second preferred, y = 0), 1 (tie, y = 0.5), 2 (first,
// y = 1); -1 for any other value.
int outcome(float y);

// log P(outcome | m).
double log_lik(int outcome, double m, const Params& p);
// P(second), P(tie), P(first) at m.
std::array<double, 3> probs(double m, const Params& p);

// log P(outcome | m) with its first and second derivatives in x = (m, logit r, log s, log a).
struct Derivs {
  double value = 0;
  std::array<double, 4> g{};                 // d / dx_i
  std::array<std::array<double, 4>, 4> h{};  // d^2 / dx_i dx_j (symmetric)
};
Derivs derivs(int outcome, double m, const Params& p);

// The value and the first derivative in m only (the inner loops of the fit).
struct MDerivs {
  double value = 0, dm = 0;
};
MDerivs m_derivs(int outcome, double m, const Params& p);
// The value and the first and second derivatives in m (a new user's Newton steps).
struct MDerivs2 {
  double value = 0, dm = 0, dmm = 0;
};
MDerivs2 m_derivs2(int outcome, double m, const Params& p);

// The Fisher information of the answer about m: sum_y P(y | m) (d log P(y | m) / dm)^2 >= 0,
// the expected negative Hessian in m (the curvature of the fit's Gauss-Newton steps).
double fisher_m(double m, const Params& p);

// The answer distribution's sensitivity to the margin, sum_o (dP(o | m) / dm)^2: the weight of
// a candidate question in the tie-aware Gaussian criterion (solver/adapt/questions.hpp), which
// for the logistic model (two outcomes) is proportional to sigma'(m)^2, the paper's weight.
double sensitivity(double m, const Params& p);

// Maximum likelihood of (r, s, a) by Newton in theta = (logit r, log s, log a): the 3 x 3 Hessian
// of -L with its eigenvalues made positive (|lambda|, at least 1e-10 of the largest), Armijo
// backtracking over 2 kLadder halvings, at most `max_steps` steps; done when no step passes, when
// the gradient is at most `tol` or the gain is at the level of rounding in L. `sums(p, derivs)`
// returns L at p (derivs false: one value), or L, its gradient in theta (3) and the lower
// triangle of its Hessian in theta (6, row by row) (derivs true: ten values); the caller decides
// the order of the sums (so that they do not depend on the rank count). Returns the steps taken.
using ParamSums = std::function<std::vector<double>(const Params& p, bool derivs)>;
int maximize_params(Params& p, double tol, int max_steps, const ParamSums& sums);
// One label's share of ParamSums' ten values (derivs) or of its one value, added into out.
void add_param_sums(int outcome, double m, const Params& p, bool derivs, double* out);

// Throws a collective-ready InputError (order: the row) naming `what` (the file and dataset)
// and the smallest row whose value is not 0, 0.5 or 1. cols.first_row numbers the rows.
void check_categorical(const LabelColumns& cols, const std::string& what);

}  // namespace pref::ordinal
