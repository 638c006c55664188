#pragma once
// The fit's state: everything a checkpoint holds and a resume restores (docs/checkpoints.md),
// in one owning type. The sweeps work on FitState::current in place; the stopping rule, the
// extrapolation and the SQUAREM acceleration keep their own parts beside it. A fresh fit is a
// FitState with an empty history; a resumed one is what decode_state (solver/fit/
// checkpoint_state.hpp) read back, and continues exactly as the uninterrupted fit would have
// (bitwise at the same rank count).
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "solver/eval/metrics.hpp"
#include "solver/layout/factors.hpp"
#include "solver/prior/population_prior.hpp"

namespace pref {

// One sweep's measurement of the state (or, for sweep 0, of the initial state).
struct SweepRecord {
  int sweep = 0;  // 0: the initial state
  double objective = 0, train_logloss = 0, grad_norm = 0, rel_change = 0;
  std::optional<SplitMetrics> validation;
  // The validation log-loss of the probabilities sigmoid(s u.z) at the scale s that minimizes
  // it (what --calibrate validation will give), over the stopping rule's sample of the
  // validation users (FitConfig::monitor_calibrated; NaN: not measured).
  double calibrated_logloss = std::numeric_limits<double>::quiet_NaN();
  double calibration_scale = std::numeric_limits<double>::quiet_NaN();
  // The sample's labels (all ranks; 0: not measured). A sweep measured on the sample alone
  // (Evaluation::measure's kSample) has no `validation`.
  std::uint64_t monitor_labels = 0;
  std::optional<PriorSummary> prior;  // with the population prior: the prior of the state
  // The over-relaxed M-step's factor the sweep's user half-step took (FitConfig::prior_relax;
  // 0: no M-step).
  double prior_step = 0;
  // SQUAREM (FitConfig::accelerate): the sweep started from an extrapolated state, with this
  // step length alpha (0: a plain sweep).
  double extrapolation = 0;
  double seconds_user = 0, seconds_comparison = 0, seconds_eval = 0;
  std::uint64_t bytes_exchanged = 0;  // by all ranks during the sweep
};

// What defines the model after some sweeps: this rank's rows of U and Z, the learned prior
// (population prior only) and, with an item model, all of theta (every rank the same; with
// --residual the head's values followed by the residuals').
struct Snapshot {
  Factors factors;
  std::optional<PopulationPrior> prior;
  std::vector<double> item_params;
};

// The extrapolation's factor and its adaptation (FitConfig::extrapolate; Ang and Gillis 2019,
// "Accelerating nonnegative matrix factorization algorithms using extrapolation", Neural
// Computation 31): beta grows by 5% after each sweep that lowered the objective, up to a
// ceiling that itself grows by 1% (at most 1); a sweep that raised it divides beta by 1.5,
// lowers the ceiling to the previous beta and skips the next push of Z. calm_run counts the
// sweeps in a row that lowered the objective by less than the tolerance: converged at 2.
struct ExtrapolationState {
  double beta = 0.5, ceiling = 1.0, previous = 0.5;
  int calm_run = 0;
  bool last_decreased = true;
  void update(bool decreased, bool calm);
};

// The stopping rule's memory (solver/fit/stopping.hpp).
struct StopState {
  // The monitored log-loss of the best state so far, and its sweep (-1: none yet).
  double best_loss = std::numeric_limits<double>::infinity();
  int best_sweep = -1;
  // The loss at the last improvement by more than the tolerance, and its sweep.
  double reference_loss = std::numeric_limits<double>::infinity();
  int reference_sweep = -1;
  // A copy of the best state when it is not the current one (validation monitor only).
  std::optional<Snapshot> best;
  // The rule ended the fit (the state is then the one it keeps) and why.
  bool finished = false;
  std::string reason;
};

// SQUAREM's cycle (solver/fit/squarem.hpp): x0 -> F(x0) = x1 -> F(x1) = x2, then a step from
// x0 along the two changes and one stabilizing sweep from there, kept only if its objective is
// not above x2's (or, where the cycle's plain sweeps raised the objective, when its fixed-point
// residual is not above theirs). phase: the sweeps of the cycle done (0: at x0, 1: at x1, 2: at
// x2, 3: in the stabilizing sweep). saved: x0 (phases 1, 2), x1 (phase 2), x2 and, judged by the
// residual, the jump's x' (phase 3).
struct SquaremState {
  int phase = 0;
  double step_max = 1;    // the largest |alpha| allowed; grows after steps that reached it
  double objective2 = 0;  // x2's objective (phase 3)
  double residual1 = 0;   // |x2 - x1| in x0's frame (phase 3, judged by the residual)
  std::vector<Snapshot> saved;
};

struct FitState {
  int sweep = 0;                // completed sweeps
  bool user_half_done = false;  // plus the user half-step of sweep + 1
  SweepRecord pending;          // with user_half_done: sweep + 1's record so far
  Snapshot current;
  std::vector<SweepRecord> history;  // records 0..sweep (empty: a fresh start)
  // The objective the next sweep's relative change is measured against: the last record's,
  // or, after SQUAREM returned to x2, x2's.
  double reference_objective = 0;
  // FitConfig::extrapolate: this rank's U and Z before their last push (none yet: nullopt).
  std::optional<std::vector<double>> u_prev, z_prev;
  ExtrapolationState extrapolation;
  StopState stop;
  SquaremState squarem;

  bool fresh() const { return history.empty(); }
  // A fresh fit from initial factors.
  static FitState start(Factors init);
};

}  // namespace pref
