#include "solver/fit/squarem.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "solver/base/error.hpp"
#include "solver/fit/gauge.hpp"

namespace pref {

namespace {
constexpr double kStepFactor = 4;  // Du and Varadhan's mstep

// The numbers a cycle extrapolates, part by part: U, Z, the prior's mean and covariance.
std::array<std::vector<double>*, 4> parts(Snapshot& s) {
  return {&s.factors.U, &s.factors.Z, &s.prior->mean, &s.prior->covariance};
}
std::array<const std::vector<double>*, 4> parts(const Snapshot& s) {
  return {&s.factors.U, &s.factors.Z, &s.prior->mean, &s.prior->covariance};
}

// The prior's free numbers as one vector: mean, then covariance.
std::vector<double> prior_vector(const PopulationPrior& p) {
  std::vector<double> v = p.mean;
  v.insert(v.end(), p.covariance.begin(), p.covariance.end());
  return v;
}
}  // namespace

Snapshot Squarem::copy_current() const {
  Snapshot s;
  s.factors = ctx_.cur.factors;
  s.prior = ctx_.cur.prior;
  return s;
}

double Squarem::dot(const Snapshot& a, const Snapshot& b) const {
  double local = 0;
  for (std::size_t k = 0; k < a.factors.U.size(); ++k) local += a.factors.U[k] * b.factors.U[k];
  for (std::size_t k = 0; k < a.factors.Z.size(); ++k) local += a.factors.Z[k] * b.factors.Z[k];
  const double sum = mpi::allreduce_sum(ctx_.comm, local);
  const std::vector<double> pa = prior_vector(*a.prior), pb = prior_vector(*b.prior);
  double replicated = 0;
  for (std::size_t k = 0; k < pa.size(); ++k) replicated += pa[k] * pb[k];
  return sum + replicated;
}

bool Squarem::set_current(FitState& st, Snapshot&& s) {
  bool ok = true;
  try {
    s.prior->set_covariance(s.prior->covariance);
  } catch (const Error&) {
    ok = false;
  }
  if (mpi::allreduce_sum(ctx_.comm, std::uint64_t(ok ? 0 : 1)) != 0) return false;
  st.current.factors = std::move(s.factors);
  st.current.prior = std::move(s.prior);
  ctx_.fetch_z();
  ctx_.ughost_fresh = false;
  return true;
}

double Squarem::before_sweep(FitState& st, std::string& note) {
  SquaremState& sq = st.squarem;
  note.clear();
  if (sq.phase == 0) {
    sq.saved.clear();
    sq.saved.push_back(copy_current());  // x0
    return 0;
  }
  if (sq.phase == 1) {
    sq.saved.push_back(copy_current());  // x1
    return 0;
  }
  // Phase 2: at x2. x1 and a copy of x2 are turned to x0's frame (align_to: without it, r and
  // v would hold the turn plain sweeps add each sweep, a change that does not shrink, and the
  // jump would extrapolate that turn instead of the convergence). Then r = x1 - x0 and
  // v = x2 - 2 x1 + x0, formed in the saved states' buffers.
  Snapshot& r = sq.saved[1];
  Snapshot v = copy_current();
  const Snapshot& x0 = sq.saved[0];
  align_to(ctx_.comm, ctx_.J, r, x0);
  align_to(ctx_.comm, ctx_.J, v, x0);
  auto combine = [](std::vector<double>& x2v, std::vector<double>& x1r,
                    const std::vector<double>& x0v) {
    for (std::size_t k = 0; k < x2v.size(); ++k) {
      x2v[k] = x2v[k] - 2 * x1r[k] + x0v[k];
      x1r[k] = x1r[k] - x0v[k];
    }
  };
  for (int k = 0; k < 4; ++k) combine(*parts(v)[k], *parts(r)[k], *parts(x0)[k]);
  const double rr = dot(r, r), vv = dot(v, v);
  // The safeguard's measure (after_sweep): where the cycle's plain sweeps raised the objective
  // (x2's above x1's), the objective is not what they lower, and the stabilizing sweep is judged
  // by its fixed-point residual instead, against |x2 - x1| = |r + v|.
  const std::size_t nh = st.history.size();
  const bool rising = nh >= 2 && st.history[nh - 1].objective > st.history[nh - 2].objective;
  const double residual1 = rising ? std::sqrt(std::max(0.0, rr + 2 * dot(r, v) + vv)) : 0.0;
  double alpha = vv > 0 ? -std::sqrt(rr / vv) : -1.0;
  if (!std::isfinite(alpha)) alpha = -1.0;
  alpha = std::clamp(alpha, -sq.step_max, -1.0);
  const bool reached = -alpha >= sq.step_max;
  if (alpha == -1.0) {
    // x' = x2: no jump; the next cycle starts here.
    if (reached) sq.step_max *= kStepFactor;
    sq.phase = 0;
    sq.saved.clear();
    sq.saved.push_back(copy_current());
    note = fmt::format("squarem: step -1 (x2 itself), step limit now {:g}", sq.step_max);
    return 0;
  }
  // x' = x0 - 2 alpha r + alpha^2 v, into x0's buffers.
  Snapshot next = std::move(sq.saved[0]);
  auto jump = [alpha](std::vector<double>& x, const std::vector<double>& rv,
                      const std::vector<double>& vv_) {
    for (std::size_t k = 0; k < x.size(); ++k)
      x[k] = x[k] - 2 * alpha * rv[k] + alpha * alpha * vv_[k];
  };
  for (int k = 0; k < 4; ++k) jump(*parts(next)[k], *parts(r)[k], *parts(v)[k]);
  next.prior->spread = ctx_.cur.prior->spread;  // recomputed by the next E-step
  sq.saved.clear();
  Snapshot x2 = copy_current();
  if (!set_current(st, std::move(next))) {
    sq.step_max = std::max(1.0, sq.step_max / kStepFactor);
    sq.phase = 0;
    sq.saved.push_back(std::move(x2));
    note = fmt::format(
        "squarem: step {:.3g} gives a prior covariance that is not positive definite; a plain "
        "sweep from x2 (step limit now {:g})",
        alpha, sq.step_max);
    return 0;
  }
  if (reached) sq.step_max *= kStepFactor;
  sq.saved.push_back(std::move(x2));
  if (rising) sq.saved.push_back(copy_current());  // x', whose residual F(x') - x' decides
  sq.objective2 = st.history.back().objective;
  sq.residual1 = residual1;
  sq.phase = 3;
  note = fmt::format("squarem: step {:.3g} (limit {:g})", alpha, sq.step_max);
  return alpha;
}

bool Squarem::after_sweep(FitState& st, double objective, std::string& note) {
  SquaremState& sq = st.squarem;
  note.clear();
  if (sq.phase < 2) {
    ++sq.phase;
    return false;
  }
  // Phase 3: the stabilizing sweep's result x3 = F(x') against x2: by the objective, or, where
  // the cycle's plain sweeps raised it (x' saved beside x2), by the residual |x3 - x'| in x''s
  // frame against |x2 - x1|.
  const bool by_residual = sq.saved.size() == 2;
  double residual = 0;
  if (by_residual) {
    Snapshot d = copy_current();
    align_to(ctx_.comm, ctx_.J, d, sq.saved[1]);
    const Snapshot& xj = sq.saved[1];
    auto minus = [](std::vector<double>& a, const std::vector<double>& b) {
      for (std::size_t k = 0; k < a.size(); ++k) a[k] -= b[k];
    };
    for (int k = 0; k < 4; ++k) minus(*parts(d)[k], *parts(xj)[k]);
    residual = std::sqrt(dot(d, d));
  }
  const bool keep = std::isfinite(objective) &&
                    (by_residual ? residual <= sq.residual1 : objective <= sq.objective2);
  if (keep) {
    sq.phase = 0;
    sq.saved.clear();
    return false;
  }
  note = by_residual
             ? fmt::format(
                   "squarem: the extrapolated cycle's residual |F(x') - x'| = {:.4e} is above "
                   "the plain sweeps' |x2 - x1| = {:.4e} (which raised the objective): back to "
                   "them",
                   residual, sq.residual1)
             : fmt::format(
                   "squarem: the extrapolated cycle ends at objective {:.8e}, above the plain "
                   "sweeps' {:.8e}: back to them",
                   objective, sq.objective2);
  Snapshot x2 = std::move(sq.saved[0]);
  sq.saved.clear();
  st.current.factors = std::move(x2.factors);
  st.current.prior = std::move(x2.prior);
  ctx_.fetch_z();
  ctx_.ughost_fresh = false;
  ctx_.comparisons_measured = false;
  sq.step_max = std::max(1.0, sq.step_max / kStepFactor);
  sq.phase = 0;
  return true;
}

}  // namespace pref
