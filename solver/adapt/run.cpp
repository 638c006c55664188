#include "solver/adapt/run.hpp"

#include <fmt/core.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>

#include "io/label_file.hpp"
#include "io/output_file.hpp"
#include "solver/adapt/evidence.hpp"
#include "solver/base/log.hpp"
#include "solver/layout/distribute.hpp"

namespace pref::adapt {

namespace {
using Clock = std::chrono::steady_clock;

// CPU seconds of this process (user + system): on a shared machine the wall time depends on
// the other load, this does not.
double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
         1e-6 * (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

double peak_rss_mib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;  // kilobytes on Linux
}

// "--group": one of the label file's groups, with or without the leading slash.
io::Split parse_group(const std::string& g) {
  const std::string name = g.empty() ? "/new_users" : (g[0] == '/' ? g : "/" + g);
  for (io::Split s : io::kAllSplits)
    if (name == io::split_group(s)) return s;
  throw InputError(fmt::format(
      "--group: '{}' is not a label group (use /new_users, /labels, /validation or /test)", g));
}

// The prior a rule has when --prior is not given.
Prior default_prior(Select select, bool has_model, bool has_types) {
  if (select == Select::kInfo) {
    if (has_types) return Prior::kTypes;
    throw InputError(
        "--select info: needs --prior mixture (it chooses among the mixture's components) or "
        "--types (the types' atoms)");
  }
  if (!has_model) {
    if (select == Select::kRandom) return Prior::kTypes;
    throw InputError(fmt::format("--select {}: with --types only info (the default) or random",
                                 select_name(select)));
  }
  return Prior::kPopulation;
}

// The rule of the command line, or nullopt for --select auto. Throws InputError for a rule the
// files given cannot run.
std::optional<Rule> given_rule(const Request& r) {
  const bool has_model = !r.model.empty(), has_types = !r.types.empty();
  if (r.answers < 1) throw InputError("--answers: must be >= 1");
  if (r.test_answers < 0) throw InputError("--test-answers: must be >= 0");
  if (r.components < 1) throw InputError("--components: must be >= 1");
  if (!has_model && !has_types)
    throw InputError(
        "--model, --types: give one or both (a fitted model, a types file of pref "
        "types)");
  if (has_types && !has_model && (r.components_given || (r.prior && *r.prior != Prior::kTypes)))
    throw InputError(
        "--types: the estimator is the discrete posterior over the types file's atoms; "
        "--prior and --components need --model");
  if (!r.select && (r.prior || r.answer_model) && r.select_given)
    throw InputError(
        "--select auto chooses the prior and the answer model itself; --prior and "
        "--likelihood need another --select");
  if (!r.select && !r.prior) {
    if (r.answer_model)
      throw InputError("--likelihood: needs --select (--select auto chooses the answer model)");
    return std::nullopt;
  }
  Rule rule;
  rule.select = r.select ? *r.select : (r.prior == Prior::kTypes ? Select::kInfo : Select::kActive);
  rule.prior = r.prior ? *r.prior : default_prior(rule.select, has_model, has_types);
  rule.answer_model = r.answer_model.value_or(AnswerModel::kLogistic);
  const char* s = select_name(rule.select);
  if (rule.prior == Prior::kTypes) {
    if (!has_types) throw InputError("--prior types: needs --types (a types file of pref types)");
    if (rule.select != Select::kInfo && rule.select != Select::kRandom)
      throw InputError(
          fmt::format("--select {}: with --types only info (the default) or random", s));
  } else if (!has_model) {
    throw InputError(fmt::format("--prior {}: needs --model", prior_name(rule.prior)));
  }
  if (rule.select == Select::kInfo && rule.prior != Prior::kMixture && rule.prior != Prior::kTypes)
    throw InputError(
        "--select info: needs --prior mixture (it chooses among the mixture's components) or "
        "--types");
  if (rule.answer_model == AnswerModel::kOrdinal &&
      (rule.prior == Prior::kMixture || rule.prior == Prior::kTypes ||
       rule.select == Select::kInfo))
    throw InputError(
        "--likelihood ordinal: only with the Gaussian rules (--prior population or none, "
        "--select random, active or bayes)");
  return rule;
}

// The model's (or types file's) comparisons against the data, and the group.
void check_data(const SourceFiles& f, const io::LabelFile& data, io::Split split, const Request& r,
                const mpi::Comm& comm) {
  mpi::agree(comm, [&] {
    const bool model = !f.model.empty();
    if (data.comparisons() != f.comparisons)
      throw InputError(fmt::format("{}: {} comparisons, but the {} {} has {} (--data, {})", r.data,
                                   data.comparisons(), model ? "model" : "types file",
                                   model ? f.model : f.types, f.comparisons,
                                   model ? "--model" : "--types"));
    if (!data.has(split)) {
      if (r.group.empty())
        throw InputError(r.data +
                         ": no /new_users group (the new users' answer pools); name "
                         "another label group with --group");
      throw InputError(fmt::format("{}: no group {} (--group)", r.data, io::split_group(split)));
    }
  });
}

// The tie-aware answer model fitted to the sample's training labels (under the model's prior).
void fit_answer_model(const TrainingSample& sample, Sources& src, const mpi::Comm& comm) {
  mpi::agree(comm, [&] {
    if (!sample.categorical)
      throw InputError("--likelihood ordinal: the training labels are not all 0, 0.5 or 1");
  });
  const Rule bayes{Select::kBayes, Prior::kPopulation, AnswerModel::kLogistic};
  const ordinal::Params p =
      adapt::fit_answer_model({sample.askable.ptr, sample.askable.col, sample.askable.val},
                              src.Z(bayes), src.J(), src.prior());
  src.set_answer_model(p);
  log::info(comm,
            "answer model: tie-aware (ordinal) r={:.4f} s={:.4f} a={:.4f}, fitted to the "
            "training labels of {} sampled users",
            p.r, p.s, p.a, sample.users.size());
}

struct Choice {
  Rule rule;
  std::optional<io::AdaptedHeader::Selection> selection;
};

// --select auto: the candidates the files allow, weighed on the training users (evidence.hpp).
Choice choose(const Request& req, Sources& src, const io::LabelFile& data,
              const std::vector<int>& budgets, const mpi::Comm& comm) {
  const bool has_model = !req.model.empty(), has_types = !req.types.empty();
  const Rule types{Select::kInfo, Prior::kTypes, AnswerModel::kLogistic};
  io::AdaptedHeader::Selection sel;
  if (!has_model) {
    sel.chosen = sel.candidates = types.name();
    log::info(comm, "auto: {} (the only rule a types file alone can run)", types.name());
    return {types, sel};
  }
  const TrainingSample sample = load_training_sample(data, req.auto_users, comm);
  std::vector<Rule> rules = {{Select::kBayes, Prior::kPopulation, AnswerModel::kLogistic}};
  if (sample.categorical && sample.ties)
    rules.push_back({Select::kBayes, Prior::kPopulation, AnswerModel::kOrdinal});
  if (has_types) rules.push_back(types);
  for (const Rule& r : rules) src.prepare(r, req.components, comm);
  if (rules.size() > 1 && rules[1].answer_model == AnswerModel::kOrdinal)
    fit_answer_model(sample, src, comm);
  sel.users = sample.users.size();
  sel.held_out = sample.held_out_source;
  for (const Rule& r : rules) {
    if (!sel.candidates.empty()) sel.candidates += ',';
    sel.candidates += r.name();
  }
  if (rules.size() == 1) {
    sel.chosen = rules[0].name();
    log::info(comm, "auto: {} (the only rule these files can run: no ties among the labels)",
              sel.chosen);
    return {rules[0], sel};
  }
  std::vector<Candidate> cands;
  for (const Rule& r : rules) cands.push_back({r, src.plan(r, req.answers, budgets), src.Z(r)});
  const auto t0 = Clock::now();
  const Evidence ev = weigh(cands, sample, src.J(), comm);
  const std::size_t B = budgets.size();
  for (std::size_t c = 0; c < rules.size(); ++c) {
    std::string per_budget;
    for (std::size_t b = 0; b < B; ++b)
      per_budget += fmt::format("{}{}: {:.4f}", b ? ", " : "", budgets[b], ev.auc[c * B + b]);
    log::info(comm, "auto: {:<26} held-out AUC of the sampled training users at {}; mean {:.4f}",
              rules[c].name(), per_budget, ev.score[c]);
  }
  log::info(comm,
            "auto: chose {} (largest mean held-out AUC of {} training users, their {}; {:.1f} s)",
            rules[ev.chosen].name(), sample.users.size(), sample.held_out_source,
            std::chrono::duration<double>(Clock::now() - t0).count());
  sel.chosen = rules[ev.chosen].name();
  sel.budgets.assign(budgets.begin(), budgets.end());
  sel.evidence = ev.auc;
  sel.score = ev.score;
  for (double u : ev.users) sel.evidence_users.push_back(static_cast<std::uint64_t>(u));
  return {rules[ev.chosen], sel};
}

// The group's users, by count over the ranks, each rank's rows a CSR by user (comparison-id
// order, so a pool is the same at any rank count); every pool checked to hold the answers and
// the held-out part.
LabelMatrix load_new_users(const io::LabelFile& data, io::Split split, const Rule& rule,
                           const Request& r, const mpi::Comm& comm) {
  const std::uint64_t N = data.users_of(split);
  const Partitions parts{Partition::uniform(N, comm.size()),
                         Partition::uniform(data.comparisons(), comm.size())};
  LabelColumns cols = data.read(split, comm);
  // The ordinal model of --types and --likelihood ordinal needs categorical answers.
  if (rule.categorical())
    mpi::agree(comm, [&] {
      ordinal::check_categorical(cols, r.data + ": " + io::split_group(split) + "/value");
    });
  LabelMatrix m = distribute(comm, std::move(cols), parts, N, data.comparisons(),
                             Duplicates::kError, r.data + ": " + io::split_group(split));
  m.by_comparison = Csr();  // only the users' rows are needed
  const std::uint64_t first = parts.users.begin(comm.rank()), mine = parts.users.count(comm.rank());
  const std::size_t need = std::size_t(r.answers) + std::size_t(r.test_answers);
  mpi::agree(comm, [&] {
    for (std::uint64_t u = 0; u < mine; ++u)
      if (m.by_user.row_size(u) < need)
        throw InputError(
            fmt::format("{}: {}: user {} has {} answers in its pool, fewer than --answers {} + "
                        "--test-answers {}",
                        r.data, io::split_group(split), first + u, m.by_user.row_size(u), r.answers,
                        r.test_answers),
            first + u);
  });
  return m;
}
}  // namespace

Report run(const Request& req, const mpi::Comm& comm) {
  const auto t0 = Clock::now();
  std::optional<Rule> given;
  io::Split split{};
  const std::vector<int> budgets =
      req.budgets.empty() ? std::vector<int>{req.answers} : req.budgets;
  mpi::agree(comm, [&] {
    given = given_rule(req);
    split = parse_group(req.group);
  });
  SourceFiles files = SourceFiles::open(req.model, req.types, comm);
  const io::LabelFile data = io::LabelFile::open(req.data, comm);
  check_data(files, data, split, req, comm);
  io::AtomicOutput out(req.out, req.overwrite, comm, "--out", {req.model, req.types, req.data});
  Sources src(std::move(files), req.seed);
  const Choice choice =
      given ? Choice{*given, std::nullopt} : choose(req, src, data, budgets, comm);
  const Rule& rule = choice.rule;
  src.prepare(rule, req.components, comm);
  if (rule.answer_model == AnswerModel::kOrdinal && !src.answer_model())
    fit_answer_model(load_training_sample(data, req.auto_users, comm), src, comm);

  const LabelMatrix m = load_new_users(data, split, rule, req, comm);
  const auto t_read = Clock::now();
  const std::uint64_t N = data.users_of(split), mine = m.parts.users.count(comm.rank());
  log::info(comm,
            "adapt: {} users of {}{}, J={}, {} answers each ({}, estimator {}), {} held "
            "out per user, {} ranks",
            N, req.data, io::split_group(split), src.J(), req.answers, select_name(rule.select),
            rule.prior == Prior::kTypes ? "posterior mean over the types' atoms"
            : rule.answer_model == AnswerModel::kOrdinal
                ? (rule.prior == Prior::kPopulation ? "MAP under the population prior, tie-aware"
                                                    : "MLE with 0.001 I, tie-aware")
            : rule.prior == Prior::kPopulation ? "MAP under the population prior"
            : rule.prior == Prior::kMixture    ? "posterior mean under the mixture prior"
                                               : "MLE with 0.001 I",
            req.test_answers, comm.size());

  Report rep;
  rep.users = N;
  rep.budgets = budgets;
  rep.rule = rule.name();
  rep.tally = AucTally(budgets.size());
  io::AdaptedRows rows;
  const Plan plan = src.plan(rule, req.answers, budgets);
  // Progress from rank 0's own users (no communication): ranks hold equal counts.
  std::uint64_t next_report = mine / 10;
  rep.newton_steps =
      adapt_rows({&m.by_user, m.parts.users.begin(comm.rank()), std::size_t(req.test_answers)},
                 src.Z(rule), src.J(), plan, rows, rep.tally, [&](std::size_t r) {
                   if (r == next_report && r > 0) {
                     log::info(comm, "adapt: {}% of rank 0's {} users done", 100 * r / mine, mine);
                     next_report += mine / 10;
                   }
                 });
  rep.adapt_seconds =
      mpi::allreduce_max(comm, std::chrono::duration<double>(Clock::now() - t_read).count());

  io::AdaptedHeader ah;
  ah.users = N;
  ah.comparisons = src.files().comparisons;
  ah.rank = static_cast<std::uint32_t>(src.J());
  ah.answers = static_cast<std::uint32_t>(req.answers);
  ah.test_answers = static_cast<std::uint32_t>(req.test_answers);
  ah.data = req.data;
  ah.group = io::split_group(split);
  ah.seed = req.seed;
  ah.budgets.assign(budgets.begin(), budgets.end());
  src.describe(rule, ah);
  ah.selection = choice.selection;
  io::write_adapted(out.temp_path(), comm, ah, m.parts.users, rows);
  out.commit();

  rep.tally.allreduce(comm);
  rep.newton_steps = mpi::allreduce_sum(comm, rep.newton_steps);
  rep.peak_rss_mib = mpi::allgather(comm, peak_rss_mib());
  rep.cpu_seconds = mpi::allgather(comm, cpu_seconds());
  rep.total_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return rep;
}

}  // namespace pref::adapt
