#include "solver/fit/stopping.hpp"

#include <fmt/core.h>

#include <cmath>

namespace pref {

StoppingRule::StoppingRule(const FitConfig& cfg, std::uint64_t validation_labels)
    : cfg_(cfg), validation_(validation_labels >= kMinMonitorLabels) {}

std::string StoppingRule::describe() const {
  if (cfg_.stop == StopRule::kObjective)
    return fmt::format("the objective's relative change below {:g} (--stop objective)", cfg_.tol);
  return fmt::format(
      "the {} log-loss {} by more than {:g} (relative) for {} sweeps (--stop predictions{})",
      validation_ ? (cfg_.monitor_calibrated ? "calibrated validation" : "validation") : "training",
      validation_ ? "not improving" : "not changing", cfg_.stop_tol, cfg_.patience,
      validation_ ? "; the best state is kept"
                  : fmt::format("; no validation split of at least {} labels", kMinMonitorLabels));
}

double StoppingRule::monitored(const SweepRecord& r) const {
  return !validation_              ? r.train_logloss
         : cfg_.monitor_calibrated ? r.calibrated_logloss
         : r.validation            ? r.validation->logloss
                                   : r.train_logloss;
}

StopDecision StoppingRule::observe(const SweepRecord& r, StopState& st,
                                   const ExtrapolationState* ex,
                                   const std::vector<SweepRecord>* history) const {
  StopDecision d;
  if (cfg_.stop == StopRule::kObjective) {
    if (r.sweep == 0 || r.extrapolation != 0) return d;
    bool converged = r.rel_change < cfg_.tol;
    if (ex) converged = ex->calm_run >= 2;
    if (converged) {
      d.stop = true;
      d.reason = ex ? fmt::format(
                          "the objective changed by less than {:g} (relative) in two "
                          "sweeps in a row",
                          cfg_.tol)
                    : fmt::format("the objective changed by {:.2e} (relative), below --tol {:g}",
                                  r.rel_change, cfg_.tol);
    }
    return d;
  }
  const double loss = monitored(r);
  if (r.sweep == 0 || !std::isfinite(loss)) return d;
  // A sweep from SQUAREM's extrapolated state is the accelerator's trial: kept or undone by its
  // safeguard, it is neither a candidate nor an improvement (it still counts as a sweep).
  const bool trial = r.extrapolation != 0;
  if (!trial && validation_) {
    if (loss < st.best_loss) {
      st.best_loss = loss;
      st.best_sweep = r.sweep;
      d.take_copy = true;
    }
    if (st.reference_sweep < 0 ||
        loss < st.reference_loss - cfg_.stop_tol * std::abs(st.reference_loss)) {
      st.reference_loss = loss;
      st.reference_sweep = r.sweep;
    }
  } else if (!trial &&
             (st.reference_sweep < 0 ||
              std::abs(loss - st.reference_loss) > cfg_.stop_tol * std::abs(st.reference_loss))) {
    st.reference_loss = loss;
    st.reference_sweep = r.sweep;
  }
  // Aitken's projection (validation monitor): from the last three plain sweeps' losses
  // L0 > L1 > L2, the improvements shrink by a = (L1 - L2) / (L0 - L1) a sweep; if they go on
  // shrinking so, the sweeps still to come improve on L2 by (L1 - L2) a / (1 - a) in all. When
  // that is within the tolerance, the fit ends at this state (the best so far) without waiting
  // out the patience.
  if (!trial && validation_ && history && cfg_.aitken && st.best_sweep == r.sweep) {
    const std::size_t n = history->size();
    if (n >= 2) {
      const SweepRecord& r1 = (*history)[n - 1];
      const SweepRecord& r0 = (*history)[n - 2];
      const double l1 = monitored(r1), l0 = monitored(r0);
      const bool plain = r1.sweep == r.sweep - 1 && r0.sweep == r.sweep - 2 && r0.sweep >= 1 &&
                         r1.extrapolation == 0 && r0.extrapolation == 0;
      const double d1 = l0 - l1, d2 = l1 - loss;
      if (plain && d1 > 0 && d2 > 0 && d2 < d1) {
        const double a = d2 / d1;
        const double rest = d2 * a / (1 - a);
        if (rest <= cfg_.stop_tol * std::abs(loss)) {
          d.stop = true;
          d.reason = fmt::format(
              "the {}validation log-loss's improvements shrink by {:.2f} a sweep, and the sweeps "
              "to come would improve it by {:.2e} in all (Aitken), within {:g} (relative); "
              "keeping the state of sweep {} ({:.6f})",
              cfg_.monitor_calibrated ? "calibrated " : "", a, rest, cfg_.stop_tol, r.sweep, loss);
          return d;
        }
      }
    }
  }
  if (r.sweep - st.reference_sweep >= cfg_.patience) {
    d.stop = true;
    if (validation_) {
      d.keep_best = st.best_sweep != r.sweep;
      d.reason = fmt::format(
          "the {}validation log-loss has not improved by more than {:g} (relative) for {} "
          "sweeps; keeping the state of sweep {} ({:.6f})",
          cfg_.monitor_calibrated ? "calibrated " : "", cfg_.stop_tol, cfg_.patience, st.best_sweep,
          st.best_loss);
    } else {
      d.reason = fmt::format(
          "the training log-loss has changed by less than {:g} (relative) for {} sweeps",
          cfg_.stop_tol, cfg_.patience);
    }
  }
  return d;
}

}  // namespace pref
