// pref adapt: new users' weights from a few answers, with Z fixed from a model (issue 13,
// docs/design.md "Adapting new users", docs/format.md "Adapted users").
#include <fmt/core.h>
#include <sys/resource.h>

#include <Eigen/LU>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <sstream>

#include "io/adapted_file.hpp"
#include "io/label_file.hpp"
#include "io/model_file.hpp"
#include "io/model_prior.hpp"
#include "io/output_file.hpp"
#include "io/provenance.hpp"
#include "io/types_file.hpp"
#include "solver/adapt/adapt.hpp"
#include "solver/base/hash.hpp"
#include "solver/base/log.hpp"
#include "solver/cli/commands.hpp"
#include "solver/layout/distribute.hpp"
#include "solver/newton/ordinal.hpp"
#include "solver/prior/moments.hpp"

namespace pref::cli {

namespace {
// --prior mixture clusters at most this many of the model's fitted users (the first ones).
constexpr std::uint64_t kMixtureUsers = 65536;

struct AdaptOptions {
  std::string model, types, data, out, group, select = "active", prior = "population", budgets;
  // Whether --select, --prior, --components were given (they are refused or defaulted with
  // --types).
  const CLI::Option *select_opt = nullptr, *prior_opt = nullptr, *components_opt = nullptr;
  int answers = 10, test_answers = 0, components = 64;
  std::uint64_t seed = 1;
  bool overwrite = false, json = false;
};

// "--group": one of the label file's groups, with or without the leading slash.
io::Split parse_group(const std::string& g) {
  const std::string name = g.empty() ? "/new_users" : (g[0] == '/' ? g : "/" + g);
  for (io::Split s : io::kAllSplits)
    if (name == io::split_group(s)) return s;
  throw InputError(fmt::format(
      "--group: '{}' is not a label group (use /new_users, /labels, /validation or /test)", g));
}

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

int run_adapt(const AdaptOptions& o, const mpi::Comm& comm) {
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  std::vector<int> budgets;
  io::Split split{};
  adapt::Select select = adapt::Select::kActive;
  adapt::PriorKind prior_kind = adapt::PriorKind::kPopulation;
  mpi::agree(comm, [&] {
    if (o.answers < 1) throw InputError("--answers: must be >= 1");
    if (o.test_answers < 0) throw InputError("--test-answers: must be >= 0");
    budgets = parse_budgets(o.budgets, o.answers);
    split = parse_group(o.group);
    select = adapt::kSelectNames.parse(o.select, "--select");
    prior_kind = adapt::kPriorKindNames.parse(o.prior, "--prior");
    if (o.model.empty() == o.types.empty())
      throw InputError(
          "--model, --types: give one (a fitted model, or a types file of pref types)");
    if (!o.types.empty()) {
      if (o.prior_opt->count() || o.components_opt->count())
        throw InputError(
            "--types: the estimator is the discrete posterior over the types file's atoms; "
            "--prior and --components do not apply");
      if (!o.select_opt->count()) select = adapt::Select::kInfo;
      if (select != adapt::Select::kInfo && select != adapt::Select::kRandom)
        throw InputError(
            fmt::format("--select {}: with --types only info (the default) or random", o.select));
    } else if (select == adapt::Select::kInfo && prior_kind != adapt::PriorKind::kMixture)
      throw InputError(
          "--select info: needs --prior mixture (it chooses among the mixture's "
          "components)");
    if (o.components < 1) throw InputError("--components: must be >= 1");
  });
  // With --types, Z and the prior come from the types file (hd holds its counts alone).
  const bool with_types = !o.types.empty();
  const std::string& source = with_types ? o.types : o.model;
  std::optional<io::TypesData> td;
  io::ModelHeader hd;
  if (with_types) {
    td = io::read_types(o.types, comm);
    hd.comparisons = td->comparisons;
    hd.rank = td->rank;
  } else {
    hd = io::read_model_header(o.model, comm);
  }
  const int J = static_cast<int>(hd.rank);
  mpi::agree(comm, [&] {
    if (hd.kind == io::ModelKind::kShared)
      throw InputError(o.model +
                       ": a shared model (kind 'shared': one score per comparison, the "
                       "same for every user) has no user weights to adapt (--model)");
  });
  const io::LabelFile data = io::LabelFile::open(o.data, comm, "--data");
  mpi::agree(comm, [&] {
    io::require_compatible({source, with_types ? "--types" : "--model",
                            with_types ? "types file" : "model", hd.users, hd.comparisons},
                           data, "--data", /*users=*/false);
    if (!data.has(split)) {
      if (o.group.empty())
        throw InputError(o.data +
                         ": no /new_users group (the new users' answer pools); name "
                         "another label group with --group");
      throw InputError(fmt::format("{}: no group {} (--group)", o.data, io::split_group(split)));
    }
  });
  io::AtomicOutput out(o.out, o.overwrite, comm);

  // The penalties: the paper's ridge, and the population prior when anything uses it.
  const adapt::Penalty ridge = adapt::Penalty::ridge(J, adapt::kPaperRidge);
  const bool want_prior = !with_types && (prior_kind == adapt::PriorKind::kPopulation ||
                                          select == adapt::Select::kBayes);
  std::optional<adapt::Mixture> mixture;
  std::optional<adapt::Types> types;
  if (with_types) {
    mpi::agree(comm, [&] {
      types = adapt::Types::from_file(td->atoms, td->atom_weights, J,
                                      ordinal::Params{td->r, td->s, td->a});
    });
    log::info(comm,
              "prior: the exact discrete posterior over the {} atoms of positive weight of {} "
              "(prior: the atoms' shares; ordinal labels r={:.4f} s={:.4f} a={:.4f})",
              types->K(), o.types, td->r, td->s, td->a);
  }
  if (!with_types && prior_kind == adapt::PriorKind::kMixture) {
    // The first kMixtureUsers fitted users (all of a small model), read by every rank and
    // clustered the same way everywhere.
    const std::uint64_t n = std::min<std::uint64_t>(hd.users, kMixtureUsers);
    const std::vector<double> rows =
        io::read_model_rows(o.model, comm, "user_factors", 0, n, hd.rank);
    mpi::agree(comm, [&] {
      try {
        mixture = adapt::fit_mixture(rows.data(), n, J, o.components, o.seed);
      } catch (const InputError& e) {
        throw InputError(o.model + ": /user_factors: " + e.what());
      }
    });
    log::info(comm,
              "prior: a mixture of {} Gaussians (k-means of the first {} of {}'s {} fitted users)",
              mixture->size(), n, o.model, hd.users);
  }
  std::optional<adapt::Penalty> prior;
  std::string prior_source = "none";
  if (want_prior) {
    Eigen::VectorXd mean(J);
    Eigen::MatrixXd cov(J, J);
    if (!hd.prior_mean.empty()) {  // read and checked with the header
      mean = Eigen::Map<const Eigen::VectorXd>(hd.prior_mean.data(), J);
      cov = Eigen::Map<const RowMatrix>(hd.prior_covariance.data(), J, J);
      prior_source = "model";
      log::info(comm, "prior: the population prior stored in {} (/prior)", o.model);
    } else {
      const Moments m = population_moments(comm, o.model, hd.users, J);
      mean = m.mean;
      cov = m.covariance;
      prior_source = "fitted-users";
      log::info(comm,
                "prior: {} has no /prior group; using the mean and covariance of its {} "
                "fitted users",
                o.model, hd.users);
    }
    mpi::agree(comm, [&] { prior = adapt::Penalty::gaussian(mean, cov, o.model + ": prior"); });
  }
  // With the mixture alone, the source attribute names it (/prior is then absent).
  if (mixture && !prior) prior_source = "fitted-users-mixture";
  // Unused with a mixture or types.
  const adapt::Penalty& estimate =
      prior_kind == adapt::PriorKind::kPopulation && prior ? *prior : ridge;
  const adapt::Penalty* selection = select == adapt::Select::kBayes    ? &*prior
                                    : select == adapt::Select::kActive ? &ridge
                                                                       : nullptr;

  // Z on every rank, read once; the users by count, each rank a contiguous range.
  const std::vector<double> Z =
      with_types
          ? std::move(td->Z)
          : io::read_model_rows(o.model, comm, "comparison_factors", 0, hd.comparisons, hd.rank);
  if (types) {
    types->tabulate(Z.data(), Z.size() / std::size_t(J));
    log::info(
        comm, "types: {}",
        types->table.empty()
            ? std::string("answer model per user (the table of every comparison would "
                          "exceed 512 MiB per rank)")
            : fmt::format("answer model of the {} comparisons tabulated ({:.1f} MiB per rank)",
                          Z.size() / std::size_t(J),
                          types->table.size() * sizeof(double) / 1048576.0));
  }
  const std::uint64_t N = data.users_of(split);
  const Partitions parts{Partition::uniform(N, comm.size()),
                         Partition::uniform(data.comparisons(), comm.size())};
  LabelColumns cols = data.read(split, comm);
  // The ordinal model of --types needs categorical answers.
  if (with_types)
    mpi::agree(comm, [&] {
      ordinal::check_categorical(cols, o.data + ": " + io::split_group(split) + "/value");
    });
  LabelMatrix m = distribute(comm, std::move(cols), parts, N, data.comparisons(),
                             Duplicates::kError, o.data + ": " + io::split_group(split));
  // Cross-file identity of the output: the model's comparison factors (with --types, the model
  // the types file records) and the labels of the group.
  const std::string model_checksum =
      with_types ? td->model_checksum : hash::hex(hash::rows(0, Z, hd.rank));
  const std::string data_checksum = hash::hex(labels_checksum(comm, m));
  m.by_comparison = Csr();  // only the users' rows are needed
  const auto t_read = clock::now();
  const int me = comm.rank();
  const std::uint64_t first = parts.users.begin(me), mine = parts.users.count(me);
  const std::size_t need = std::size_t(o.answers) + std::size_t(o.test_answers);
  mpi::agree(comm, [&] {
    for (std::uint64_t r = 0; r < mine; ++r)
      if (m.by_user.row_size(r) < need)
        throw InputError(
            fmt::format("{}: {}: user {} has {} answers in its pool, fewer than --answers {} + "
                        "--test-answers {}",
                        o.data, io::split_group(split), first + r, m.by_user.row_size(r), o.answers,
                        o.test_answers),
            first + r);
  });
  log::info(comm,
            "adapt: {} users of {}{}, J={}, {} answers each ({}, estimator {}), {} held "
            "out per user, {} ranks",
            N, o.data, io::split_group(split), J, o.answers, adapt::select_name(select),
            with_types                                    ? "posterior mean over the types' atoms"
            : prior_kind == adapt::PriorKind::kPopulation ? "MAP under the population prior"
            : prior_kind == adapt::PriorKind::kMixture    ? "posterior mean under the mixture prior"
                                                          : "MLE with 0.001 I",
            o.test_answers, comm.size());

  const std::size_t K = o.answers, B = budgets.size();
  io::AdaptedRows rows;
  rows.weights.resize(mine * J);
  rows.covariance.resize(mine * J * J);
  rows.asked.resize(mine * K);
  rows.answers.resize(mine * K);
  rows.budget_auc.resize(mine * B);
  adapt::Plan plan;
  plan.select = select;
  plan.answers = o.answers;
  plan.budgets = budgets;
  plan.seed = o.seed;
  plan.estimate = &estimate;
  plan.selection = selection;
  plan.mixture = mixture ? &*mixture : nullptr;
  plan.types = types ? &*types : nullptr;
  adapt::Workspace ws;
  adapt::UserResult res;
  std::uint64_t newton_steps = 0;
  std::vector<double> auc_sum(B, 0.0), auc_users(B, 0.0), above(B, 0.0);
  // Progress from rank 0's own users (no communication): ranks hold equal counts.
  std::uint64_t next_report = mine / 10;
  for (std::uint64_t r = 0; r < mine; ++r) {
    if (r == next_report && r > 0) {
      log::info(comm, "adapt: {}% of rank 0's {} users done", 100 * r / mine, mine);
      next_report += mine / 10;
    }
    const std::uint64_t a = m.by_user.ptr[r], n = m.by_user.row_size(r);
    const std::uint64_t nA = n - std::uint64_t(o.test_answers);
    // The pool in comparison-id order; the last --test-answers entries are held out.
    adapt::UserPool pool{{m.by_user.col.data() + a, nA},
                         {m.by_user.val.data() + a, nA},
                         {m.by_user.col.data() + a + nA, n - nA},
                         {m.by_user.val.data() + a + nA, n - nA}};
    adapt::adapt_user(first + r, Z.data(), J, pool, plan, ws, res);
    std::copy(res.u.data(), res.u.data() + J, rows.weights.data() + r * J);
    std::copy(res.covariance.data(), res.covariance.data() + J * J,
              rows.covariance.data() + r * J * J);  // symmetric: row- and column-major agree
    std::copy(res.asked.begin(), res.asked.end(), rows.asked.begin() + r * K);
    std::copy(res.answers.begin(), res.answers.end(), rows.answers.begin() + r * K);
    std::copy(res.budget_auc.begin(), res.budget_auc.end(), rows.budget_auc.begin() + r * B);
    newton_steps += res.newton_steps;
    for (std::size_t b = 0; b < B; ++b)
      if (!std::isnan(res.budget_auc[b])) {
        auc_sum[b] += res.budget_auc[b];
        auc_users[b] += 1;
        above[b] += res.budget_auc[b] > 0.8;
      }
  }
  const double local_seconds = std::chrono::duration<double>(clock::now() - t_read).count();
  const double adapt_seconds = mpi::allreduce_max(comm, local_seconds);

  io::AdaptedHeader ah;
  ah.users = N;
  ah.comparisons = hd.comparisons;
  ah.rank = hd.rank;
  ah.answers = static_cast<std::uint32_t>(o.answers);
  ah.test_answers = static_cast<std::uint32_t>(o.test_answers);
  ah.select = adapt::select_name(select);
  ah.prior = adapt::kPriorKindNames.name(with_types ? adapt::PriorKind::kTypes : prior_kind);
  ah.prior_source = with_types ? "types-atom-weights" : prior_source;
  ah.model = source;
  ah.data = o.data;
  ah.model_checksum = model_checksum;
  ah.data_checksum = data_checksum;
  ah.group = io::split_group(split);
  ah.ridge = with_types ? 0.0 : adapt::kPaperRidge;
  ah.seed = o.seed;
  ah.budgets.assign(budgets.begin(), budgets.end());
  if (prior) {
    const Eigen::MatrixXd cov = prior->precision.inverse();
    ah.prior_mean.assign(prior->mean.data(), prior->mean.data() + J);
    ah.prior_covariance.assign(cov.data(), cov.data() + J * J);
  }
  if (mixture) {
    for (const adapt::Penalty& c : mixture->components) {
      const Eigen::MatrixXd cov = c.precision.inverse();
      ah.mixture_mean.insert(ah.mixture_mean.end(), c.mean.data(), c.mean.data() + J);
      ah.mixture_covariance.insert(ah.mixture_covariance.end(), cov.data(), cov.data() + J * J);
    }
    for (double lw : mixture->log_weight) ah.mixture_weight.push_back(std::exp(lw));
  }
  io::write_adapted(out.temp_path(), comm, ah, parts.users, rows);
  out.commit();

  mpi::allreduce(comm, std::span<double>(auc_sum), MPI_SUM);
  mpi::allreduce(comm, std::span<double>(auc_users), MPI_SUM);
  mpi::allreduce(comm, std::span<double>(above), MPI_SUM);
  const std::uint64_t steps = mpi::allreduce_sum(comm, newton_steps);
  const std::vector<double> rss = mpi::allgather(comm, peak_rss_mib());
  const std::vector<double> cpu = mpi::allgather(comm, cpu_seconds());
  const double total = std::chrono::duration<double>(clock::now() - t0).count();
  std::string rss_text, cpu_text;
  for (double x : rss) rss_text += fmt::format("{}{:.0f}", rss_text.empty() ? "" : " ", x);
  for (double x : cpu) cpu_text += fmt::format("{}{:.1f}", cpu_text.empty() ? "" : " ", x);
  log::info(comm,
            "adapt: {} users in {:.2f} s of adaptation ({:.0f} users/s, {:.1f} Newton steps "
            "per user), {:.2f} s end to end; CPU seconds per rank: {}; peak memory per rank "
            "(MiB): {}",
            N, adapt_seconds, N / std::max(adapt_seconds, 1e-9),
            N ? double(steps) / double(N) : 0.0, total, cpu_text, rss_text);
  if (me != 0) return 0;
  if (o.json) {
    fmt::print(
        "{{\"users\": {}, \"seconds\": {:.3f}, \"users_per_second\": {:.1f}, "
        "\"cpu_seconds\": [{}], \"peak_rss_mib\": [{}], \"budgets\": [",
        N, total, N / std::max(adapt_seconds, 1e-9), cpu_text, rss_text);
    for (std::size_t b = 0; b < B; ++b)
      fmt::print(
          "{}{{\"answers\": {}, \"users_with_auc\": {}, \"mean_auc\": {}, "
          "\"share_above_0.8\": {}}}",
          b ? ", " : "", budgets[b], auc_users[b],
          auc_users[b] ? fmt::format("{:.6f}", auc_sum[b] / auc_users[b]) : "null",
          auc_users[b] ? fmt::format("{:.6f}", above[b] / auc_users[b]) : "null");
    fmt::print("]}}\n");
  } else if (o.test_answers > 0) {
    fmt::print("answers  users  mean held-out ROC-AUC  share > 0.8\n");
    for (std::size_t b = 0; b < B; ++b)
      fmt::print("{:7d}  {:5.0f}  {:20.4f}  {:11.3f}\n", budgets[b], auc_users[b],
                 auc_sum[b] / auc_users[b], above[b] / auc_users[b]);
  }
  return 0;
}
}  // namespace

Runner add_adapt(CLI::App& app) {
  auto o = std::make_shared<AdaptOptions>();
  app.add_option("--model", o->model,
                 "Model file written by pref fit (Z is kept fixed); or give --types");
  app.add_option("--types", o->types,
                 "Types file written by pref types instead of --model: Z from it, the estimator "
                 "the exact posterior over its atoms (prior: their shares of the training "
                 "users) under its ordinal label model; --select info (default) or random");
  app.add_option("--data", o->data, "Label file holding the new users' answer pools")->required();
  app.add_option("--out", o->out, "Output adapted-users file (HDF5, docs/format.md)")->required();
  app.add_option("--answers", o->answers, "Questions asked per user (K)");
  app.add_option("--test-answers", o->test_answers,
                 "Held out per user: the last T of its pool in comparison-id order, never asked, "
                 "scored by held-out ROC-AUC");
  o->select_opt =
      app.add_option("--select", o->select,
                     "Question choice: random; active (the paper's criterion with 0.001 I and the "
                     "MLE); bayes (the prior's precision and the MAP); info (the mutual "
                     "information between the answer and the mixture's component; needs --prior "
                     "mixture)")
          ->check(one_of(adapt::kSelectNames));
  o->prior_opt =
      app.add_option("--prior", o->prior,
                     "Estimator: population (MAP under the model's prior, else the fitted users' "
                     "moments), mixture (posterior mean under a mixture of --components Gaussians "
                     "fitted to the model's users, Laplace per component) or none (MLE with the "
                     "paper's 0.001 I ridge)")
          ->check(one_of(adapt::kPriorKindNames, {adapt::PriorKind::kTypes}));
  o->components_opt =
      app.add_option("--components", o->components,
                     "Components of --prior mixture (k-means clusters of the fitted users)");
  app.add_option("--group", o->group, "Label group of the pools (default /new_users)");
  app.add_option("--budgets", o->budgets,
                 "Comma-separated answer counts at which to record held-out AUC (default: "
                 "--answers)");
  app.add_option("--seed", o->seed, "Seed of the random question choices");
  app.add_flag("--json", o->json, "Print one JSON summary on standard output");
  app.add_flag("--overwrite", o->overwrite, "Replace an existing output file");
  return [o](const mpi::Comm& comm) {
    if (o->json) log::set_quiet(true);
    return run_adapt(*o, comm);
  };
}

}  // namespace pref::cli
