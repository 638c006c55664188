#pragma once
// The rank-distributed alternating Newton fit of U (users x J) and Z (comparisons x J).
//
// A sweep is a user half-step (every u_i solved with Z fixed) then a comparison half-step (every
// z_p with U fixed). Users always read the Z rows they need from their owners (fetch). For the
// comparison half-step there are two exchange patterns:
//   ship:   comparison owners fetch the U rows of their labels and solve locally;
//   reduce: users stay in place; every rank sums, per comparison it touches, the partial
//           gradient, Hessian and loss of its own users, and reduces them to the owner, which
//           takes the Newton step; the line search runs the same way.
// A cost model (bytes exchanged per sweep) picks one unless forced.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "solver/base/enum_names.hpp"
#include "solver/base/mpi.hpp"
#include "solver/eval/metrics.hpp"
#include "solver/eval/split_scores.hpp"
#include "solver/items/items.hpp"
#include "solver/layout/distribute.hpp"
#include "solver/layout/factors.hpp"
#include "solver/prior/population_prior.hpp"

namespace pref {

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
  double tol = 1e-6;  // stop when the relative objective change falls below
  int newton_steps = 1;
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
  // Item model (solver/items/items.hpp): null, free comparison factors; else z_p = A_p theta over
  // responses or response embeddings, whose half-step replaces the comparison half-step (ship
  // pattern only; no extrapolation). item.J and item.mu_z are taken from J and mu_z.
  std::shared_ptr<const ItemData> items;
  ItemConfig item;
  int item_init_steps = 5;  // Newton steps of theta from 0 at the initial U, before sweep 0
};

struct SweepRecord {
  int sweep = 0;  // 0: the initial state
  double objective = 0, train_logloss = 0, grad_norm = 0, rel_change = 0;
  std::optional<SplitMetrics> validation;
  std::optional<PriorSummary> prior;  // with the population prior: the prior of the state
  double seconds_user = 0, seconds_comparison = 0, seconds_eval = 0;
  std::uint64_t bytes_exchanged = 0;  // by all ranks during the sweep
};

// The fit's random initialization (solver/layout/factors.hpp) with its J, seed and init_scale (unit
// users for the shared model).
inline Factors random_factors(const mpi::Comm& comm, const Partitions& parts,
                              const FitConfig& cfg) {
  return random_factors(comm, parts, RandomInit{cfg.J, cfg.seed, cfg.init_scale, cfg.shared});
}

struct FitResult {
  Factors factors;
  std::vector<SweepRecord> history;
  bool converged = false;
  bool stopped = false;  // ended early by FitHooks::stop_requested (a checkpoint was offered)
  Exchange exchange = Exchange::kShip;
  std::optional<PopulationPrior> prior;  // the learned prior (FitConfig::prior population)
  // With an item model: theta's rows (ItemModel::param_rows) and this rank's share of them.
  Partition item_rows;
  std::vector<double> item_params;
  // With --residual (ItemConfig::residual): the residuals' rows (by response) and this rank's.
  Partition residual_rows;
  std::vector<double> residual_params;
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

// Where a fit starts: fresh (empty history: `init` is evaluated as sweep 0) or from a checkpoint
// (docs/checkpoints.md): `init` is the state after `sweep` completed sweeps, or, with
// user_half_done, after the user half-step of sweep + 1 as well. A resumed fit continues exactly
// as the uninterrupted one (bitwise at the same rank count): no evaluation of the starting
// state, and the tolerance test compares with the objective of history.back().
struct FitStart {
  int sweep = 0;
  bool user_half_done = false;
  std::vector<SweepRecord> history;  // records 0..sweep (empty: a fresh start)
  SweepRecord pending;               // with user_half_done: sweep + 1's record so far
  // With FitConfig::extrapolate: FitState's u_prev and z_prev (absent: none yet) and the factor.
  std::optional<std::vector<double>> u_prev, z_prev;
  ExtrapolationState extrapolation;
  // With the population prior: the prior of the state (required then).
  std::optional<PopulationPrior> prior;
  // With an item model: all of theta (ItemModel::all_params; required then); with --residual
  // the head's d x J values followed by the residuals' R x J.
  std::optional<std::vector<double>> item_params;
};

// A state the fit offers for a checkpoint: after every completed sweep (0 included), and after
// a user half-step when the fit stops there.
struct FitState {
  int sweep = 0;                // completed sweeps
  bool user_half_done = false;  // plus the user half-step of sweep + 1
  bool stopping = false;        // the fit ends here because of stop_requested
  const Factors& factors;
  const SweepRecord* pending = nullptr;  // with user_half_done: sweep + 1's record so far
  Exchange exchange = Exchange::kShip;   // the pattern in use
  // With FitConfig::extrapolate, the rest of the state (this rank's rows, like factors): U and
  // Z before their last push (nullptr: none yet), and the factor's adaptation.
  const std::vector<double>* u_prev = nullptr;
  const std::vector<double>* z_prev = nullptr;
  ExtrapolationState extrapolation;
  const PopulationPrior* prior = nullptr;  // with the population prior: the state's prior
  // With an item model: all of theta (ItemModel::all_params, every rank the same); with
  // --residual the head's values followed by the residuals'.
  const std::vector<double>* item_params = nullptr;
};

struct FitHooks {
  // On every rank after each record (for progress and metrics files).
  std::function<void(const SweepRecord&)> on_sweep;
  // On every rank after each half-step; collective, and must return the same on every rank
  // (e.g. an allreduce of a signal flag). True: offer the state (stopping) and end the fit,
  // unless the fit ends at that point anyway.
  std::function<bool()> stop_requested;
  // On every rank (collectively) for each state offered; the CLI writes checkpoints here.
  std::function<void(const FitState&)> on_state;
};

// train and validation are consumed (their label arrays become the solver's own).
FitResult fit(const mpi::Comm& comm, LabelMatrix train, std::optional<LabelMatrix> validation,
              Factors init, const FitConfig& cfg, const FitStart& start, const FitHooks& hooks);
// A fresh fit; on_sweep is called on every rank after each record.
FitResult fit(const mpi::Comm& comm, LabelMatrix train, std::optional<LabelMatrix> validation,
              Factors init, const FitConfig& cfg,
              const std::function<void(const SweepRecord&)>& on_sweep = {});

}  // namespace pref
