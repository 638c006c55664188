#include "solver/fit/fit.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "solver/base/log.hpp"
#include "solver/fit/context.hpp"
#include "solver/fit/evaluation.hpp"
#include "solver/fit/gauge.hpp"
#include "solver/fit/half_steps.hpp"
#include "solver/fit/squarem.hpp"
#include "solver/fit/stopping.hpp"
#include "solver/newton/kernels.hpp"

namespace pref {

void ExtrapolationState::update(bool decreased, bool calm) {
  last_decreased = decreased;
  calm_run = calm ? calm_run + 1 : 0;
  if (decreased) {
    ceiling = std::min(1.0, 1.01 * ceiling);
    previous = beta;
    beta = std::min(ceiling, 1.05 * beta);
  } else {
    ceiling = previous;
    previous = beta;
    beta /= 1.5;
  }
}

FitState FitState::start(Factors init) {
  FitState st;
  st.current.factors = std::move(init);
  return st;
}

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// A fit whose factors or objective stop being finite (a divergent Newton step, an initial scale
// whose margins overflow) can only produce a damaged model: it stops with one collective line
// naming where, before anything is written. Collective.
void require_finite(const mpi::Comm& comm, const std::vector<double>& values, double objective,
                    const std::string& where) {
  mpi::agree(comm, [&] {
    const bool finite =
        std::isfinite(objective) &&
        std::all_of(values.begin(), values.end(), [](double v) { return std::isfinite(v); });
    if (!finite)
      throw InputError("the fit diverged: " + where +
                       " produced non-finite factors or objective; nothing was written (try a "
                       "larger --mu-u/--mu-z or a smaller --init-scale)");
  });
}

// The sweeps over one FitState: the parts of this folder in the order of docs/design.md ("The
// fit"), offering the state after each half-step that may end the run.
class Sweeps {
 public:
  Sweeps(const mpi::Comm& comm, LabelMatrix&& train, LabelMatrix* validation, FitState& st,
         const FitConfig& cfg, const FitHooks& hooks)
      : comm_(comm),
        cfg_(cfg),
        hooks_(hooks),
        st_(st),
        ctx_(comm, cfg, FitLayout(comm, std::move(train), validation, cfg), st.current),
        steps_(ctx_),
        eval_(ctx_),
        squarem_(ctx_),
        rule_(cfg, validation ? validation->labels : 0) {
    const bool under_prior = !cfg.shared && cfg.prior == UserPrior::kPopulation;
    const bool free_comparisons = !steps_.has_items();
    squarem_on_ = under_prior && free_comparisons && cfg.accelerate == Acceleration::kSquarem &&
                  !cfg.extrapolate;
    // A fresh start (not a warm start, which brings its prior) in its balanced form, and the
    // first prior the start's own moments: a start moved along the gauge (U A^-T, Z A, A a
    // scale or a rotation) then gives the same predictions. Otherwise N(0, I / mu_u).
    canonical_ =
        cfg.canonical_start && st.fresh() && !st.current.prior && free_comparisons && !cfg.shared;
    if (!under_prior) st.current.prior.reset();
    if (under_prior && !st.current.prior && !canonical_)
      st.current.prior =
          PopulationPrior::isotropic(cfg.J, cfg.mu_u, ctx_.layout.parts.users.size());
    rotate_each_ = under_prior && cfg.rotate_to_prior && !squarem_on_;
  }

  FitResult run();

 private:
  void log_start();
  bool fresh_start(FitResult& res);
  bool resume_start(FitResult& res);
  // One sweep; false when the fit ends (converged, stopped, or by a signal).
  bool sweep(int s, int last, FitResult& res);
  // The user half-step, then (under the prior) the turn into the prior's basis; returns the
  // M-step's factor taken (HalfSteps::user_half_step).
  double user_half_step();
  void offer(bool stopping);
  // Ends the fit with the stopping rule's decision (restoring the best state if it says so).
  void settle(const StopDecision& d);
  FitResult finish(FitResult res);
  bool stop_requested() { return hooks_.stop_requested && hooks_.stop_requested(); }
  // The sweeps whose record has the validation ROC-AUC and the gradient norm: every
  // auc_every-th (with 1 every one, the initial state's too); the returned state's always.
  bool full_evaluation(int s) const {
    return cfg_.auc_every == 1 || (cfg_.auc_every > 0 && s > 0 && s % cfg_.auc_every == 0);
  }

