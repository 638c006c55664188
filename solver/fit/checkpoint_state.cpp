#include "solver/fit/checkpoint_state.hpp"

#include <fmt/core.h>

#include <cmath>
#include <sstream>

#include "solver/items/items.hpp"

namespace pref {

namespace {

// The /state array of the population prior.
constexpr const char* kPriorArray = "population_prior";
constexpr const char* kItemArray = "item_params";

// The extrapolation's attributes (absent in checkpoints of plain sweeps).
constexpr const char* kBeta = "extrapolation_beta";

}  // namespace

nlohmann::json record_to_json(const SweepRecord& r, bool with_timings) {
  nlohmann::json j = {{"sweep", r.sweep},           {"objective", r.objective},
                      {"rel_change", r.rel_change}, {"train_logloss", r.train_logloss},
                      {"grad_norm", r.grad_norm},   {"bytes_exchanged", r.bytes_exchanged}};
  if (r.prior) j["prior"] = {{"trace", r.prior->trace}, {"eigenvalues", r.prior->top_eigenvalues}};
  // (Set by the user half-step: a half-sweep checkpoint's pending record has it, not yet prior.)
  if (r.prior_step != 0) j["prior_step"] = r.prior_step;
  if (r.extrapolation != 0) j["extrapolation"] = r.extrapolation;
  if (r.validation) {
    const SplitMetrics& v = *r.validation;
    auto num = [](double x) { return std::isnan(x) ? nlohmann::json(nullptr) : nlohmann::json(x); };
    j["validation"] = {{"labels", v.labels},
                       {"logloss", num(v.logloss)},
                       {"accuracy", num(v.accuracy)},
                       {"auc", num(v.auc)},
                       {"user_auc_mean", num(v.user_auc_mean)}};
    if (!std::isnan(r.calibrated_logloss)) {
      j["validation"]["logloss_calibrated"] = r.calibrated_logloss;
      j["validation"]["calibration_scale"] = r.calibration_scale;
      j["validation"]["monitor_labels"] = r.monitor_labels;
    }
  } else if (!std::isnan(r.calibrated_logloss)) {
    // A sweep measured on the stopping rule's sample alone.
    j["monitor"] = {{"labels", r.monitor_labels},
                    {"logloss_calibrated", r.calibrated_logloss},
                    {"calibration_scale", r.calibration_scale}};
  }
  if (with_timings) {
    j["seconds_user"] = r.seconds_user;
    j["seconds_comparison"] = r.seconds_comparison;
    j["seconds_eval"] = r.seconds_eval;
  }
  return j;
}

SweepRecord record_from_json(const nlohmann::json& j, const std::string& what) {
  auto num = [](const nlohmann::json& x) { return x.is_number() ? x.get<double>() : NAN; };
  SweepRecord r;
  try {
    r.sweep = j.at("sweep").get<int>();
    r.objective = num(j.at("objective"));
    r.rel_change = num(j.at("rel_change"));
    r.train_logloss = num(j.at("train_logloss"));
    r.grad_norm = num(j.at("grad_norm"));
    r.bytes_exchanged = j.at("bytes_exchanged").get<std::uint64_t>();
    r.extrapolation = j.value("extrapolation", 0.0);
    r.prior_step = j.value("prior_step", 0.0);
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
      if (v.contains("logloss_calibrated")) {
        r.calibrated_logloss = num(v.at("logloss_calibrated"));
        r.calibration_scale = num(v.at("calibration_scale"));
        r.monitor_labels = v.value("monitor_labels", std::uint64_t{0});
      }
    } else if (j.contains("monitor")) {
      const auto& m = j["monitor"];
      r.monitor_labels = m.at("labels").get<std::uint64_t>();
      r.calibrated_logloss = num(m.at("logloss_calibrated"));
      r.calibration_scale = num(m.at("calibration_scale"));
    }
    r.seconds_user = j.value("seconds_user", 0.0);
    r.seconds_comparison = j.value("seconds_comparison", 0.0);
    r.seconds_eval = j.value("seconds_eval", 0.0);
  } catch (const nlohmann::json::exception& e) {
    throw InputError(fmt::format("{}: not a sweep record ({})", what, e.what()));
  }
  return r;
}

std::string history_lines(const std::vector<SweepRecord>& history, bool with_timings) {
  std::string s;
  for (const SweepRecord& r : history) s += record_to_json(r, with_timings).dump() + "\n";
  return s;
}

