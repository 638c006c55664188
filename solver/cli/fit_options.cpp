#include "solver/cli/fit_options.hpp"

#include <fmt/core.h>

#include <bit>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "io/model_file.hpp"
#include "solver/base/error.hpp"
#include "solver/cli/commands.hpp"
#include "solver/eval/calibration.hpp"

namespace pref::cli {

namespace {

// Where an option's value lives in FitOptions (for a FitOptions or a const one).
template <class T>
auto at(T FitOptions::*m) {
  return [m](auto& o) -> auto& {
    return o.*m;
  };
}
template <class T>
auto at(T FitConfig::*m) {
  return [m](auto& o) -> auto& {
    return o.cfg.*m;
  };
}
// A member of a FitConfig member (FitConfig::item's fields).
template <class S, class T>
auto at(S FitConfig::*outer, T S::*m) {
  return [ outer, m ](auto& o) -> auto& {
    return (o.cfg.*outer).*m;
  };
}
template <class T>
auto at(T SvdConfig::*m) {
  return [m](auto& o) -> auto& {
    return o.svd.*m;
  };
}
template <class T>
auto at(T CheckpointOptions::*m) {
  return [m](auto& o) -> auto& {
    return o.ckpt.*m;
  };
}

// A value as an attribute (numbers as int64 or double, flags as 0/1, seeds with all 64 bits),
// and an attribute as the command line writes the value.
template <class T>
io::AttributeValue to_attribute(const T& v) {
  if constexpr (std::is_same_v<T, std::uint64_t>)
    return std::bit_cast<std::int64_t>(v);
  else if constexpr (std::is_integral_v<T>)
    return static_cast<std::int64_t>(v);
  else
    return v;
}
template <class T>
std::string shown(const io::AttributeValue& a) {
  if constexpr (std::is_same_v<T, bool>)
    return std::get<std::int64_t>(a) ? "on" : "off";
  else if constexpr (std::is_same_v<T, std::uint64_t>)
    return std::to_string(std::bit_cast<std::uint64_t>(std::get<std::int64_t>(a)));
  else if constexpr (std::is_integral_v<T>)
    return std::to_string(std::get<std::int64_t>(a));
  else if constexpr (std::is_same_v<T, double>)
    return fmt::format("{}", std::get<double>(a));
  else
    return std::get<std::string>(a);
}

// One entry of the table, in the order FitField's fields are written.
struct Spec {
  const char* option;
  const char* help;
  const char* attribute = "";
  Role role = Role::kLocal;
  bool in_model = false;
  bool file_rank = false;
  std::optional<io::AttributeValue> absent = std::nullopt;
  const char* resume_note = "";
  const char* negation = nullptr;  // a flag's "off" spelling
  bool required = false;
  std::vector<CLI::Validator> checks = {};
  std::optional<double> at_least = std::nullopt, at_most = std::nullopt;
  std::optional<double> above = std::nullopt;  // an exclusive lower bound (a ridge that must bite)
};

template <class Member>
FitField field(Member member, Spec s) {
  using T = std::remove_cvref_t<decltype(member(std::declval<FitOptions&>()))>;
  FitField f;
  f.option = s.option;
  f.attribute = s.attribute;
  f.role = s.role;
  f.in_model = s.in_model;
  f.file_rank = s.file_rank;
  f.absent = s.absent;
  f.resume_note = s.resume_note;
  f.add = [member, s](CLI::App& app, FitOptions& o) {
    CLI::Option* opt;
    if constexpr (std::is_same_v<T, bool>)
      opt = app.add_flag(s.negation ? fmt::format("{},!{}", s.option, s.negation) : s.option,
                         member(o), s.help);
    else
      opt = app.add_option(s.option, member(o), s.help);
    if (s.required) opt->required();
    for (const CLI::Validator& v : s.checks) opt->check(v);
    return opt;
  };
  if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) {
    f.check = [member, s](const FitOptions& o) -> std::optional<std::string> {
      const double v = static_cast<double>(member(o));
      if (s.at_most && !(v >= *s.at_least && v <= *s.at_most))
        return fmt::format("{}: {} outside [{}, {}]", s.option, v, *s.at_least, *s.at_most);
      if (s.at_least && !(v >= *s.at_least))
        return fmt::format("{}: {} must be >= {}", s.option, v, *s.at_least);
      if (s.above && !(v > *s.above))
        return fmt::format("{}: {} must be > {}", s.option, v, *s.above);
      return std::nullopt;
    };
  }
  f.value = [member](const FitOptions& o) { return to_attribute(member(o)); };
  f.show = shown<T>;
  f.type = to_attribute(T{}).index();
  return f;
}

}  // namespace

