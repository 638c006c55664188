// pref fit: the alternating Newton fit of a label file, written as a model file.
#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "io/model_file.hpp"
#include "io/output_file.hpp"
#include "solver/base/hash.hpp"
#include "solver/base/log.hpp"
#include "solver/base/signals.hpp"
#include "solver/cli/checkpoint.hpp"
#include "solver/cli/commands.hpp"
#include "solver/cli/data.hpp"
#include "solver/cli/stop_poll_hook.hpp"
#include "solver/eval/calibration.hpp"
#include "solver/fit/checkpoint_state.hpp"
#include "solver/fit/fit.hpp"
#include "solver/fit/warm_start.hpp"
#include "solver/items/items.hpp"
#include "solver/svd/init.hpp"

namespace pref::cli {

namespace {

// The `fit` subcommand once its options are parsed, as named steps (each a part of the data
// flow of docs/design.md); run() is the order.
class FitRun {
 public:
  FitRun(const mpi::Comm& comm, FitOptions& o) : comm_(comm), o_(o), cfg_(o.cfg) {}
  int run();

 private:
  bool set_up_checkpoints();
  void load();
  void load_items();
  void default_mu_z();
  void find_checkpoint();
  void open_metrics();
  FitState initial_state();
  Factors svd_factors();
  void log_sweep(const SweepRecord& r) const;
  FitHooks hooks();
  Calibration calibrate(const FitResult& res);
  void write_model(const FitResult& res, const Calibration& cal);