namespace {

// A saved state (Snapshot) of the checkpoint under a prefix: its factors as
// <prefix>user_factors and <prefix>comparison_factors, its prior and theta as /state arrays.
void encode_snapshot(const Snapshot& snap, const std::string& prefix, io::CheckpointHeader& hd,
                     io::CheckpointFactors& factors) {
  factors[prefix + "user_factors"] = &snap.factors.U;
  factors[prefix + "comparison_factors"] = &snap.factors.Z;
  if (snap.prior) hd.arrays[prefix + kPriorArray] = prior_to_array(*snap.prior);
  if (!snap.item_params.empty()) hd.arrays[prefix + kItemArray] = snap.item_params;
}

Snapshot decode_snapshot(io::Checkpoint& ck, const std::string& prefix) {
  const io::CheckpointHeader& hd = ck.header;
  Snapshot snap;
  snap.factors.J = static_cast<int>(hd.rank);
  for (const char* part : {"user_factors", "comparison_factors"}) {
    auto it = ck.factors.find(prefix + part);
    if (it == ck.factors.end())
      throw InputError(fmt::format("{}: missing dataset /{}{}", ck.path, prefix, part));
    (std::string(part) == "user_factors" ? snap.factors.U : snap.factors.Z) = std::move(it->second);
  }
  if (auto it = hd.arrays.find(prefix + kPriorArray); it != hd.arrays.end())
    snap.prior = prior_from_array(static_cast<int>(hd.rank), it->second,
                                  ck.path + ": /state/" + prefix + kPriorArray);
  // A run of the population prior (--prior, absent before it existed: the ridge) needs it.
  else if (hd.attributes.count("prior") &&
           kUserPriorNames.find(ck.attribute<std::string>("prior")) == UserPrior::kPopulation)
    throw InputError(ck.path + ": missing dataset /state/" + prefix + kPriorArray);
  // A run of an item model needs theta (its size is checked by the fit, which knows it).
  if (auto it = hd.arrays.find(prefix + kItemArray); it != hd.arrays.end())
    snap.item_params = it->second;
  else if (hd.attributes.count("items") &&
           kItemsNames.find(ck.attribute<std::string>("items")) != Items::kComparisons)
    throw InputError(ck.path + ": missing dataset /state/" + prefix + kItemArray);
  return snap;
}

}  // namespace

void encode_state(const FitState& st, bool extrapolate, io::CheckpointHeader& hd,
                  io::CheckpointFactors& factors) {
  const std::vector<SweepRecord>& history = st.history;
  hd.rank = static_cast<std::uint32_t>(st.current.factors.J);
  hd.sweep = st.sweep;
  hd.user_half_done = st.user_half_done;
  hd.attributes["objective"] = history.back().objective;
  hd.attributes["reference_objective"] = st.reference_objective;
  if (extrapolate) {
    const ExtrapolationState& ex = st.extrapolation;
    hd.attributes[kBeta] = ex.beta;
    hd.attributes["extrapolation_ceiling"] = ex.ceiling;
    hd.attributes["extrapolation_previous"] = ex.previous;
    hd.attributes["extrapolation_calm_run"] = static_cast<std::int64_t>(ex.calm_run);
    hd.attributes["extrapolation_last_decreased"] = static_cast<std::int64_t>(ex.last_decreased);
    if (st.u_prev) factors["previous_user_factors"] = &*st.u_prev;
    if (st.z_prev) factors["previous_comparison_factors"] = &*st.z_prev;
  }
  encode_snapshot(st.current, "", hd, factors);
  // The stopping rule (absent before --stop: nothing seen yet).
  const StopState& stop = st.stop;
  hd.attributes["stop_best_loss"] = stop.best_loss;
  hd.attributes["stop_best_sweep"] = static_cast<std::int64_t>(stop.best_sweep);
  hd.attributes["stop_reference_loss"] = stop.reference_loss;
  hd.attributes["stop_reference_sweep"] = static_cast<std::int64_t>(stop.reference_sweep);
  hd.attributes["stop_finished"] = static_cast<std::int64_t>(stop.finished);
  hd.attributes["stop_reason"] = stop.reason;
  if (stop.best) encode_snapshot(*stop.best, "best_", hd, factors);
  // SQUAREM's cycle.
  const SquaremState& sq = st.squarem;
  hd.attributes["squarem_phase"] = static_cast<std::int64_t>(sq.phase);
  hd.attributes["squarem_step_max"] = sq.step_max;
  hd.attributes["squarem_objective2"] = sq.objective2;
  hd.attributes["squarem_residual1"] = sq.residual1;
  hd.attributes["squarem_saved"] = static_cast<std::int64_t>(sq.saved.size());
  for (std::size_t k = 0; k < sq.saved.size(); ++k)
    encode_snapshot(sq.saved[k], fmt::format("squarem{}_", k), hd, factors);
  hd.history_json = history_lines(history, true);
  hd.pending_json = st.user_half_done ? record_to_json(st.pending, true).dump() : "";
}