bool FitOptions::given(const std::string& option) const {
  auto it = parsed.find(option);
  return it != parsed.end() && it->second->count() > 0;
}

const std::vector<FitField>& fit_fields() {
  using R = Role;
  static const std::vector<FitField> fields = {
      field(at(&FitOptions::data),
            {.option = "--data",
             .help = "Label file (HDF5) to fit",
             .attribute = "data",
             // A copy or a move is the same data: the checkpoint's data identity (sizes and a
             // checksum of the training labels) is what must match.
             .role = R::kVariable,
             .in_model = true,
             .resume_note = "same content",
             .required = true}),
      field(at(&FitOptions::model),
            {.option = "--model",
             .help = "factor: personalized U and Z; shared: one Bradley-Terry score per "
                     "comparison for all users (the paper's standard RLHF baseline)",
             .attribute = "model",
             .role = R::kIdentity,
             .checks = {one_of(io::kModelKindNames)}}),
      field(at(&FitConfig::J), {.option = "--rank",
                                .help = "Number of factors J",
                                .attribute = "rank",
                                .role = R::kIdentity,
                                .file_rank = true,
                                .required = true,
                                .at_least = 1,
                                .at_most = 4096}),
      field(at(&FitOptions::init),
            {.option = "--init",
             .help = "Initialization: svd (randomized truncated SVD of the +-1 label matrix, "
                     "scaled to RMS margin 1), svd-exact (dense ScaLAPACK SVD, small problems), "
                     "svd-impute (the paper's 0.5-imputation rounds, dense), random, or "
                     "model:PATH (a warm start from a model of the same J whose users and "
                     "comparisons are the first ones of --data; docs/design.md, \"Warm start\")",
             .attribute = "init",
             .role = R::kIdentity,
             .in_model = true,
             .checks = {CLI::Validator(
                 [](std::string& v) -> std::string {
                   if (kInitNames.find(v)) return "";
                   if (v.rfind("model:", 0) == 0 && v.size() > 6) return "";
                   return v + " not in {" + kInitNames.list() + ", model:PATH}";
                 },
                 "svd|svd-exact|svd-impute|random|model:PATH")}}),
      field(at(&SvdConfig::oversampling), {.option = "--svd-oversampling",
                                           .help = "--init svd: sketch columns beyond the rank",
                                           .at_least = 0}),
      field(at(&SvdConfig::power_iterations),
            {.option = "--svd-power-iterations",
             .help = "--init svd: most power iterations of the range finder",
             .at_least = 0}),
      field(at(&SvdConfig::power_tol),
            {.option = "--svd-power-tol",
             .help = "--init svd: end the power iterations when the top J singular value "
                     "estimates change by less than this (relative) in one; 0: always "
                     "--svd-power-iterations",
             .checks = {finite_number()},
             .at_least = 0}),
      field(at(&SvdConfig::impute_rounds),
            {.option = "--svd-impute-rounds",
             .help = "--init svd-impute: SVD-reconstruct-impute rounds",
             .at_least = 0}),
      field(at(&FitOptions::svd_qr),
            {.option = "--svd-qr",
             .help = "--init svd: tall-skinny orthonormalization: cholesky (CholeskyQR2, "
                     "shifted CholeskyQR3 and ScaLAPACK Householder as fallbacks) or householder "
                     "(always ScaLAPACK pdgeqrf + pdorgqr)",
             .checks = {one_of(scalapack::kTallSkinnyQrNames)}}),
      field(at(&FitConfig::max_sweeps), {.option = "--max-sweeps",
                                         .help = "Most alternating sweeps",
                                         .attribute = "max_sweeps",
                                         .role = R::kVariable,
                                         .in_model = true,
                                         .at_least = 0}),
      field(at(&FitConfig::tol), {.option = "--tol",
                                  .help = "Stop when the relative objective change is below this",
                                  .attribute = "tol",
                                  .role = R::kVariable,
                                  .in_model = true,
                                  .checks = {finite_number()},
                                  .at_least = 0}),
      field(at(&FitOptions::stop),
            {.option = "--stop",
             .help = "When the sweeps end: predictions (when the validation log-loss has not "
                     "improved by more than --stop-tol for --patience sweeps, keeping the best "
                     "state; without a validation split of 1000 labels, when the training "
                     "log-loss stops changing) or objective (at the EM fixed point: the "
                     "objective's relative change below --tol); docs/design.md, \"Stopping\"",
             .attribute = "stop",
             .role = R::kIdentity,
             .in_model = true,
             .absent = std::string("objective"),  // the only rule before --stop
             .checks = {one_of(kStopRuleNames)}}),
      field(at(&FitConfig::patience),
            {.option = "--patience",
             .help = "--stop predictions: sweeps without an improvement before the fit ends",
             .attribute = "patience",
             .role = R::kVariable,
             .in_model = true,
             .absent = std::int64_t{3},
             .at_least = 1}),
      field(at(&FitOptions::aitken),
            {.option = "--aitken",
             .help = "--stop predictions: also end the fit when the validation log-loss's last "
                     "improvements shrink so that their geometric continuation (Aitken's "
                     "projection) adds up to at most --stop-tol (relative), without waiting out "
                     "--patience (docs/design.md, \"Stopping\"); --no-aitken: --patience only",
             .attribute = "aitken",
             .role = R::kVariable,
             .in_model = true,
             .absent = std::int64_t{0},  // --patience only before --aitken
             .negation = "--no-aitken"}),
      field(at(&FitConfig::stop_tol),
            {.option = "--stop-tol",
             .help = "--stop predictions: the smallest relative change of the monitored "
                     "log-loss that counts as an improvement",
             .attribute = "stop_tol",
             .role = R::kVariable,
             .in_model = true,
             .absent = 3e-5,
             .checks = {finite_number()},
             .at_least = 0}),
      field(at(&FitOptions::auc_every),
            {.option = "--auc-every",
             .help = "Measure the validation split in full (its log-loss, accuracy, per-user "
                     "and global ROC-AUC, a distributed sort) and the gradient norm every N "
                     "sweeps (and for the state written; 0: only then); with --calibrate "
                     "validation the sweeps between score only the stopping rule's sample; 1 "
                     "for every sweep's record in --metrics in full, the initial state's too",
             .at_least = 0}),
      field(at(&FitConfig::seed), {.option = "--seed",
                                   .help = "Random seed (initialization)",
                                   .attribute = "seed",
                                   .role = R::kIdentity,
                                   .in_model = true}),
      field(at(&FitConfig::mu_u),
            {.option = "--mu-u",
             .help = "--prior ridge: L2 regularization of user weights; --prior population: the "
                     "prior N(0, I / mu_u) of the first user half-step",
             .attribute = "mu_u",
             .role = R::kIdentity,
             .in_model = true,
             .checks = {finite_number()},
             .at_least = 0}),
      field(at(&FitConfig::mu_z), {.option = "--mu-z",
                                   .help = "L2 regularization (mu_z/2)|z_p|^2 of each comparison's "
                                           "factors; with --items responses|embeddings the "
                                           "default is users / comparisons (one per user on the "
                                           "mean |z_p|^2)",
                                   .attribute = "mu_z",
                                   .role = R::kIdentity,
                                   .in_model = true,
                                   .checks = {finite_number()},
                                   .at_least = 0}),
      field(at(&FitOptions::prior),
            {.option = "--prior",
             .help = "Users' regularization: population (the default: a prior N(m, Sigma) "
                     "learned from all users, docs/design.md) or ridge (a fixed --mu-u); --mu-u "
                     "given without --prior selects ridge",
             .attribute = "prior",
             .role = R::kIdentity,
             .in_model = true,
             .absent = std::string("ridge"),  // the only regularization before --prior
             .checks = {one_of(kUserPriorNames)}}),
      field(at(&FitConfig::newton_steps), {.option = "--newton-steps",
                                           .help = "Newton steps per row per half-step",
                                           .attribute = "newton_steps",
                                           .role = R::kIdentity,
                                           .in_model = true,
                                           .at_least = 1}),
      field(at(&FitConfig::extrapolate),
            {.option = "--extrapolate",
             .help = "Extrapolated sweeps (the default with --prior ridge): push each "
                     "half-step's result along its last change, with an adaptive factor (fewer "
                     "sweeps to tolerance); --no-extrapolate (the default with --prior "
                     "population, where it does not pay: docs/design.md): plain alternating "
                     "sweeps",
             .attribute = "extrapolate",
             .role = R::kIdentity,
             .in_model = true,
             .absent = std::int64_t{0},  // plain sweeps before --extrapolate
             .negation = "--no-extrapolate"}),
      field(at(&FitOptions::exchange),
            {.option = "--exchange",
             .help = "Comparison half-step exchange: ship factor rows, reduce partial sums, or "
                     "let the cost model choose",
             .attribute = "exchange",
             .role = R::kVariable,
             .resume_note = "the factors agree to round-off, not bitwise",
             .checks = {one_of(kExchangeNames)}}),
      field(at(&FitOptions::calibrate),
            {.option = "--calibrate",
             .help = "After the sweeps: validation (fit the scale s of the probabilities "
                     "sigmoid(s u.z) on the validation split, stored in the model as "
                     "calibration_scale; no ranking changes) or none (s = 1)",
             .checks = {one_of(kCalibrateOnNames)}}),
      field(at(&FitOptions::drop_ties), {.option = "--drop-ties",
                                         .help = "Drop training labels of 0.5 (as the paper does)",
                                         .attribute = "drop_ties",
                                         .role = R::kIdentity,
                                         .in_model = true}),
      field(at(&FitOptions::items),
            {.option = "--items",
             .help = "Comparison factors: comparisons (free z_p), responses (z_p = phi_a - phi_b, "
                     "a free J-vector per response) or embeddings (phi_r = W^T e_r, a learned "
                     "head on /responses/embedding); the last two need a label file with "
                     "responses (docs/format.md)",
             .attribute = "items",
             .role = R::kIdentity,
             .in_model = true,
             .absent = std::string("comparisons"),  // the only item model before --items
             .checks = {one_of(kItemsNames)}}),
      field(at(&FitConfig::item, &ItemConfig::mu_w),
            {.option = "--mu-w",
             .help = "--items responses|embeddings: L2 regularization (mu_w/2)|theta|^2 of the "
                     "per-response factors or the head (besides --mu-z on every z_p)",
             .attribute = "mu_w",
             .role = R::kIdentity,
             .in_model = true,
             .absent = 1e-3,  // its default since --items exists
             .checks = {finite_number()},
             .above = 0}),
      field(at(&FitConfig::item, &ItemConfig::residual),
            {.option = "--residual",
             .help = "--items embeddings: phi_r = W^T e_r + d_r with a free residual d_r per "
                     "response, ridge --mu-residual (docs/design.md, \"Item models\")",
             .attribute = "residual",
             .role = R::kIdentity,
             .in_model = true,
             .absent = std::int64_t{0}}),  // no residual before --residual
      field(at(&FitConfig::item, &ItemConfig::mu_residual),
            {.option = "--mu-residual",
             .help = "--residual: L2 regularization (mu_residual/2) sum_r |d_r|^2 of the "
                     "residuals",
             .attribute = "mu_residual",
             .role = R::kIdentity,
             .in_model = true,
             .absent = 10.0,  // its default since --residual exists
             .checks = {finite_number()},
             .above = 0}),
      field(at(&FitOptions::prior_relax),
            {.option = "--prior-relax",
             .help = "--prior population: the over-relaxed M-step's factor w in [1, 1.99] (1: "
                     "EM's own update; the prior covariance's eigenvalues move w times as far "
                     "as EM's update, in the logarithm, shortened when that would raise the "
                     "objective; docs/design.md, \"Over-relaxed M-step\")",
             .attribute = "prior_relax",
             .role = R::kIdentity,
             .in_model = true,
             .absent = 1.0,  // EM's own update before --prior-relax
             .checks = {finite_number()},
             .at_least = 1,
             .at_most = 1.99}),
      field(at(&FitOptions::accelerate),
            {.option = "--accelerate",
             .help = "none (plain sweeps) or squarem (under the population prior with free "
                     "comparison factors: SQUAREM cycles over sweeps, kept when they do not "
                     "end above the plain sweeps' objective, or, where those raised it, their "
                     "fixed-point residual; docs/design.md, \"Accelerating the EM\"). "
                     "Default: squarem with --stop objective where it applies, else none",
             .attribute = "accelerate",
             .role = R::kIdentity,
             .in_model = true,
             .absent = std::string("none"),  // plain sweeps before --accelerate
             .checks = {one_of(kAccelerationNames)}}),
      field(at(&FitConfig::threads),
            {.option = "--threads", .help = "OpenMP threads per MPI rank", .at_least = 1}),
      field(at(&FitConfig::net_bytes_per_second),
            {.option = "--net-bandwidth",
             .help = "Cost model: network bytes per second per rank (chooses the exchange "
                     "pattern)",
             .checks = {finite_number()}}),
      field(at(&FitConfig::init_scale), {.option = "--init-scale",
                                         .help = "Random init: standard deviation of entries",
                                         .attribute = "init_scale",
                                         .role = R::kIdentity,
                                         .checks = {finite_number()}}),
      field(at(&FitOptions::duplicates), {.option = "--duplicates",
                                          .help = "Two labels of one (user, comparison)",
                                          .attribute = "duplicates",
                                          .role = R::kIdentity,
                                          .checks = {one_of(kDuplicatesNames)}}),
      field(at(&FitOptions::metrics),
            {.option = "--metrics",
             .help = "Write one JSON line per sweep to this file (an existing file is replaced "
                     "only with --overwrite, or with --resume, which rewrites the sweeps it "
                     "continues from)"}),
      field(at(&CheckpointOptions::dir),
            {.option = "--checkpoint-dir",
             .help = "Write checkpoints into this directory (created if needed); SIGTERM and "
                     "SIGUSR1 then make the fit checkpoint and exit with code 3 "
                     "(docs/checkpoints.md)"}),
      field(at(&CheckpointOptions::every),
            {.option = "--checkpoint-every", .help = "Sweeps between checkpoints", .at_least = 1}),
      field(
          at(&CheckpointOptions::keep),
          {.option = "--keep-checkpoints", .help = "Checkpoints kept (the newest)", .at_least = 1}),
      field(at(&CheckpointOptions::resume),
            {.option = "--resume",
             .help = "Continue from the newest valid checkpoint of --checkpoint-dir; start fresh "
                     "when there is none"}),
      field(at(&FitOptions::overwrite),
            {.option = "--overwrite",
             .help = "Replace an existing output file (and, without --resume, discard the "
                     "checkpoints of an earlier run in --checkpoint-dir)"}),
      field(at(&FitOptions::out),
            {.option = "--out", .help = "Output model file (HDF5)", .required = true}),
  };
  return fields;
}