  const mpi::Comm& comm_;
  FitOptions& o_;
  FitConfig& cfg_;
  std::optional<Checkpointer> ckpt_;
  std::optional<io::AtomicOutput> out_;
  std::optional<io::LabelFile> data_;
  std::optional<LabelMatrix> train_, val_;
  Partitions parts_;
  DataIdentity identity_;
  std::optional<Resumed> resumed_;
  std::optional<WarmStart> warm_;  // --init model:PATH
  std::optional<io::LineOutput> metrics_;
  int stop_signal_ = 0;
};

int FitRun::run() {
  mpi::agree(comm_, [&] { validate_fit_options(o_); });
  default_mu_z();
  if (!set_up_checkpoints()) return 0;
  std::vector<std::string> inputs = {o_.data};
  if (o_.init.rfind("model:", 0) == 0) inputs.push_back(o_.init.substr(6));
  out_.emplace(o_.out, o_.overwrite, comm_, "--out", inputs);
  load();
  if (o_.init.rfind("model:", 0) == 0) {
    warm_ = warm_start(comm_, o_.init.substr(6), "--init " + o_.init, parts_, cfg_);
    identity_.init_model = hash::hex(warm_->checksum);
    log::info(comm_,
              "init {}: {} users and {} comparisons from the model (checksum {}), {} and {} new",
              o_.init, warm_->users, warm_->comparisons, identity_.init_model,
              parts_.users.size() - warm_->users, parts_.comparisons.size() - warm_->comparisons);
  }
  if (ckpt_) find_checkpoint();
  open_metrics();
  FitState state = resumed_ ? std::move(resumed_->state) : initial_state();
  FitResult res = fit(comm_, std::move(*train_), std::move(val_), std::move(state), cfg_, hooks());
  if (res.stopped) {
    log::info(comm_,
              "stopped by {} after a checkpoint: exit code {} (safe to requeue; resume "
              "with --resume)",
              signals::name(stop_signal_), kExitStoppedBySignal);
    return kExitStoppedBySignal;
  }
  write_model(res, calibrate(res));
  return 0;
}

// False: a requeued --resume whose model is already written (nothing to do).
bool FitRun::set_up_checkpoints() {
  if (!o_.ckpt.dir.empty()) {
    // Stop signals set a flag from now on (docs/checkpoints.md).
    signals::install_stop_handlers();
    ckpt_.emplace(o_.ckpt, comm_);
  }
  return !(o_.ckpt.resume && finished_output(comm_, o_));
}

// --items responses|embeddings: the label file's response structure (and embeddings), which
// the item model reads (exit 2 when the file has none).
void FitRun::load_items() {
  const Items kind = kItemsNames.parse(o_.items, "--items");
  if (kind == Items::kComparisons) return;
  auto d = std::make_shared<ItemData>(load_item_data(*data_, kind, comm_, "--items"));
  const bool cholesky = d->dim * static_cast<std::uint64_t>(cfg_.J) <= cfg_.item.cholesky_max;
  log::info(comm_, "items {}: {} responses{}{}", o_.items, d->responses,
            kind == Items::kEmbeddings
                ? fmt::format(", embeddings of dimension {} (head solved by {})", d->dim,
                              cholesky ? "Cholesky" : "Newton-CG")
                : std::string(),
            cfg_.item.residual
                ? fmt::format(", a residual per response (ridge {})", cfg_.item.mu_residual)
                : std::string());
  cfg_.items = std::move(d);
}

// --items responses|embeddings without --mu-z: the item models' ridge on every z_p by default
// totals one per user on the mean |z_p|^2 (mu_z = users / comparisons per comparison): a ridge
// of 3 on each z_p outweighs the labels when comparisons have about one label each, and the fit
// collapses (docs/design.md, "Item models"). Resolved before anything compares the options with
// a model or checkpoint written with them (a requeued --resume of a finished fit).
void FitRun::default_mu_z() {
  if (o_.items == "comparisons" || o_.given("--mu-z")) return;
  data_.emplace(io::LabelFile::open(o_.data, comm_));
  cfg_.mu_z = static_cast<double>(data_->users()) / static_cast<double>(data_->comparisons());
  log::info(comm_,
            "items {}: ridge mu_z = {:.4g} on each z_p ({} users / {} comparisons; --mu-z "
            "sets it)",
            o_.items, cfg_.mu_z, data_->users(), data_->comparisons());
}

void FitRun::load() {
  if (!data_) data_.emplace(io::LabelFile::open(o_.data, comm_));
  load_items();
  const LoadOptions lo{parse_duplicates(o_.duplicates), o_.drop_ties};
  train_ = load_split(*data_, io::Split::kTrain, comm_, std::nullopt, lo);
  const LabelMatrix& train = *train_;
  if (data_->has(io::Split::kValidation))
    val_ = load_split(*data_, io::Split::kValidation, comm_, train.parts, {lo.duplicates, false});
  parts_ = train.parts;
  mpi::agree(comm_, [&] {
    // More factors than users or comparisons cannot be told apart (U Z^T has rank at most
    // min(users, comparisons)), and the SVD initializations need J singular vectors.
    if (static_cast<std::uint64_t>(cfg_.J) > std::min(train.users, train.comparisons))
      throw InputError(fmt::format(
          "--rank: {} is more than {} has {} (at most min(users, "
          "comparisons) = {} factors)",
          cfg_.J, o_.data,
          train.users < train.comparisons ? fmt::format("users ({})", train.users)
                                          : fmt::format("comparisons ({})", train.comparisons),
          std::min(train.users, train.comparisons)));
  });
  log::info(comm_,
            "fit {}: {} users, {} comparisons, {} training labels{}, J={}, {} ranks x {} threads",
            o_.data, train.users, train.comparisons, train.labels,
            val_ ? fmt::format(", {} validation labels", val_->labels) : "", cfg_.J, comm_.size(),
            cfg_.threads);
}

// The checkpoint to resume from (--resume) and the history it continues, or a fresh start in
// the directory.
void FitRun::find_checkpoint() {
  const std::string init_model = identity_.init_model;
  identity_ = data_identity(comm_, *train_);
  identity_.init_model = init_model;
  if (!o_.ckpt.resume) return ckpt_->start_fresh(o_.overwrite);
  resumed_ = ckpt_->find_resumable(parts_, o_, identity_);
}

void FitRun::open_metrics() {
  if (o_.metrics.empty()) return;
  // A resumed run rewrites the sweeps it continues from (a killed run may have written later
  // ones).
  std::vector<std::string> inputs = {o_.data, o_.out};
  if (o_.init.rfind("model:", 0) == 0) inputs.push_back(o_.init.substr(6));
  metrics_.emplace(o_.metrics, o_.overwrite || o_.ckpt.resume, comm_, "--metrics", inputs);
  std::vector<std::string> lines;
  if (resumed_)
    for (const SweepRecord& r : resumed_->state.history)
      lines.push_back(record_to_json(r, true).dump());
  metrics_->write(lines);
}

FitState FitRun::initial_state() {
  if (warm_) return std::move(warm_->state);
  // (The shared model fixes u_i = 1 and is convex: validate_fit_options made its init random.)
  if (kInitNames.parse(o_.init, "--init") == Init::kRandom)
    return FitState::start(random_factors(comm_, parts_, cfg_));
  return FitState::start(svd_factors());
}

Factors FitRun::svd_factors() {
  SvdConfig& sc = o_.svd;
  sc.J = cfg_.J;
  sc.seed = cfg_.seed;
  sc.init_scale = cfg_.init_scale;
  sc.threads = cfg_.threads;
  const LabelMatrix& train = *train_;
  const double t0 = MPI_Wtime();
  const TruncatedSvd svd = truncated_svd(comm_, train, sc);
  Factors init = factors_from_svd(comm_, train, svd, sc);
  const double seconds = MPI_Wtime() - t0;
  std::string sv;  // the top J + 1 singular values (estimates), to judge the gap
  const std::size_t shown = std::min(svd.spectrum.size(), static_cast<std::size_t>(cfg_.J) + 1);
  for (std::size_t j = 0; j < shown; ++j)
    sv += fmt::format("{}{:.4g}", j ? " " : "", svd.spectrum[j]);
  log::info(comm_,
            "init {}: {:.3f}s ({:.3f}s products, {:.3f}s factorizations), singular values "
            "{}{}, RMS training margin {:.3f}",
            o_.init, seconds, svd.seconds_products, svd.seconds_factorizations, sv,
            svd.spectrum.size() > static_cast<std::size_t>(cfg_.J) ? " (the last: J+1)" : "",
            rms_margin(comm_, train, init));
  if (sc.kind == SvdKind::kRandomized)
    log::info(comm_,
              "init svd: {} power iterations (last change of the top singular values "
              "{:.2g}); {:.3f}s set-up; orthonormalizations: {} CholeskyQR2, {} shifted "
              "CholeskyQR3, {} Householder",
              svd.power_iterations, svd.power_change, svd.seconds_setup, svd.qr_paths[0],
              svd.qr_paths[1], svd.qr_paths[2]);
  return init;
}

void FitRun::log_sweep(const SweepRecord& r) const {
  std::string v;
  if (r.prior) {
    std::string ev;
    for (double e : r.prior->top_eigenvalues) ev += fmt::format(" {:.3g}", e);
    v += fmt::format(" | prior tr {:.4g} eig{}", r.prior->trace, ev);
    // The over-relaxed M-step's safeguard shortened the step.
    if (r.prior_step != 0 && r.prior_step < cfg_.prior_relax)
      v += fmt::format(" (M-step x{:.3g})", r.prior_step);
  }
  if (r.validation)
    v += fmt::format(" | val logloss {:.4f}{} acc {:.4f}{} user-auc {:.4f}", r.validation->logloss,
                     std::isnan(r.calibrated_logloss)
                         ? std::string()
                         : fmt::format(" (calibrated {:.4f}, s {:.3g})", r.calibrated_logloss,
                                       r.calibration_scale),
                     r.validation->accuracy,
                     std::isnan(r.validation->auc) ? std::string()
                                                   : fmt::format(" auc {:.4f}", r.validation->auc),
                     r.validation->user_auc_mean);
  else if (!std::isnan(r.calibrated_logloss))
    v += fmt::format(" | val sample calibrated logloss {:.4f} (s {:.3g}, {} labels)",
                     r.calibrated_logloss, r.calibration_scale, r.monitor_labels);
  log::info(comm_,
            "sweep {:3d}: objective {:.8e} (rel {:.2e}){} train logloss {:.4f}{}{} | "
            "user {:.3f}s comparison {:.3f}s eval {:.3f}s | {:.3g} MB exchanged",
            r.sweep, r.objective, r.rel_change,
            r.extrapolation != 0 ? fmt::format(" from a step {:.3g}", r.extrapolation) : "",
            r.train_logloss,
            std::isnan(r.grad_norm) ? std::string() : fmt::format(" |grad| {:.2e}", r.grad_norm), v,
            r.seconds_user, r.seconds_comparison, r.seconds_eval, r.bytes_exchanged / 1e6);
}

FitHooks FitRun::hooks() {
  FitHooks hooks;
  hooks.on_sweep = [this](const SweepRecord& r) {
    if (metrics_) metrics_->write({record_to_json(r, true).dump()});
    log_sweep(r);
  };
  if (!ckpt_) return hooks;
  hooks.stop_requested = [this, polls = 0L]() mutable {
    before_stop_poll(comm_, ++polls);  // a no-op in `pref` (solver/cli/stop_poll_hook.hpp)
    const int sig = signals::stop_requested(comm_);
    if (sig && !stop_signal_)
      log::info(comm_, "received {}: finishing the half-step, writing a checkpoint",
                signals::name(sig));
    stop_signal_ = sig;
    return sig != 0;
  };
  hooks.on_state = [this](const FitState& st, bool stopping, Exchange exchange) {
    if (!stopping && (st.user_half_done || !ckpt_->due(st.sweep))) return;
    ckpt_->write(st, o_, identity_, parts_, exchange);
  };
  return hooks;
}

// --calibrate validation: the probabilities' scale s fitted on the validation split with the
// returned state (solver/eval/calibration.hpp), on the margins the fit scored at its end.
Calibration FitRun::calibrate(const FitResult& res) {
  Calibration cal;
  if (kCalibrateOnNames.parse(o_.calibrate, "--calibrate") == CalibrateOn::kNone) return cal;
  if (!res.validation_scored) {
    log::info(comm_,
              "calibration: {} has no validation labels; probabilities sigmoid(u.z) as fitted",
              o_.data);
    return cal;
  }
  const double t0 = MPI_Wtime();
  // Newton's method from the scale the fit's monitor found for this state (on its sample).
  const double start = res.final_record.calibration_scale;
  cal = calibrate_scores(comm_, res.validation_margins, res.validation_labels,
                         std::isfinite(start) && start > 0 ? start : 1.0);
  // Too few labels to estimate s is a warning; a scale the labels do not tell from 1 is not.
  if (!cal.kept.empty() && cal.labels < kCalibrationMinLabels)
    log::warn(comm_, "calibration: {}; probabilities sigmoid(u.z) as fitted (s = 1)", cal.kept);
  else if (!cal.kept.empty())
    log::info(comm_, "calibration: {}; probabilities sigmoid(u.z) as fitted (s = 1)", cal.kept);
  log::info(comm_,
            "calibration: probabilities sigmoid(s u.z) with s = {:.6g} ({} Newton steps, {:.3f}s): "
            "validation log-loss {:.4f} -> {:.4f} over {} labels",
            cal.scale, cal.newton_steps, MPI_Wtime() - t0, cal.logloss_before, cal.logloss_after,
            cal.labels);
  return cal;
}

void FitRun::write_model(const FitResult& res, const Calibration& cal) {
  const SweepRecord& last = res.history.back();
  const SweepRecord& final = res.final_record;
  // The verdict of the state written (the best one under the predictions rule).
  const std::string chance =
      chance_verdict(final.train_logloss, final.validation ? &*final.validation : nullptr);
  io::ModelHeader hd;
  hd.users = data_->users();
  hd.comparisons = data_->comparisons();
  hd.rank = static_cast<std::uint32_t>(cfg_.J);
  hd.kind = cfg_.shared ? io::ModelKind::kShared : io::ModelKind::kFactor;
  hd.attributes = recorded(o_, /*model=*/true);
  hd.attributes.merge(io::Attributes{
      {"sweeps", static_cast<std::int64_t>(last.sweep)},
      {"state_sweep", static_cast<std::int64_t>(res.state_sweep)},
      {"converged", static_cast<std::int64_t>(res.converged)},
      {"at_chance", static_cast<std::int64_t>(!chance.empty())},
      {"stop_reason", res.reason},
      {"objective", final.objective},
      {"grad_norm", final.grad_norm},
      {"exchange", std::string(exchange_name(res.exchange))},
      {"mpi_ranks", static_cast<std::int64_t>(comm_.size())},
      {"calibration", std::string(kCalibrateOnNames.name(cal.labels ? CalibrateOn::kValidation
                                                                    : CalibrateOn::kNone))},
      {"calibration_scale", cal.scale}});
  hd.history_json = history_lines(res.history, /*with_timings=*/false);
  if (res.prior) {
    hd.prior_mean = res.prior->mean;
    hd.prior_covariance = res.prior->covariance;
    hd.prior_users = res.prior->users;
  }
  // The item model's parameters (--items responses|embeddings).
  std::optional<io::ModelItems> items;
  const Items kind = kItemsNames.parse(o_.items, "--items");
  if (kind != Items::kComparisons)
    items = io::ModelItems{kind == Items::kResponses ? "response_factors" : "embedding_head",
                           res.item_rows, res.item_params};
  std::optional<io::ModelItems> residual;  // --residual
  if (cfg_.item.residual)
    residual = io::ModelItems{"embedding_residual", res.residual_rows, res.residual_params};
  io::write_model(out_->temp_path(), comm_, hd, parts_.users, res.factors.U, parts_.comparisons,
                  res.factors.Z, items ? &*items : nullptr, residual ? &*residual : nullptr);
  out_->commit();
  if (chance.empty() && collapsed(final.train_logloss))
    log::warn(comm_,
              "the factors collapsed towards 0: the training log-loss is {:.4f}, a coin's "
              "0.6931, so the uncalibrated predictions are all about 1/2 (the validation AUC "
              "says they still rank; calibration scale {:.4g}): the ridge --mu-z or --mu-w is "
              "too strong for these labels (docs/design.md, \"Item models\")",
              final.train_logloss, cal.scale);
  std::string quality;
  if (final.validation)
    quality = fmt::format(", validation log-loss {:.4f} AUC {:.4f}", final.validation->logloss,
                          final.validation->auc);
  if (!chance.empty()) {
    log::warn(comm_,
              "the fit ends at chance: {}. Its predictions are worth no more than a coin's; see "
              "docs/design.md, \"Item models\" and \"Where it falls short\"",
              chance);
    log::info(comm_,
              "ended at chance after {} sweeps ({}): the state of sweep {}: objective {:.8e}, "
              "|grad| {:.3e}{}; wrote {}",
              last.sweep, res.reason, res.state_sweep, final.objective, final.grad_norm, quality,
              out_->path());
    return;
  }
  log::info(
      comm_,
      "{} after {} sweeps ({}): the state of sweep {}: objective {:.8e}, |grad| {:.3e}{}; wrote {}",
      res.converged ? "converged" : "stopped", last.sweep, res.reason, res.state_sweep,
      final.objective, final.grad_norm, quality, out_->path());
}

}  // namespace

Runner add_fit(CLI::App& app) {
  auto o = std::make_shared<FitOptions>();
  add_fit_options(app, *o);
  return [o](const mpi::Comm& comm) { return FitRun(comm, *o).run(); };
}

}  // namespace pref::cli