FitState decode_state(io::Checkpoint& ck) {
  const io::CheckpointHeader& hd = ck.header;
  FitState st;
  std::istringstream in(hd.history_json);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const std::string what = fmt::format("{}: /history: record {}", ck.path, st.history.size());
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) throw InputError(what + " is not valid");
    st.history.push_back(record_from_json(j, what));
    if (st.history.back().sweep != static_cast<int>(st.history.size()) - 1)
      throw InputError(what + " is not valid");
  }
  if (static_cast<std::int64_t>(st.history.size()) != hd.sweep + 1)
    throw InputError(fmt::format("{}: /history holds {} records for {} sweeps", ck.path,
                                 st.history.size(), hd.sweep));
  // The tolerance test's reference, bitwise.
  st.history.back().objective = ck.attribute<double>("objective");
  st.reference_objective = hd.attributes.count("reference_objective")
                               ? ck.attribute<double>("reference_objective")
                               : st.history.back().objective;
  st.sweep = static_cast<int>(hd.sweep);
  st.user_half_done = hd.user_half_done;
  if (hd.user_half_done) {
    const std::string what = ck.path + ": attribute 'pending'";
    const auto j = nlohmann::json::parse(hd.pending_json, nullptr, false);
    if (j.is_discarded() || !j.is_object()) throw InputError(what + " is not valid");
    st.pending = record_from_json(j, what);
    if (st.pending.sweep != hd.sweep + 1) throw InputError(what + " is not valid");
  }
  // With extrapolation (a plain-sweeps checkpoint has neither: the defaults, none yet).
  if (auto it = ck.factors.find("previous_user_factors"); it != ck.factors.end())
    st.u_prev = std::move(it->second);
  if (auto it = ck.factors.find("previous_comparison_factors"); it != ck.factors.end())
    st.z_prev = std::move(it->second);
  if (hd.attributes.count(kBeta)) {
    ExtrapolationState& ex = st.extrapolation;
    ex.beta = ck.attribute<double>(kBeta);
    ex.ceiling = ck.attribute<double>("extrapolation_ceiling");
    ex.previous = ck.attribute<double>("extrapolation_previous");
    ex.calm_run = static_cast<int>(ck.attribute<std::int64_t>("extrapolation_calm_run"));
    ex.last_decreased = ck.attribute<std::int64_t>("extrapolation_last_decreased") != 0;
  }
  st.current = decode_snapshot(ck, "");
  if (hd.attributes.count("stop_best_sweep")) {
    StopState& stop = st.stop;
    stop.best_loss = ck.attribute<double>("stop_best_loss");
    stop.best_sweep = static_cast<int>(ck.attribute<std::int64_t>("stop_best_sweep"));
    stop.reference_loss = ck.attribute<double>("stop_reference_loss");
    stop.reference_sweep = static_cast<int>(ck.attribute<std::int64_t>("stop_reference_sweep"));
    stop.finished = ck.attribute<std::int64_t>("stop_finished") != 0;
    stop.reason = ck.attribute<std::string>("stop_reason");
    if (ck.factors.count("best_user_factors")) stop.best = decode_snapshot(ck, "best_");
  }
  if (hd.attributes.count("squarem_phase")) {
    SquaremState& sq = st.squarem;
    sq.phase = static_cast<int>(ck.attribute<std::int64_t>("squarem_phase"));
    sq.step_max = ck.attribute<double>("squarem_step_max");
    sq.objective2 = ck.attribute<double>("squarem_objective2");
    // (Absent before the residual's safeguard: phase 3 then holds x2 alone and never reads it.)
    if (hd.attributes.count("squarem_residual1"))
      sq.residual1 = ck.attribute<double>("squarem_residual1");
    const std::int64_t saved = ck.attribute<std::int64_t>("squarem_saved");
    if (saved < 0 || saved > 2 || sq.phase < 0 || sq.phase > 3)
      throw InputError(fmt::format("{}: SQUAREM phase {} with {} saved states is not valid",
                                   ck.path, sq.phase, saved));
    for (std::int64_t k = 0; k < saved; ++k)
      sq.saved.push_back(decode_snapshot(ck, fmt::format("squarem{}_", k)));
  }
  return st;
}

}  // namespace pref
