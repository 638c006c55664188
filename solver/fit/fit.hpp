#pragma once
// The rank-distributed alternating Newton fit of U (users x J) and Z (comparisons x J).
//
// A sweep is a user half-step (every u_i solved with Z fixed, then, under the population prior,
// the prior's M-step) then a comparison half-step (every z_p with U fixed), then an evaluation
// of the state. fit() composes the parts of this folder: the labels' local layout and exchange
// plans (layout.hpp), the half-steps (half_steps.hpp), the gauge steps that follow the M-step
// (gauge.hpp), the evaluation (evaluation.hpp), the stopping rule (stopping.hpp) and the
// accelerations (extrapolation here, SQUAREM in squarem.hpp), all working on one FitState
// (state.hpp).
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "solver/base/enum_names.hpp"
#include "solver/base/mpi.hpp"
#include "solver/fit/state.hpp"
#include "solver/items/items.hpp"
#include "solver/layout/distribute.hpp"
#include "solver/layout/factors.hpp"

namespace pref {

// The comparison half-step's exchange pattern (solver/fit/layout.hpp).
enum class Exchange { kAuto, kShip, kReduce };
inline constexpr EnumNames<Exchange, 3> kExchangeNames{
    {{{Exchange::kAuto, "auto"}, {Exchange::kShip, "ship"}, {Exchange::kReduce, "reduce"}}}};
inline const char* exchange_name(Exchange e) {
  return kExchangeNames.name(e);
}

// The users' regularization: a fixed ridge (mu_u/2)|u_i|^2, or the population prior
// u_i ~ N(m, Sigma) learned from all users during the fit (solver/prior/population_prior.hpp;
// docs/design.md, "The population prior"), which starts at N(0, I / mu_u).
enum class UserPrior { kRidge, kPopulation };
inline constexpr EnumNames<UserPrior, 2> kUserPriorNames{
    {{{UserPrior::kPopulation, "population"}, {UserPrior::kRidge, "ridge"}}}};
inline const char* user_prior_name(UserPrior p) {
  return kUserPriorNames.name(p);
}

// When the sweeps end (solver/fit/stopping.hpp): when the held-out predictions stop improving
// (the best state is kept), or at the EM fixed point (the objective's relative change below
// --tol).
enum class StopRule { kPredictions, kObjective };
inline constexpr EnumNames<StopRule, 2> kStopRuleNames{
    {{{StopRule::kPredictions, "predictions"}, {StopRule::kObjective, "objective"}}}};
inline const char* stop_rule_name(StopRule s) {
  return kStopRuleNames.name(s);
}

// Under the population prior with free comparison factors: SQUAREM cycles over whole sweeps
// (solver/fit/squarem.hpp; an experiment with a known limit, docs/design.md "Accelerating the
// EM"), or plain sweeps.
enum class Acceleration { kNone, kSquarem };
inline constexpr EnumNames<Acceleration, 2> kAccelerationNames{
    {{{Acceleration::kNone, "none"}, {Acceleration::kSquarem, "squarem"}}}};
inline const char* acceleration_name(Acceleration a) {
  return kAccelerationNames.name(a);
}

struct FitConfig {
  int J = 8;
  UserPrior prior = UserPrior::kPopulation;
  // With the population prior: after each M-step, rotate the state into the prior's eigenbasis,
  // which removes the rotations the sweeps could otherwise drift along (docs/design.md, "The
  // population prior"). It changes no prediction; off only to check the M-step in its own
  // frame (tests/test_prior.cpp).
  bool rotate_to_prior = true;
  // 3: best held-out AUC on the Attributes ablation (docs/results.md, "Regularization").
  double mu_u = 3.0, mu_z = 3.0;
  int max_sweeps = 100;
  // The library's defaults of stop, accelerate and auc_every are the plain EM of the tests'
  // references; `pref fit`'s are predictions, squarem and 10 (solver/cli/fit_options.cpp).
  StopRule stop = StopRule::kObjective;
  double tol = 1e-6;  // kObjective: stop when the relative objective change falls below
  // kPredictions: stop when the monitored log-loss has not improved by more than stop_tol
  // (relative) for `patience` sweeps.
  int patience = 3;
  double stop_tol = 3e-5;
  // kPredictions with the validation split: also stop when Aitken's projection of the
  // improvements still to come is within stop_tol (solver/fit/stopping.hpp). The library's
  // default is the patience alone; `pref fit`'s is on.
  bool aitken = false;
  // The monitored validation log-loss is the calibrated one (calibrated_logloss: the model will
  // be calibrated after the sweeps, `pref fit --calibrate validation`), over the validation
  // labels of a sample of users chosen by their ids, of about monitor_labels labels.
  bool monitor_calibrated = false;
  std::uint64_t monitor_labels = std::uint64_t{1} << 20;
  Acceleration accelerate = Acceleration::kNone;
  // The global validation ROC-AUC (a distributed sort) at sweep 0, every auc_every sweeps and
  // for the final state; 1: every sweep. The users' gradient norm likewise (a pass over the
  // training labels); the objective and the validation log-loss are measured every sweep.
  int auc_every = 1;
  // A fresh start moved to its balanced form (U^T U = Z^T Z diagonal; solver/fit/gauge.hpp), and
  // under the population prior the first prior its users' own moments instead of N(0, I / mu_u):
  // the fit then does not depend on the gauge of the start. `pref fit` sets it; the library's
  // default is the plain EM of the tests' references.
  bool canonical_start = false;
  int newton_steps = 1;
  // With the population prior: the over-relaxed M-step's factor w (relax_prior, solver/prior/
  // population_prior.hpp; 1: EM's own update, the library's default and the tests' references;
  // `pref fit`'s is 1.8).
  double prior_relax = 1.0;
  // Extrapolated alternating sweeps (docs/design.md, "Extrapolation"): each half-step's result
  // is pushed further along its last change, by a factor adapted from the objective (Ang and
  // Gillis 2019). Off: plain alternating sweeps (the dense reference of tests/test_fit.cpp).
  // The default follows the prior, as `pref fit` does: on with the ridge, off with the
  // population prior, whose sweeps it does not shorten (docs/design.md, "The population prior").
  bool extrapolate = false;
  std::uint64_t seed = 1;
  double init_scale = 0.1;  // random init: N(0, init_scale^2) entries
  Exchange exchange = Exchange::kAuto;
  bool shared = false;  // the non-personalized baseline: u_i = 1 for all users, J = 1
  int threads = 1;
  // Cost model: network bandwidth per rank, bytes per second.
  double net_bytes_per_second = 5e9;
  // Item model (solver/items/items.hpp): null, free comparison factors; else z_p = A_p theta
  // over responses or response embeddings, whose half-step replaces the comparison half-step
  // (ship pattern only; no extrapolation, no acceleration). item.J and item.mu_z are taken from
  // J and mu_z.
  std::shared_ptr<const ItemData> items;
  ItemConfig item;
  int item_init_steps = 5;  // Newton steps of theta from 0 at the initial U, before sweep 0
};

// The fit's random initialization (solver/layout/factors.hpp) with its J, seed and init_scale
// (unit users for the shared model).
inline Factors random_factors(const mpi::Comm& comm, const Partitions& parts,
                              const FitConfig& cfg) {
  return random_factors(comm, parts, RandomInit{cfg.J, cfg.seed, cfg.init_scale, cfg.shared});
}

struct FitResult {
  Factors factors;
  std::vector<SweepRecord> history;
  bool converged = false;
  bool stopped = false;  // ended early by FitHooks::stop_requested (a checkpoint was offered)
  std::string reason;    // why the sweeps ended, one line
  // The sweep whose state is returned (the best one under the predictions rule) and its
  // measurement with every metric (validation AUC, gradient norm).
  int state_sweep = 0;
  SweepRecord final_record;
  Exchange exchange = Exchange::kShip;
  std::optional<PopulationPrior> prior;  // the learned prior (FitConfig::prior population)
  // With an item model: theta's rows (ItemModel::param_rows) and this rank's share of them.
  Partition item_rows;
  std::vector<double> item_params;
  // With --residual (ItemConfig::residual): the residuals' rows (by response) and this rank's.
  Partition residual_rows;
  std::vector<double> residual_params;
  // The returned state's margins of this rank's validation labels, with the labels (when the fit
  // had a validation split and was not stopped): the calibration is fitted on them.
  bool validation_scored = false;
  std::vector<double> validation_margins;
  std::vector<float> validation_labels;
};

struct FitHooks {
  // On every rank after each record (for progress and metrics files).
  std::function<void(const SweepRecord&)> on_sweep;
  // On every rank after each half-step; collective, and must return the same on every rank
  // (e.g. an allreduce of a signal flag). True: offer the state (stopping) and end the fit,
  // unless the fit ends at that point anyway.
  std::function<bool()> stop_requested;
  // On every rank (collectively) for each state offered: after every completed sweep (0
  // included), and after a user half-step when the fit stops there. `stopping`: the fit ends
  // here because of stop_requested; `exchange`: the pattern in use. The CLI writes checkpoints
  // here.
  std::function<void(const FitState&, bool stopping, Exchange exchange)> on_state;
};

// train and validation are consumed (their label arrays become the solver's own). `state` is
// FitState::start(init) for a fresh fit or a checkpoint's state to resume.
FitResult fit(const mpi::Comm& comm, LabelMatrix train, std::optional<LabelMatrix> validation,
              FitState state, const FitConfig& cfg, const FitHooks& hooks);
// A fresh fit; on_sweep is called on every rank after each record.
FitResult fit(const mpi::Comm& comm, LabelMatrix train, std::optional<LabelMatrix> validation,
              Factors init, const FitConfig& cfg,
              const std::function<void(const SweepRecord&)>& on_sweep = {});

}  // namespace pref
