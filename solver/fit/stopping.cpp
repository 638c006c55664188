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

StopDecision StoppingRule::observe(const SweepRecord& r, StopState& st,
                                   const ExtrapolationState* ex) const {
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
  const double loss = !validation_              ? r.train_logloss
                      : cfg_.monitor_calibrated ? r.calibrated_logloss
                      : r.validation            ? r.validation->logloss
                                                : r.train_logloss;
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
