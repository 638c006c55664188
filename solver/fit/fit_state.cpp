#include "solver/fit/fit_state.hpp"

#include <fmt/core.h>

#include <cmath>
#include <sstream>

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
  if (r.validation) {
    const SplitMetrics& v = *r.validation;
    auto num = [](double x) { return std::isnan(x) ? nlohmann::json(nullptr) : nlohmann::json(x); };
    j["validation"] = {{"labels", v.labels},
                       {"logloss", num(v.logloss)},
                       {"accuracy", num(v.accuracy)},
                       {"auc", num(v.auc)},
                       {"user_auc_mean", num(v.user_auc_mean)}};
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

void encode_state(const FitState& st, const std::vector<SweepRecord>& history, bool extrapolate,
                  io::CheckpointHeader& hd) {
  hd.rank = static_cast<std::uint32_t>(st.factors.J);
  hd.sweep = st.sweep;
  hd.user_half_done = st.user_half_done;
  hd.attributes["objective"] = history.back().objective;
  if (extrapolate) {
    const ExtrapolationState& ex = st.extrapolation;
    hd.attributes[kBeta] = ex.beta;
    hd.attributes["extrapolation_ceiling"] = ex.ceiling;
    hd.attributes["extrapolation_previous"] = ex.previous;
    hd.attributes["extrapolation_calm_run"] = static_cast<std::int64_t>(ex.calm_run);
    hd.attributes["extrapolation_last_decreased"] = static_cast<std::int64_t>(ex.last_decreased);
  }
  if (st.prior) hd.arrays[kPriorArray] = prior_to_array(*st.prior);
  if (st.item_params) hd.arrays[kItemArray] = *st.item_params;
  hd.history_json = history_lines(history, true);
  hd.pending_json = st.pending ? record_to_json(*st.pending, true).dump() : "";
}

FitStart decode_state(io::Checkpoint& ck) {
  const io::CheckpointHeader& hd = ck.header;
  FitStart start;
  std::istringstream in(hd.history_json);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const std::string what = fmt::format("{}: /history: record {}", ck.path, start.history.size());
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) throw InputError(what + " is not valid");
    start.history.push_back(record_from_json(j, what));
    if (start.history.back().sweep != static_cast<int>(start.history.size()) - 1)
      throw InputError(what + " is not valid");
  }
  if (static_cast<std::int64_t>(start.history.size()) != hd.sweep + 1)
    throw InputError(fmt::format("{}: /history holds {} records for {} sweeps", ck.path,
                                 start.history.size(), hd.sweep));
  // The tolerance test's reference, bitwise.
  start.history.back().objective = ck.attribute<double>("objective");
  start.sweep = static_cast<int>(hd.sweep);
  start.user_half_done = hd.user_half_done;
  if (hd.user_half_done) {
    const std::string what = ck.path + ": attribute 'pending'";
    const auto j = nlohmann::json::parse(hd.pending_json, nullptr, false);
    if (j.is_discarded() || !j.is_object()) throw InputError(what + " is not valid");
    start.pending = record_from_json(j, what);
    if (start.pending.sweep != hd.sweep + 1) throw InputError(what + " is not valid");
  }
  // With extrapolation (a plain-sweeps checkpoint has neither: the defaults, none yet).
  start.u_prev = std::move(ck.U_prev);
  start.z_prev = std::move(ck.Z_prev);
  if (hd.attributes.count(kBeta)) {
    ExtrapolationState& ex = start.extrapolation;
    ex.beta = ck.attribute<double>(kBeta);
    ex.ceiling = ck.attribute<double>("extrapolation_ceiling");
    ex.previous = ck.attribute<double>("extrapolation_previous");
    ex.calm_run = static_cast<int>(ck.attribute<std::int64_t>("extrapolation_calm_run"));
    ex.last_decreased = ck.attribute<std::int64_t>("extrapolation_last_decreased") != 0;
  }
  if (auto it = hd.arrays.find(kPriorArray); it != hd.arrays.end())
    start.prior = prior_from_array(static_cast<int>(hd.rank), it->second,
                                   ck.path + ": /state/" + kPriorArray);
  // A run of the population prior (--prior, absent before it existed: the ridge) needs it.
  else if (hd.attributes.count("prior") &&
           kUserPriorNames.find(ck.attribute<std::string>("prior")) == UserPrior::kPopulation)
    throw InputError(ck.path + ": missing dataset /state/" + kPriorArray);
  // A run of an item model needs theta (its size is checked by the fit, which knows it).
  if (auto it = hd.arrays.find(kItemArray); it != hd.arrays.end())
    start.item_params = it->second;
  else if (hd.attributes.count("items") &&
           kItemsNames.find(ck.attribute<std::string>("items")) != Items::kComparisons)
    throw InputError(ck.path + ": missing dataset /state/" + kItemArray);
  return start;
}

}  // namespace pref