void add_fit_options(CLI::App& app, FitOptions& o) {
  for (const FitField& f : fit_fields()) o.parsed[f.option] = f.add(app, o);
}

void validate_fit_options(FitOptions& o) {
  FitConfig& cfg = o.cfg;
  cfg.shared = io::kModelKindNames.parse(o.model, "--model") == io::ModelKind::kShared;
  if (cfg.shared && o.init.rfind("model:", 0) == 0)
    throw InputError(
        fmt::format("--init {}: a warm start needs a factor model and fit, not "
                    "--model shared",
                    o.init));
  if (cfg.shared) {
    // u_i = 1: one factor, nothing to regularize, and always the random start (the model is
    // convex), which is what is recorded.
    cfg.J = 1;
    o.prior = "ridge";
    o.init = "random";
  }
  for (const FitField& f : fit_fields())
    if (f.check)
      if (auto error = f.check(o)) throw InputError(*error);
  if (o.prior.empty()) o.prior = o.given("--mu-u") ? "ridge" : "population";
  cfg.prior = kUserPriorNames.parse(o.prior, "--prior");
  if (!o.given("--extrapolate")) cfg.extrapolate = cfg.prior == UserPrior::kRidge;
  if (cfg.prior == UserPrior::kPopulation && !(cfg.mu_u > 0))
    throw InputError(
        fmt::format("--mu-u: {} with --prior population; the first user "
                    "half-step's prior N(0, I / mu_u) needs mu_u > 0",
                    cfg.mu_u));
  o.svd.qr = scalapack::kTallSkinnyQrNames.parse(o.svd_qr, "--svd-qr");
  // (--init model:PATH starts from a model: no SVD.)
  if (const std::optional<Init> init = kInitNames.find(o.init)) o.svd.kind = svd_kind(*init);
  cfg.exchange = kExchangeNames.parse(o.exchange, "--exchange");
  const Items items = kItemsNames.parse(o.items, "--items");
  if (o.ckpt.dir.empty() && o.ckpt.resume) throw InputError("--resume: needs --checkpoint-dir");
  cfg.stop = kStopRuleNames.parse(o.stop, "--stop");
  cfg.monitor_calibrated =
      kCalibrateOnNames.parse(o.calibrate, "--calibrate") == CalibrateOn::kValidation;
  cfg.canonical_start = true;
  cfg.auc_every = o.auc_every;
  cfg.prior_relax = o.prior_relax;
  cfg.aitken = o.aitken;
  // SQUAREM needs the population prior and free comparison factors: refused where it does not
  // apply. By default it accelerates the sweeps to the EM fixed point (--stop objective) where
  // it applies; the predictions rule stops long before the fixed point, on plain sweeps.
  if (o.accelerate.empty())
    o.accelerate = cfg.stop == StopRule::kObjective && !cfg.shared &&
                           cfg.prior == UserPrior::kPopulation && items == Items::kComparisons &&
                           !cfg.extrapolate
                       ? "squarem"
                       : "none";
  const Acceleration accelerate = kAccelerationNames.parse(o.accelerate, "--accelerate");
  const char* no_acceleration = cfg.shared                       ? "--model shared"
                                : cfg.prior == UserPrior::kRidge ? "--prior ridge"
                                : items != Items::kComparisons   ? "--items"
                                : (cfg.extrapolate && accelerate == Acceleration::kSquarem)
                                    ? "--extrapolate"
                                    : nullptr;
  if (no_acceleration && accelerate != Acceleration::kNone)
    throw InputError(
        fmt::format("--accelerate {}: not supported with {} (it needs the "
                    "population prior and free comparison factors, without "
                    "--extrapolate)",
                    o.accelerate, no_acceleration));
  cfg.accelerate = accelerate;
  if (cfg.item.residual && items != Items::kEmbeddings)
    throw InputError(fmt::format(
        "--residual: needs --items embeddings (a residual on the head), not --items {}", o.items));
  if (o.given("--mu-residual") && !cfg.item.residual)
    throw InputError("--mu-residual: needs --residual");

  if (items != Items::kComparisons) {
    // What the item models do not support (docs/design.md, "Item models").
    if (o.given("--extrapolate") && cfg.extrapolate)
      throw InputError(
          fmt::format("--extrapolate: not supported with --items {} (it pushes free comparison "
                      "factors; here z = A theta has none)",
                      o.items));
    if (cfg.exchange == Exchange::kReduce)
      throw InputError(
          fmt::format("--exchange reduce: not supported with --items {} (its "
                      "half-step needs the ship pattern)",
                      o.items));
    cfg.extrapolate = false;
  }
}

io::Attributes recorded(const FitOptions& o, bool model) {
  io::Attributes a;
  for (const FitField& f : fit_fields())
    if (!f.file_rank && (model ? f.in_model : f.role != Role::kLocal)) a[f.attribute] = f.value(o);
  return a;
}

}  // namespace pref::cli
