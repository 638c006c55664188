// pref adapt: new users' weights from a few answers, with Z fixed from a model or a types file
// (issues 13, 24; docs/design.md "Adapting new users", docs/format.md "Adapted users"). Parses
// the options into an adapt::Request, runs adapt::run (solver/adapt/run.hpp) and reports.
#include <fmt/core.h>

#include <algorithm>
#include <memory>
#include <sstream>

#include "solver/adapt/run.hpp"
#include "solver/base/log.hpp"
#include "solver/cli/commands.hpp"

namespace pref::cli {

namespace {

struct AdaptOptions {
  std::string model, types, data, out, group, select = "auto", prior, likelihood, budgets;
  // Whether --select, --prior, --likelihood, --components were given.
  const CLI::Option *select_opt = nullptr, *prior_opt = nullptr, *likelihood_opt = nullptr,
                    *components_opt = nullptr;
  int answers = 10, test_answers = 0, components = 64;
  std::string auto_users = "2048";
  std::uint64_t seed = 1;
  bool overwrite = false, json = false;
};

std::vector<int> parse_budgets(const std::string& text, int answers) {
  std::vector<int> b;
  if (text.empty()) return {answers};
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    const std::uint64_t v = parse_count(item, "--budgets");
    if (v < 1 || v > std::uint64_t(answers))
      throw InputError(fmt::format("--budgets: {} outside [1, --answers {}]", item, answers));
    b.push_back(static_cast<int>(v));
  }
  std::sort(b.begin(), b.end());
  b.erase(std::unique(b.begin(), b.end()), b.end());
  return b;
}

adapt::Request to_request(const AdaptOptions& o) {
  adapt::Request r;
  r.model = o.model;
  r.types = o.types;
  r.data = o.data;
  r.out = o.out;
  r.group = o.group;
  r.select_given = o.select_opt->count() > 0;
  if (o.select != "auto") r.select = adapt::parse_select(o.select, "--select");
  if (o.prior_opt->count()) r.prior = adapt::parse_prior(o.prior, "--prior");
  if (o.likelihood_opt->count())
    r.answer_model = adapt::parse_answer_model(o.likelihood, "--likelihood");
  r.answers = o.answers;
  r.test_answers = o.test_answers;
  r.components = o.components;
  r.components_given = o.components_opt->count() > 0;
  if (o.answers >= 1) r.budgets = parse_budgets(o.budgets, o.answers);
  r.seed = o.seed;
  r.auto_users = parse_count(o.auto_users, "--auto-users");
  if (r.auto_users < 1) throw InputError("--auto-users: must be >= 1");
  r.overwrite = o.overwrite;
  return r;
}

std::string joined(const std::vector<double>& xs, const char* format, const char* sep = " ") {
  std::string s;
  for (double x : xs) s += (s.empty() ? "" : sep) + fmt::format(fmt::runtime(format), x);
  return s;
}

void report(const adapt::Report& rep, const AdaptOptions& o, const mpi::Comm& comm) {
  const std::string rss = joined(rep.peak_rss_mib, "{:.0f}"),
                    cpu = joined(rep.cpu_seconds, "{:.1f}");
  const double per_second = rep.users / std::max(rep.adapt_seconds, 1e-9);
  log::info(comm,
            "adapt: {} users in {:.2f} s of adaptation ({:.0f} users/s, {:.1f} Newton steps "
            "per user), {:.2f} s end to end; CPU seconds per rank: {}; peak memory per rank "
            "(MiB): {}",
            rep.users, rep.adapt_seconds, per_second,
            rep.users ? double(rep.newton_steps) / double(rep.users) : 0.0, rep.total_seconds, cpu,
            rss);
  if (comm.rank() != 0) return;
  const adapt::AucTally& t = rep.tally;
  const std::size_t B = rep.budgets.size();
  if (o.json) {
    fmt::print(
        "{{\"users\": {}, \"rule\": \"{}\", \"seconds\": {:.3f}, \"users_per_second\": {:.1f}, "
        "\"cpu_seconds\": [{}], \"peak_rss_mib\": [{}], \"budgets\": [",
        rep.users, rep.rule, rep.total_seconds, per_second, joined(rep.cpu_seconds, "{:.1f}", ", "),
        joined(rep.peak_rss_mib, "{:.0f}", ", "));
    for (std::size_t b = 0; b < B; ++b)
      fmt::print(
          "{}{{\"answers\": {}, \"users_with_auc\": {}, \"mean_auc\": {}, "
          "\"share_above_0.8\": {}}}",
          b ? ", " : "", rep.budgets[b], t.users[b],
          t.users[b] ? fmt::format("{:.6f}", t.mean(b)) : "null",
          t.users[b] ? fmt::format("{:.6f}", t.above[b] / t.users[b]) : "null");
    fmt::print("]}}\n");
  } else if (o.test_answers > 0) {
    fmt::print("answers  users  mean held-out ROC-AUC  share > 0.8    ({})\n", rep.rule);
    for (std::size_t b = 0; b < B; ++b)
      fmt::print("{:7d}  {:5.0f}  {:20.4f}  {:11.3f}\n", rep.budgets[b], t.users[b], t.mean(b),
                 t.above[b] / t.users[b]);
  }
}

}  // namespace