  const mpi::Comm& comm_;
  const FitConfig& cfg_;
  const FitHooks& hooks_;
  FitState& st_;
  FitContext ctx_;
  HalfSteps steps_;
  Evaluation eval_;
  Squarem squarem_;
  StoppingRule rule_;
  bool squarem_on_ = false, rotate_each_ = false;
  bool canonical_ = false;   // a fresh start to put in its canonical form (balance_start)
  double push_seconds_ = 0;  // the last push of Z (extrapolation), counted in the next sweep
  std::string reason_;       // why the sweeps ended
};

void Sweeps::log_start() {
  log::info(comm_,
            "training labels in memory: {:.1f} bytes per label over both orientations "
            "(largest rank)",
            mpi::allreduce_max(comm_, ctx_.layout.label_bytes_per_label()));
  const FitLayout& l = ctx_.layout;
  log::info(comm_,
            "exchange pattern: {} (cost model per sweep, slowest rank: ship {:.3g} MB "
            "{:.3g} s, reduce {:.3g} MB {:.3g} s{}); label kernels: {}",
            exchange_name(l.exchange), l.bytes_ship / 1e6, l.cost_ship, l.bytes_reduce / 1e6,
            l.cost_reduce, cfg_.exchange == Exchange::kAuto ? "" : ", forced",
            cfg_.J <= kernels::kMaxSmallJ ? kernels::best().isa : "BLAS-3 (dsyrk)");
  log::info(comm_, "stopping rule: {}{}", rule_.describe(),
            squarem_on_ ? "; acceleration: squarem" : "");
}

double Sweeps::user_half_step() {
  const double prior_step = steps_.user_half_step();
  if (!st_.current.prior || cfg_.shared) return prior_step;
  std::vector<double>* u_more = st_.u_prev ? &*st_.u_prev : nullptr;
  std::vector<double>* z_more = st_.z_prev ? &*st_.z_prev : nullptr;
  if (rotate_each_) rotate_to_prior_basis(ctx_, u_more, z_more);
  return prior_step;
}

void Sweeps::offer(bool stopping) {
  if (!hooks_.on_state) return;
  if (steps_.has_items()) st_.current.item_params = steps_.all_item_params();
  hooks_.on_state(st_, stopping, ctx_.layout.exchange);
}

void Sweeps::settle(const StopDecision& d) {
  st_.stop.finished = true;
  st_.stop.reason = d.reason;
  if (!d.keep_best || !st_.stop.best) return;
  Snapshot best = std::move(*st_.stop.best);
  st_.stop.best.reset();
  st_.current.factors = std::move(best.factors);
  st_.current.prior = std::move(best.prior);
  if (steps_.has_items()) steps_.restore_items(best.item_params);
  ctx_.comparisons_measured = false;
  ctx_.ughost_fresh = false;
  ctx_.fetch_z();
}

// Sweep 0: the initial state, evaluated. False: stopped by a signal.
bool Sweeps::fresh_start(FitResult& res) {
  auto t = Clock::now();
  if (canonical_) {
    balance_start(ctx_);
    if (!cfg_.shared && cfg_.prior == UserPrior::kPopulation)
      st_.current.prior = PopulationPrior::of_start(comm_, cfg_.J, st_.current.factors.U,
                                                    ctx_.layout.parts.users.size(), cfg_.mu_u);
  }
  steps_.init_items(cfg_.item_init_steps);
  // (The stopping rule never takes sweep 0; the over-fitting warning compares its calibrated
  // log-loss, on the same sample.)
  SweepRecord rec = eval_.measure(full_evaluation(0)        ? Validation::kFull
                                  : cfg_.monitor_calibrated ? Validation::kSample
                                                            : Validation::kSplit);
  rec.seconds_eval = since(t);
  rec.bytes_exchanged = ctx_.take_bytes();
  require_finite(comm_, st_.current.factors.U, rec.objective, "the initialization (sweep 0)");
  require_finite(comm_, st_.current.factors.Z, 0.0, "the initialization (sweep 0)");
  st_.history.push_back(rec);
  if (hooks_.on_sweep) hooks_.on_sweep(rec);
  st_.reference_objective = rec.objective;
  const bool stop = stop_requested() && cfg_.max_sweeps > 0;
  offer(stop);
  if (stop) {
    res.stopped = true;
    return false;
  }
  // Z_0 becomes the first Z_prev (a push by 0), as after a resume from this state.
  if (cfg_.extrapolate && cfg_.max_sweeps > 0) {
    if (!st_.z_prev) st_.z_prev = st_.current.factors.Z;
    std::vector<double>& prev = *st_.z_prev;
    std::vector<double>& Z = st_.current.factors.Z;
    for (std::size_t i = 0; i < Z.size(); ++i) prev[i] = Z[i];
    ctx_.fetch_z();
  }
  return true;
}

// From a checkpoint. False: the checkpoint was written after the fit ended.
bool Sweeps::resume_start(FitResult&) {
  // theta of the checkpoint; Z is the checkpoint's too (the fit's Z, A theta up to the
  // rotations, bitwise as the uninterrupted fit has it).
  if (steps_.has_items()) steps_.restore_items(st_.current.item_params);
  if (st_.stop.finished) return false;  // the checkpoint was written after the last sweep
  // Checkpoints written before the stopping rule was: the objective rule's convergence.
  const bool converged =
      cfg_.extrapolate ? st_.extrapolation.calm_run >= 2 : st_.history.back().rel_change < cfg_.tol;
  if (cfg_.stop == StopRule::kObjective && !st_.user_half_done && st_.sweep >= 1 && converged &&
      st_.history.back().extrapolation == 0) {
    st_.stop.finished = true;
    st_.stop.reason = "the checkpoint was written after the converging sweep";
    return false;
  }
  if (!cfg_.extrapolate) st_.u_prev.reset(), st_.z_prev.reset();
  if (cfg_.shared) st_.u_prev.reset();
  // With extrapolation, a checkpoint between sweeps was written before the push of Z that
  // starts the next one (made here, which fetches the Z rows), one within a sweep after it.
  const int first = st_.sweep + 1;
  if (cfg_.extrapolate && !st_.user_half_done && first <= std::max(cfg_.max_sweeps, 0)) {
    const ExtrapolationState& ex = st_.extrapolation;
    const double beta = ex.last_decreased ? ex.beta : 0.0;
    if (!st_.z_prev) st_.z_prev = st_.current.factors.Z;  // no earlier Z: no push
    std::vector<double>& prev = *st_.z_prev;
    std::vector<double>& Z = st_.current.factors.Z;
    for (std::size_t i = 0; i < Z.size(); ++i) {
      const double z = Z[i];
      Z[i] = z + beta * (z - prev[i]);
      prev[i] = z;
    }
    ctx_.fetch_z();
  } else {
    // The Z rows the users read, as the evaluation of the last completed sweep left them (its
    // bytes were counted in that sweep's record), or as the push of Z_hat that preceded the
    // checkpoint, or SQUAREM's jump to x' (counted: they are this sweep's).
    const bool pushed = cfg_.extrapolate || (squarem_on_ && st_.squarem.phase == 3);
    if (pushed && st_.user_half_done)
      ctx_.fetch_z();
    else
      ctx_.layout.zplan.fetch(comm_, st_.current.factors.Z, cfg_.J, ctx_.zghost);
    ctx_.ughost_fresh = false;
  }
  return true;
}

bool Sweeps::sweep(int s, int last, FitResult& res) {
  SweepRecord r;
  Factors& f = st_.current.factors;
  if (st_.user_half_done) {
    r = st_.pending;
    st_.user_half_done = false;
  } else {
    r.sweep = s;
    auto t = Clock::now();
    // SQUAREM's cycles start after the first sweep: its jump from the start is far from EM's
    // linear regime, and the start's gauge (which the first M-step and px step remove) would
    // otherwise enter the step length.
    if (squarem_on_ && s >= 2) {
      std::string note;
      r.extrapolation = squarem_.before_sweep(st_, note);
      if (!note.empty()) log::info(comm_, "{}", note);
    }
    if (cfg_.extrapolate && !cfg_.shared && !st_.u_prev) st_.u_prev.emplace(f.U.begin(), f.U.end());
    r.prior_step = user_half_step();
    if (cfg_.extrapolate && !cfg_.shared) {
      // U_hat = U + beta (U - U_prev), which the comparison half-step and the evaluation then
      // use as U, and the next user half-step starts from.
      const double beta = st_.extrapolation.beta;
      std::vector<double>& prev = *st_.u_prev;
      for (std::size_t i = 0; i < f.U.size(); ++i) {
        const double u = f.U[i];
        f.U[i] = u + beta * (u - prev[i]);
        prev[i] = u;
      }
      ctx_.ughost_fresh = false;
    }
    require_finite(comm_, f.U, 0.0, fmt::format("sweep {}, user half-step", s));
    r.seconds_user = since(t) + push_seconds_;
    if (stop_requested()) {
      st_.user_half_done = true;
      st_.pending = r;
      offer(true);
      res.stopped = true;
      return false;
    }
  }
  auto t = Clock::now();
  const bool full = full_evaluation(s) || s == last;
  steps_.comparison_half_step(full);
  r.seconds_comparison = since(t);
  require_finite(comm_, f.Z, 0.0, fmt::format("sweep {}, comparison half-step", s));
  t = Clock::now();
  const double scale = st_.history.back().calibration_scale;
  // The last sweep the limit allows is measured in full: when it is the returned state (a
  // warm refit of one sweep, --stop objective) finish() then need not measure it again.
  // Between full measurements, with the calibrated monitor, only the stopping rule's sample.
  const Validation level = full                      ? Validation::kFull
                           : cfg_.monitor_calibrated ? Validation::kSample
                                                     : Validation::kSplit;
  const SweepRecord m = eval_.measure(level, std::isfinite(scale) ? scale : 1.0);
  r.seconds_eval = since(t);
  r.objective = m.objective;
  r.train_logloss = m.train_logloss;
  r.grad_norm = m.grad_norm;
  r.validation = m.validation;
  r.calibrated_logloss = m.calibrated_logloss;
  r.calibration_scale = m.calibration_scale;
  r.monitor_labels = m.monitor_labels;
  r.prior = m.prior;
  require_finite(comm_, {}, r.objective, fmt::format("sweep {} (its objective)", s));
  const double reference = st_.reference_objective;
  r.rel_change = std::abs(reference - r.objective) / std::max(std::abs(r.objective), 1e-300);
  if (cfg_.extrapolate) {
    // Extrapolated sweeps can raise the objective, and one of them can change it little by
    // chance: converged takes two decreasing sweeps in a row below the tolerance.
    // Under the population prior the objective is not a Lyapunov function of the sweeps (the
    // E-step moves it either way): there a calm sweep is any below the tolerance.
    const bool decreased = r.objective <= reference;
    st_.extrapolation.update(
        decreased, r.rel_change < cfg_.tol && (decreased || st_.current.prior.has_value()));
  }
  st_.reference_objective = r.objective;
  const StopDecision d =
      rule_.observe(r, st_.stop, cfg_.extrapolate ? &st_.extrapolation : nullptr, &st_.history);
  if (d.take_copy) {
    Snapshot best;
    best.factors = f;
    best.prior = st_.current.prior;
    if (steps_.has_items()) best.item_params = steps_.all_item_params();
    st_.stop.best = std::move(best);
  }
  std::string note;
  if (squarem_on_ && s >= 2 && squarem_.after_sweep(st_, r.objective, note))
    st_.reference_objective = st_.squarem.objective2;
  if (d.stop) settle(d);
  // (A return to x2 or to the best state fetched Z rows: this sweep's bytes.)
  r.bytes_exchanged = ctx_.take_bytes();
  st_.history.push_back(r);
  st_.sweep = s;
  if (hooks_.on_sweep) hooks_.on_sweep(r);
  if (!note.empty()) log::info(comm_, "{}", note);
  const bool stop = stop_requested() && !d.stop && s < last;
  offer(stop);
  if (stop) {
    res.stopped = true;
    return false;
  }
  if (d.stop) return false;
  if (cfg_.extrapolate && s < last) {
    // Z_hat = Z + beta (Z - Z_prev), which the next user half-step reads.
    t = Clock::now();
    const ExtrapolationState& ex = st_.extrapolation;
    const double beta = ex.last_decreased ? ex.beta : 0.0;
    if (!st_.z_prev) st_.z_prev = f.Z;
    std::vector<double>& prev = *st_.z_prev;
    for (std::size_t i = 0; i < f.Z.size(); ++i) {
      const double z = f.Z[i];
      f.Z[i] = z + beta * (z - prev[i]);
      prev[i] = z;
    }
    ctx_.fetch_z();
    push_seconds_ = since(t);  // the next sweep's (as its bytes)
  }
  return true;
}

FitResult Sweeps::run() {
  FitResult res;
  res.exchange = ctx_.layout.exchange;
  log_start();
  if (steps_.has_items() && cfg_.extrapolate)
    throw Error("fit: the item models do not support extrapolation");
  const bool go = st_.fresh() ? fresh_start(res) : resume_start(res);
  if (!go) return finish(std::move(res));
  // A fit resumed between half-steps completes that sweep whatever the sweep limit.
  const int first = st_.sweep + 1;
  const int last = std::max(cfg_.max_sweeps, st_.user_half_done ? first : 0);
  for (int s = first; s <= last; ++s)
    if (!sweep(s, last, res)) break;
  return finish(std::move(res));
}

FitResult Sweeps::finish(FitResult res) {
  res.converged = st_.stop.finished;
  reason_ = st_.stop.reason;
  if (!res.stopped && !st_.stop.finished) {
    // The sweep limit: the predictions rule keeps its best state all the same.
    reason_ = fmt::format("the sweep limit (--max-sweeps {})", cfg_.max_sweeps);
    if (cfg_.stop == StopRule::kPredictions && rule_.watches_validation() && st_.stop.best &&
        st_.stop.best_sweep != st_.sweep) {
      StopDecision d;
      d.keep_best = true;
      settle(d);
      st_.stop.finished = false;
      reason_ += fmt::format("; keeping the state of sweep {} (validation log-loss {:.6f})",
                             st_.stop.best_sweep, st_.stop.best_loss);
    }
  }
  res.reason = reason_;
  res.history = st_.history;
  const int state_sweep =
      cfg_.stop == StopRule::kPredictions && rule_.watches_validation() && st_.stop.best_sweep >= 0
          ? st_.stop.best_sweep
          : st_.sweep;
  res.state_sweep = res.stopped ? st_.sweep : state_sweep;
  if (!res.stopped) {
    // The output's frame: with SQUAREM the sweeps did not rotate into the prior's basis.
    if (squarem_on_ && cfg_.rotate_to_prior && st_.current.prior)
      rotate_to_prior_basis(ctx_, nullptr, nullptr);
    // The returned state measured with every metric, unless its record already was.
    const SweepRecord& lastrec = st_.history.back();
    const bool measured = res.state_sweep == lastrec.sweep && !squarem_on_ &&
                          (full_evaluation(lastrec.sweep) || std::isfinite(lastrec.grad_norm)) &&
                          lastrec.extrapolation == 0;
    if (measured) {
      res.final_record = lastrec;
    } else {
      ctx_.comparisons_measured = false;
      const double scale = st_.history.back().calibration_scale;
      res.final_record = eval_.measure(Validation::kFull, std::isfinite(scale) ? scale : 1.0);
      res.final_record.sweep = res.state_sweep;
    }
  }
  if (!res.stopped && ctx_.layout.has_validation) {
    eval_.score_validation(res.validation_margins, res.validation_labels);
    res.validation_scored = true;
  }
  if (st_.current.prior) res.prior = *st_.current.prior;
  res.item_rows = steps_.item_rows();
  res.item_params = steps_.item_params();
  res.residual_rows = steps_.residual_rows();
  res.residual_params = steps_.residual_params();
  res.factors = std::move(st_.current.factors);
  // Worse on held-out labels than where it started: on the calibrated log-loss when the fit
  // monitors it (what the written, calibrated model gives), else on the validation log-loss.
  const auto& h = res.history;
  if (!res.stopped && h.size() > 1) {
    const SweepRecord& start = h.front();
    const SweepRecord& end = res.final_record;
    const bool calibrated =
        std::isfinite(start.calibrated_logloss) && std::isfinite(end.calibrated_logloss);
    const double at_start = calibrated         ? start.calibrated_logloss
                            : start.validation ? start.validation->logloss
                                               : std::numeric_limits<double>::quiet_NaN();
    const double at_end = calibrated       ? end.calibrated_logloss
                          : end.validation ? end.validation->logloss
                                           : std::numeric_limits<double>::quiet_NaN();
    if (at_end > at_start)
      log::warn(comm_,
                "the fit ends at a {}validation log-loss of {:.4f}, worse than its "
                "initialization's {:.4f} (over-fitting: docs/design.md, \"The population "
                "prior\")",
                calibrated ? "calibrated " : "", at_end, at_start);
  }
  return res;
}

}  // namespace

FitResult fit(const mpi::Comm& comm, LabelMatrix train, std::optional<LabelMatrix> validation,
              FitState state, const FitConfig& cfg, const FitHooks& hooks) {
  Sweeps sweeps(comm, std::move(train), validation ? &*validation : nullptr, state, cfg, hooks);
  validation.reset();
  return sweeps.run();
}

FitResult fit(const mpi::Comm& comm, LabelMatrix train, std::optional<LabelMatrix> validation,
              Factors init, const FitConfig& cfg,
              const std::function<void(const SweepRecord&)>& on_sweep) {
  FitHooks hooks;
  hooks.on_sweep = on_sweep;
  return fit(comm, std::move(train), std::move(validation), FitState::start(std::move(init)), cfg,
             hooks);
}

}  // namespace pref
