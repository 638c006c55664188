#pragma once
// When the sweeps end (FitConfig::stop; docs/design.md, "Stopping"):
//   - predictions (the default of `pref fit`): on what the user gets. The monitored log-loss is
//     the validation split's when it has at least kMinMonitorLabels labels, otherwise the
//     training labels'. With the validation split the fit ends when the best validation
//     log-loss has not improved by more than stop_tol (relative) for `patience` sweeps, and the
//     state with the lowest validation log-loss is kept (a copy is taken when a sweep improves
//     on the best). With the training labels (which the fit itself lowers, so their best is the
//     most over-fitted state) it ends when the training log-loss has changed by less than
//     stop_tol for `patience` sweeps, keeping the last state. Both are invariant to the
//     factorization's gauge (U A^-T, Z A): they watch predictions, not factors.
//     With the validation split it also ends, without waiting out the patience, when the last
//     three plain sweeps improved it by shrinking amounts whose geometric continuation (Aitken's
//     projection, the EM stopping rule of Lindsay 1995 and McNicholas et al. 2010) adds up to
//     at most stop_tol (relative): the sweeps to come could not improve it by more than the
//     tolerance if they went on as they were going (FitConfig::aitken).
//   - objective: at the EM fixed point, when the objective's relative change falls below --tol
//     (with extrapolation, two calm sweeps in a row); SQUAREM's stabilizing sweeps, which start
//     from an extrapolated state, do not count.
// SQUAREM's stabilizing sweeps (from an extrapolated state) are the accelerator's trials and
// are not candidates either (they count as sweeps). The initial state (sweep 0) is not a
// candidate: the first sweeps from an SVD start can be
// worse on held-out labels than the start (the first user half-step's prior N(0, I / mu_u) is
// wide) before they improve on it.
// The rule's memory is FitState::stop (checkpointed), so a resumed fit stops where the
// uninterrupted one would have.
#include <cstdint>
#include <string>
#include <vector>

#include "solver/fit/fit.hpp"
#include "solver/fit/state.hpp"

namespace pref {

inline constexpr std::uint64_t kMinMonitorLabels = 1000;

struct StopDecision {
  bool stop = false;
  bool keep_best = false;  // restore StopState::best (a state before the last)
  bool take_copy = false;  // the current state is the best so far: copy it into StopState::best
  std::string reason;      // why, one line
};

class StoppingRule {
 public:
  // validation_labels: the validation split's size (all ranks).
  StoppingRule(const FitConfig& cfg, std::uint64_t validation_labels);
  // Observes the record of the state after `r.sweep` sweeps (sweep 0: the initial state) and
  // updates `st`. The same on every rank (it reads only replicated numbers).
  // ex: the extrapolation's state (already updated with this sweep) when it runs, else null.
  // history: the records before r (Aitken's projection reads the last two), or null.
  StopDecision observe(const SweepRecord& r, StopState& st, const ExtrapolationState* ex,
                       const std::vector<SweepRecord>* history = nullptr) const;
  bool watches_validation() const { return validation_; }
  // What it watches, for the log.
  std::string describe() const;

 private:
  double monitored(const SweepRecord& r) const;  // the loss the rule watches
  const FitConfig& cfg_;
  bool validation_ = false;
};

}  // namespace pref