Runner add_adapt(CLI::App& app) {
  auto o = std::make_shared<AdaptOptions>();
  app.add_option("--model", o->model,
                 "Model file written by pref fit (Z is kept fixed); with or instead of --types");
  app.add_option("--types", o->types,
                 "Types file written by pref types (its Z and atoms: the exact posterior over the "
                 "atoms under its ordinal label model, prior their shares of the training "
                 "users); with --model, a rule --select auto may choose, or --prior types");
  app.add_option("--data", o->data, "Label file holding the new users' answer pools")->required();
  app.add_option("--out", o->out, "Output adapted-users file (HDF5, docs/format.md)")->required();
  app.add_option("--answers", o->answers, "Questions asked per user (K)");
  app.add_option("--test-answers", o->test_answers,
                 "Held out per user: the last T of its pool in comparison-id order, never asked, "
                 "scored by held-out ROC-AUC");
  o->select_opt =
      app.add_option("--select", o->select,
                     "Question choice: auto (default: the rule whose held-out AUC on a sample of "
                     "--data's training users, treated as new users with the same budgets, is "
                     "largest, among bayes/MAP, its tie-aware variant when the labels have ties, "
                     "and info over --types' atoms); random; active (the paper's criterion with "
                     "0.001 I and the MLE); bayes (the prior's precision and the MAP); info (the "
                     "mutual information between the answer and the types' atom, or the "
                     "mixture's component with --prior mixture)")
          ->check(CLI::IsMember({"auto", "random", "active", "bayes", "info"}));
  o->prior_opt =
      app.add_option("--prior", o->prior,
                     "Estimator (with a --select other than auto; given alone, --select active): "
                     "population (MAP under the model's prior, else the fitted users' moments), "
                     "mixture (posterior mean under a mixture of --components Gaussians fitted to "
                     "the model's users, Laplace per component), none (MLE with the paper's 0.001 "
                     "I ridge), types (the exact posterior over --types' atoms)")
          ->check(CLI::IsMember({"population", "mixture", "none", "types"}));
  o->likelihood_opt =
      app.add_option("--likelihood", o->likelihood,
                     "Answer model of the Gaussian rules (with a --select other than auto): "
                     "logistic (default; a tie is a label of 0.5) or ordinal (tie-aware: "
                     "P(tie) = r exp(-m^2 / 2 s^2), fitted to --data's training labels)")
          ->check(CLI::IsMember({"logistic", "ordinal"}));
  o->components_opt =
      app.add_option("--components", o->components,
                     "Components of --prior mixture (k-means clusters of the fitted users)");
  app.add_option("--group", o->group, "Label group of the pools (default /new_users)");
  app.add_option("--budgets", o->budgets,
                 "Comma-separated answer counts at which to record held-out AUC (default: "
                 "--answers)");
  app.add_option("--auto-users", o->auto_users,
                 "Training users of --data sampled (evenly spaced ids) to weigh the rules of "
                 "--select auto and to fit the tie-aware answer model");
  app.add_option("--seed", o->seed, "Seed of the random question choices and the mixture");
  app.add_flag("--json", o->json, "Print one JSON summary on standard output");
  app.add_flag("--overwrite", o->overwrite, "Replace an existing output file");
  return [o](const mpi::Comm& comm) {
    if (o->json) log::set_quiet(true);
    adapt::Request r;
    mpi::agree(comm, [&] { r = to_request(*o); });
    report(adapt::run(r, comm), *o, comm);
    return 0;
  };
}

}  // namespace pref::cli
