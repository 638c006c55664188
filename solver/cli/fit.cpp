// pref fit: the alternating Newton fit of a label file, written as a model file.
#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>
#include <sstream>
#include <nlohmann/json.hpp>

#include "io/model_file.hpp"
#include "io/output_file.hpp"
#include "solver/base/log.hpp"
#include "solver/base/signals.hpp"
#include "solver/cli/checkpoint.hpp"
#include "solver/cli/commands.hpp"
#include "solver/cli/data.hpp"
#include "solver/cli/fit_items.hpp"
#include "solver/cli/stop_poll_hook.hpp"
#include "solver/fit.hpp"
#include "solver/svd_init.hpp"

namespace pref::cli {

namespace {
struct FitOptions {
  std::string data, out, metrics, init = "svd", model = "factor", exchange = "auto";
  std::string svd_qr = "cholesky";
  std::string duplicates = "error";
  std::string prior;  // --prior; empty: population, or ridge when --mu-u is given
  CLI::Option* mu_u = nullptr;
  CLI::Option* extrapolate = nullptr;
  FitConfig cfg;
  SvdConfig svd;  // --init svd*: kind, J and seed are filled from the fit options
  bool overwrite = false, drop_ties = false;
  CheckpointOptions ckpt;  // --checkpoint-dir, --checkpoint-every, --keep-checkpoints, --resume
  FitItemsOption items;    // --items, --mu-w (solver/cli/fit_items.hpp)
};

nlohmann::json record_json(const SweepRecord& r, bool with_timings) {
  nlohmann::json j = {{"sweep", r.sweep},
                      {"objective", r.objective},
                      {"rel_change", r.rel_change},
                      {"train_logloss", r.train_logloss},
                      {"grad_norm", r.grad_norm},
                      {"bytes_exchanged", r.bytes_exchanged}};
  if (r.prior) j["prior"] = {{"trace", r.prior->trace}, {"eigenvalues", r.prior->top_eigenvalues}};
  if (r.validation) {
    const SplitMetrics& v = *r.validation;
    auto num = [](double x) { return std::isnan(x) ? nlohmann::json(nullptr) : nlohmann::json(x); };
    j["validation"] = {{"labels", v.labels},        {"logloss", num(v.logloss)},
                       {"accuracy", num(v.accuracy)}, {"auc", num(v.auc)},
                       {"user_auc_mean", num(v.user_auc_mean)}};
  }
  if (with_timings) {
    j["seconds_user"] = r.seconds_user;
    j["seconds_comparison"] = r.seconds_comparison;
    j["seconds_eval"] = r.seconds_eval;
  }
  return j;
}

// The inverse of record_json (for the history of a checkpoint); null metrics are NaN.
SweepRecord record_from_json(const nlohmann::json& j) {
  auto num = [](const nlohmann::json& x) { return x.is_number() ? x.get<double>() : NAN; };
  SweepRecord r;
  r.sweep = j.at("sweep").get<int>();
  r.objective = num(j.at("objective"));
  r.rel_change = num(j.at("rel_change"));
  r.train_logloss = num(j.at("train_logloss"));
  r.grad_norm = num(j.at("grad_norm"));
  r.bytes_exchanged = j.at("bytes_exchanged").get<std::uint64_t>();
  if (j.contains("prior")) {
    PriorSummary p;
    p.trace = num(j["prior"].at("trace"));
    p.top_eigenvalues = j["prior"].at("eigenvalues").get<std::vector<double>>();
    r.prior = p;
  }
  if (j.contains("validation")) {
    const auto& v = j["validation"];
    SplitMetrics m;
    m.labels = v.at("labels").get<std::uint64_t>();
    m.logloss = num(v.at("logloss"));
    m.accuracy = num(v.at("accuracy"));
    m.auc = num(v.at("auc"));
    m.user_auc_mean = num(v.at("user_auc_mean"));
    r.validation = m;
  }
  r.seconds_user = j.value("seconds_user", 0.0);
  r.seconds_comparison = j.value("seconds_comparison", 0.0);
  r.seconds_eval = j.value("seconds_eval", 0.0);
  return r;
}

// The options of the command line that the model file records (see finished_output).
io::Attributes finished_attributes(const FitOptions& o) {
  const FitConfig& c = o.cfg;
  return {{"data", o.data},
          {"init", o.init},
          {"mu_u", c.mu_u},
          {"mu_z", c.mu_z},
          {"tol", c.tol},
          {"seed", static_cast<std::int64_t>(c.seed)},
          {"newton_steps", static_cast<std::int64_t>(c.newton_steps)},
          {"extrapolate", static_cast<std::int64_t>(c.extrapolate)},
          {"max_sweeps", static_cast<std::int64_t>(c.max_sweeps)},
          {"drop_ties", static_cast<std::int64_t>(o.drop_ties)}};
}

nlohmann::json without_timings(nlohmann::json j) {
  for (const char* k : {"seconds_user", "seconds_comparison", "seconds_eval"}) j.erase(k);
  return j;
}
}  // namespace

Runner add_fit(CLI::App& app) {
  auto o = std::make_shared<FitOptions>();
  FitConfig& c = o->cfg;
  app.add_option("--data", o->data, "Label file (HDF5) to fit")->required();
  app.add_option("--rank", c.J, "Number of factors J")->required();
  app.add_option("--init", o->init,
                 "Initialization: svd (randomized truncated SVD of the +-1 label matrix, "
                 "scaled to RMS margin 1), svd-exact (dense ScaLAPACK SVD, small problems), "
                 "svd-impute (the paper's 0.5-imputation rounds, dense), random")
      ->check(CLI::IsMember({"svd", "svd-exact", "svd-impute", "random"}));
  app.add_option("--svd-oversampling", o->svd.oversampling,
                 "--init svd: sketch columns beyond the rank");
  app.add_option("--svd-power-iterations", o->svd.power_iterations,
                 "--init svd: most power iterations of the range finder");
  app.add_option("--svd-power-tol", o->svd.power_tol,
                 "--init svd: end the power iterations when the top J singular value estimates "
                 "change by less than this (relative) in one; 0: always --svd-power-iterations")
      ->check(finite_number());
  app.add_option("--svd-impute-rounds", o->svd.impute_rounds,
                 "--init svd-impute: SVD-reconstruct-impute rounds");
  app.add_option("--svd-qr", o->svd_qr,
                 "--init svd: tall-skinny orthonormalization: cholesky (CholeskyQR2, shifted "
                 "CholeskyQR3 and ScaLAPACK Householder as fallbacks) or householder (always "
                 "ScaLAPACK pdgeqrf + pdorgqr)")
      ->check(CLI::IsMember({"cholesky", "householder"}));
  app.add_option("--max-sweeps", c.max_sweeps, "Most alternating sweeps");
  app.add_option("--tol", c.tol, "Stop when the relative objective change is below this")
      ->check(finite_number());
  app.add_option("--seed", c.seed, "Random seed (initialization)");
  app.add_option("--prior", o->prior,
                 "Users' regularization: population (the default: a prior N(m, Sigma) learned "
                 "from all users, docs/design.md) or ridge (a fixed --mu-u); --mu-u given "
                 "without --prior selects ridge")
      ->check(CLI::IsMember({"population", "ridge"}));
  o->mu_u = app.add_option("--mu-u", c.mu_u,
                           "--prior ridge: L2 regularization of user weights; --prior "
                           "population: the prior N(0, I / mu_u) of the first user half-step")
                ->check(finite_number());
  app.add_option("--mu-z", c.mu_z, "L2 regularization of comparison factors")
      ->check(finite_number());
  app.add_option("--newton-steps", c.newton_steps, "Newton steps per row per half-step");
  o->extrapolate = app.add_flag(
      "--extrapolate,!--no-extrapolate", c.extrapolate,
      "Extrapolated sweeps (the default with --prior ridge): push each half-step's result along "
      "its last change, with an adaptive factor (fewer sweeps to tolerance); --no-extrapolate "
      "(the default with --prior population, where it does not pay: docs/design.md): plain "
      "alternating sweeps");
  app.add_option("--exchange", o->exchange,
                 "Comparison half-step exchange: ship factor rows, reduce partial sums, or let "
                 "the cost model choose")
      ->check(CLI::IsMember({"auto", "ship", "reduce"}));
  app.add_option("--model", o->model,
                 "factor: personalized U and Z; shared: one Bradley-Terry score per comparison "
                 "for all users (the paper's standard RLHF baseline)")
      ->check(CLI::IsMember({"factor", "shared"}));
  app.add_flag("--drop-ties", o->drop_ties, "Drop training labels of 0.5 (as the paper does)");
  o->items.add(app);
  app.add_option("--threads", c.threads, "OpenMP threads per MPI rank");
  app.add_option("--net-bandwidth", c.net_bytes_per_second,
                 "Cost model: network bytes per second per rank (chooses the exchange pattern)")
      ->check(finite_number());
  app.add_option("--init-scale", c.init_scale, "Random init: standard deviation of entries")
      ->check(finite_number());
  app.add_option("--duplicates", o->duplicates, "Two labels of one (user, comparison)")
      ->check(CLI::IsMember({"error", "mean"}));
  app.add_option("--metrics", o->metrics,
                 "Write one JSON line per sweep to this file (an existing file is replaced only "
                 "with --overwrite, or with --resume, which rewrites the sweeps it continues "
                 "from)");
  app.add_option("--checkpoint-dir", o->ckpt.dir,
                 "Write checkpoints into this directory (created if needed); SIGTERM and SIGUSR1 "
                 "then make the fit checkpoint and exit with code 3 (docs/checkpoints.md)");
  app.add_option("--checkpoint-every", o->ckpt.every, "Sweeps between checkpoints");
  app.add_option("--keep-checkpoints", o->ckpt.keep, "Checkpoints kept (the newest)");
  app.add_flag("--resume", o->ckpt.resume,
               "Continue from the newest valid checkpoint of --checkpoint-dir; start fresh when "
               "there is none");
  app.add_flag("--overwrite", o->overwrite,
               "Replace an existing output file (and, without --resume, discard the checkpoints "
               "of an earlier run in --checkpoint-dir)");
  app.add_option("--out", o->out, "Output model file (HDF5)")->required();
  return [o](const mpi::Comm& comm) {
    FitConfig& cfg = o->cfg;
    mpi::agree(comm, [&] {
      cfg.shared = o->model == "shared";
      if (cfg.shared) cfg.J = 1;
      if (cfg.J < 1 || cfg.J > 4096) throw InputError(fmt::format("--rank: {} outside [1, 4096]", cfg.J));
      if (cfg.max_sweeps < 0) throw InputError("--max-sweeps: must be >= 0");
      if (!(cfg.tol >= 0)) throw InputError("--tol: must be >= 0");
      if (!(cfg.mu_u >= 0) || !(cfg.mu_z >= 0)) throw InputError("--mu-u, --mu-z: must be >= 0");
      if (o->prior.empty()) o->prior = o->mu_u->count() ? "ridge" : "population";
      if (cfg.shared) o->prior = "ridge";  // u_i = 1: nothing to regularize
      cfg.prior = o->prior == "ridge" ? UserPrior::kRidge : UserPrior::kPopulation;
      if (!o->extrapolate->count()) cfg.extrapolate = cfg.prior == UserPrior::kRidge;
      if (cfg.prior == UserPrior::kPopulation && !(cfg.mu_u > 0))
        throw InputError(fmt::format("--mu-u: {} with --prior population; the first user "
                                     "half-step's prior N(0, I / mu_u) needs mu_u > 0",
                                     cfg.mu_u));
      if (cfg.newton_steps < 1) throw InputError("--newton-steps: must be >= 1");
      if (cfg.threads < 1) throw InputError("--threads: must be >= 1");
      if (o->svd.oversampling < 0) throw InputError("--svd-oversampling: must be >= 0");
      if (o->svd.power_iterations < 0) throw InputError("--svd-power-iterations: must be >= 0");
      if (!(o->svd.power_tol >= 0)) throw InputError("--svd-power-tol: must be >= 0");
      if (o->svd.impute_rounds < 0) throw InputError("--svd-impute-rounds: must be >= 0");
      o->svd.qr = o->svd_qr == "householder" ? scalapack::TallSkinnyQr::kHouseholder
                                             : scalapack::TallSkinnyQr::kCholesky;
      o->svd.kind = o->init == "svd-exact"    ? SvdKind::kExact
                    : o->init == "svd-impute" ? SvdKind::kImpute
                                              : SvdKind::kRandomized;
      cfg.exchange = o->exchange == "ship"     ? Exchange::kShip
                     : o->exchange == "reduce" ? Exchange::kReduce
                                               : Exchange::kAuto;
      if (o->ckpt.dir.empty() && o->ckpt.resume)
        throw InputError("--resume: needs --checkpoint-dir");
      if (o->ckpt.every < 1) throw InputError("--checkpoint-every: must be >= 1");
      if (o->ckpt.keep < 1) throw InputError("--keep-checkpoints: must be >= 1");
      o->items.check(cfg, o->ckpt.dir, o->extrapolate->count() > 0, o->exchange);
    });
    // Checkpoints: stop signals set a flag from now on (docs/checkpoints.md).
    std::optional<Checkpointer> ckpt;
    if (!o->ckpt.dir.empty()) {
      signals::install_stop_handlers();
      ckpt.emplace(o->ckpt, comm);
    }
    if (o->ckpt.resume && finished_output(comm, o->out, o->overwrite, cfg.J, finished_attributes(*o)))
      return 0;
    io::AtomicOutput out(o->out, o->overwrite, comm, "--out", {o->data});
    const io::LabelFile data = io::LabelFile::open(o->data, comm);
    o->items.load(data, cfg, comm);
    LoadOptions lo{parse_duplicates(o->duplicates), o->drop_ties};
    LabelMatrix train = load_split(data, io::Split::kTrain, comm, std::nullopt, lo);
    std::optional<LabelMatrix> val;
    if (data.has(io::Split::kValidation))
      val = load_split(data, io::Split::kValidation, comm, train.parts,
                       {lo.duplicates, false});
    const Partitions parts = train.parts;
    mpi::agree(comm, [&] {
      // More factors than users or comparisons cannot be told apart (U Z^T has rank at most
      // min(users, comparisons)), and the SVD initializations need J singular vectors.
      if (static_cast<std::uint64_t>(cfg.J) > std::min(train.users, train.comparisons))
        throw InputError(fmt::format("--rank: {} is more than {} has {} (at most min(users, "
                                     "comparisons) = {} factors)",
                                     cfg.J, o->data,
                                     train.users < train.comparisons
                                         ? fmt::format("users ({})", train.users)
                                         : fmt::format("comparisons ({})", train.comparisons),
                                     std::min(train.users, train.comparisons)));
    });
    log::info(comm, "fit {}: {} users, {} comparisons, {} training labels{}, J={}, {} ranks x {} threads",
              o->data, train.users, train.comparisons, train.labels,
              val ? fmt::format(", {} validation labels", val->labels) : "", cfg.J, comm.size(),
              cfg.threads);
    // The run's identity, and the checkpoint to resume from.
    RunIdentity id;
    std::optional<io::Checkpoint> resumed;
    if (ckpt) {
      id.J = cfg.J;
      id.model = o->model;
      id.init = cfg.shared ? "random" : o->init;
      id.exchange = o->exchange;
      id.duplicates = o->duplicates;
      id.mu_u = cfg.mu_u;
      id.mu_z = cfg.mu_z;
      id.tol = cfg.tol;
      id.init_scale = cfg.init_scale;
      id.seed = cfg.seed;
      id.newton_steps = cfg.newton_steps;
      id.max_sweeps = cfg.max_sweeps;
      id.drop_ties = o->drop_ties;
      id.extrapolate = cfg.extrapolate;
      id.prior = o->prior;
      id.data = o->data;
      id.users = train.users;
      id.comparisons = train.comparisons;
      id.train_labels = train.labels;
      id.train_checksum = training_checksum(comm, train);
      if (o->ckpt.resume) resumed = ckpt->find_resumable(parts, id);
      else ckpt->start_fresh(o->overwrite);
    }
    // Every completed sweep's record as JSON with timings (metrics, checkpoints); the model file
    // stores them without.
    std::vector<nlohmann::json> history;
    FitStart start;
    if (resumed) {
      std::istringstream in(resumed->header.history_json);
      for (std::string line; std::getline(in, line);)
        if (!line.empty()) history.push_back(nlohmann::json::parse(line));
      for (const auto& j : history) start.history.push_back(record_from_json(j));
      // The tolerance test's reference, bitwise.
      start.history.back().objective = std::get<double>(resumed->header.attributes.at("objective"));
      start.sweep = static_cast<int>(resumed->header.sweep);
      start.user_half_done = resumed->header.user_half_done;
      if (cfg.extrapolate) {
        start.u_prev = std::move(resumed->U_prev);
        start.z_prev = std::move(resumed->Z_prev);
        start.extrapolation = extrapolation_of(*resumed);
      }
      if (start.user_half_done)
        start.pending = record_from_json(nlohmann::json::parse(resumed->header.pending_json));
      start.prior = prior_of(*resumed);
    }
    std::optional<io::LineOutput> metrics;
    if (!o->metrics.empty()) {
      // A resumed run rewrites the sweeps it continues from (a killed run may have written
      // later ones).
      metrics.emplace(o->metrics, o->overwrite || o->ckpt.resume, comm, "--metrics",
                      std::vector<std::string>{o->data, o->out});
      std::vector<std::string> lines;
      for (const auto& j : history) lines.push_back(j.dump());
      metrics->write(lines);
    }
    Factors init;
    if (resumed) {
      init.J = cfg.J;
      init.U = std::move(resumed->U);
      init.Z = std::move(resumed->Z);
    } else if (o->init == "random" || cfg.shared) {
      // The shared model fixes u_i = 1 and is convex: it starts from random_factors always.
      init = random_factors(comm, parts, cfg);
    } else {
      SvdConfig& sc = o->svd;
      sc.J = cfg.J;
      sc.seed = cfg.seed;
      sc.init_scale = cfg.init_scale;
      sc.threads = cfg.threads;
      const double t0 = MPI_Wtime();
      const TruncatedSvd svd = truncated_svd(comm, train, sc);
      init = factors_from_svd(comm, train, svd, sc);
      const double seconds = MPI_Wtime() - t0;
      std::string sv;  // the top J + 1 singular values (estimates), to judge the gap
      const std::size_t shown = std::min(svd.spectrum.size(), static_cast<std::size_t>(cfg.J) + 1);
      for (std::size_t j = 0; j < shown; ++j)
        sv += fmt::format("{}{:.4g}", j ? " " : "", svd.spectrum[j]);
      log::info(comm,
                "init {}: {:.3f}s ({:.3f}s products, {:.3f}s factorizations), singular values "
                "{}{}, RMS training margin {:.3f}",
                o->init, seconds, svd.seconds_products, svd.seconds_factorizations, sv,
                svd.spectrum.size() > static_cast<std::size_t>(cfg.J) ? " (the last: J+1)" : "",
                rms_margin(comm, train, init));
      if (sc.kind == SvdKind::kRandomized)
        log::info(comm,
                  "init svd: {} power iterations (last change of the top singular values "
                  "{:.2g}); {:.3f}s set-up; orthonormalizations: {} CholeskyQR2, {} shifted "
                  "CholeskyQR3, {} Householder",
                  svd.power_iterations, svd.power_change, svd.seconds_setup, svd.qr_paths[0],
                  svd.qr_paths[1], svd.qr_paths[2]);
    }
    auto on_sweep = [&](const SweepRecord& r) {
      history.push_back(record_json(r, true));
      if (metrics) metrics->write({history.back().dump()});
      std::string v;
      if (r.prior) {
        std::string ev;
        for (double e : r.prior->top_eigenvalues) ev += fmt::format(" {:.3g}", e);
        v += fmt::format(" | prior tr {:.4g} eig{}", r.prior->trace, ev);
      }
      if (r.validation)
        v += fmt::format(" | val logloss {:.4f} acc {:.4f} auc {:.4f} user-auc {:.4f}",
                        r.validation->logloss, r.validation->accuracy, r.validation->auc,
                        r.validation->user_auc_mean);
      log::info(comm, "sweep {:3d}: objective {:.8e} (rel {:.2e}) train logloss {:.4f} |grad| {:.2e}{} | "
                      "user {:.3f}s comparison {:.3f}s eval {:.3f}s | {:.3g} MB exchanged",
                r.sweep, r.objective, r.rel_change, r.train_logloss, r.grad_norm, v, r.seconds_user,
                r.seconds_comparison, r.seconds_eval, r.bytes_exchanged / 1e6);
    };
    FitHooks hooks;
    hooks.on_sweep = on_sweep;
    int stop_signal = 0;
    if (ckpt) {
      hooks.stop_requested = [&, polls = 0L]() mutable {
        before_stop_poll(comm, ++polls);  // a no-op in `pref` (solver/cli/stop_poll_hook.hpp)
        const int sig = signals::stop_requested(comm);
        if (sig && !stop_signal)
          log::info(comm, "received {}: finishing the half-step, writing a checkpoint",
                    signals::name(sig));
        stop_signal = sig;
        return sig != 0;
      };
      hooks.on_state = [&](const FitState& st) {
        if (!st.stopping && (st.user_half_done || !ckpt->due(st.sweep))) return;
        std::string hist;
        for (const auto& h : history) hist += h.dump() + "\n";
        ckpt->write(st, id, st.exchange, history.back().at("objective").get<double>(), hist,
                    st.pending ? record_json(*st.pending, true).dump() : "", parts);
      };
    }
    FitResult res = fit(comm, std::move(train), std::move(val), std::move(init), cfg, start, hooks);
    if (res.stopped) {
      log::info(comm, "stopped by {} after a checkpoint: exit code {} (safe to requeue; resume "
                      "with --resume)",
                signals::name(stop_signal), kExitStoppedBySignal);
      return kExitStoppedBySignal;
    }
    const SweepRecord& last = res.history.back();
    io::ModelHeader hd;
    hd.users = data.users();
    hd.comparisons = data.comparisons();
    hd.rank = static_cast<std::uint32_t>(cfg.J);
    hd.kind = cfg.shared ? "shared" : "factor";
    hd.attributes = {{"data", o->data},
                     {"init", o->init},
                     {"mu_u", cfg.mu_u},
                     {"mu_z", cfg.mu_z},
                     {"tol", cfg.tol},
                     {"seed", static_cast<std::int64_t>(cfg.seed)},
                     {"newton_steps", static_cast<std::int64_t>(cfg.newton_steps)},
                     {"extrapolate", static_cast<std::int64_t>(cfg.extrapolate)},
                     {"prior", o->prior},
                     {"max_sweeps", static_cast<std::int64_t>(cfg.max_sweeps)},
                     {"sweeps", static_cast<std::int64_t>(last.sweep)},
                     {"converged", static_cast<std::int64_t>(res.converged)},
                     {"objective", last.objective},
                     {"grad_norm", last.grad_norm},
                     {"drop_ties", static_cast<std::int64_t>(o->drop_ties)},
                     {"exchange", std::string(exchange_name(res.exchange))},
                     {"mpi_ranks", static_cast<std::int64_t>(comm.size())}};
    std::string hist;
    for (auto& h : history) hist += without_timings(h).dump() + "\n";
    hd.history_json = hist;
    if (res.prior) {
      hd.prior_mean = res.prior->mean;
      hd.prior_covariance = res.prior->covariance;
      hd.prior_users = res.prior->users;
    }
    io::write_model(out.temp_path(), comm, hd, parts.users, res.factors.U, parts.comparisons,
                    res.factors.Z, o->items.model(hd, res));
    out.commit();
    log::info(comm, "{} after {} sweeps: objective {:.8e}, |grad| {:.3e}; wrote {}",
              res.converged ? "converged" : "stopped at the sweep limit", last.sweep,
              last.objective, last.grad_norm, out.path());
    return 0;
  };
}

}  // namespace pref::cli
