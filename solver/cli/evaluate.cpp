// pref evaluate: quality of a model on a split of a label file.
#include <fmt/core.h>

#include <cmath>
#include <memory>
#include <nlohmann/json.hpp>

#include "io/model_file.hpp"
#include "solver/base/log.hpp"
#include "solver/cli/commands.hpp"
#include "solver/cli/data.hpp"
#include "solver/eval/split_scores.hpp"
#include "solver/fit/fit.hpp"
#include "solver/synthetic/reference.hpp"

namespace pref::cli {

namespace {
struct EvaluateOptions {
  std::string model, data, split = "test", duplicates = "error", reference;
  bool json = false;
};
}  // namespace

Runner add_evaluate(CLI::App& app) {
  auto o = std::make_shared<EvaluateOptions>();
  app.add_option("--model", o->model, "Model file written by pref fit");
  app.add_option("--reference", o->reference,
                 "Instead of --model, a synthetic population's reference from its /truth: "
                 "truth (the true model) or bayes (each user's MAP estimate from its training "
                 "labels with the true comparison factors and the true population's mean and "
                 "covariance as prior: the known-comparisons Bayes ceiling) or known-users (each "
                 "comparison's MAP estimate with the true users, then each user's MAP as in "
                 "bayes with those: what the labels can tell of the comparisons at best)")
      ->check(CLI::IsMember({"truth", "bayes", "known-users"}));
  app.add_option("--data", o->data, "Label file (HDF5)")->required();
  app.add_option("--split", o->split, "Which labels to score")
      ->check(CLI::IsMember({"train", "validation", "test"}));
  app.add_option("--duplicates", o->duplicates, "Two labels of one (user, comparison)")
      ->check(CLI::IsMember({"error", "mean"}));
  app.add_flag("--json", o->json, "Print one JSON object on standard output");
  return [o](const mpi::Comm& comm) {
    if (o->json) log::set_quiet(true);
    mpi::agree(comm, [&] {
      if (o->model.empty() == o->reference.empty())
        throw InputError("--model, --reference: give exactly one of them");
    });
    const io::LabelFile data = io::LabelFile::open(o->data, comm);
    const io::Split split = io::parse_split(o->split, "--split");
    io::ModelHeader hd;  // a reference needs only the data's shape
    if (o->model.empty()) {
      hd.users = data.users();
      hd.comparisons = data.comparisons();
    } else {
      hd = io::read_model_header(o->model, comm);
    }
    mpi::agree(comm, [&] {
      if (hd.users != data.users() || hd.comparisons != data.comparisons())
        throw InputError(fmt::format(
            "{}: the model has {} users and {} comparisons but {} has {} and {} (--model, --data)",
            o->model, hd.users, hd.comparisons, o->data, data.users(), data.comparisons()));
      if (!data.has(split))
        throw InputError(fmt::format("{}: no {} split (group {}) (--split)", o->data, o->split,
                                     io::split_group(split)));
    });
    const LoadOptions lo{parse_duplicates(o->duplicates), false};
    Factors f;
    std::optional<LabelMatrix> train;  // --reference bayes: the users' answers
    if (o->reference == "bayes" || o->reference == "known-users")
      train = load_split(data, io::Split::kTrain, comm, std::nullopt, lo);
    LabelMatrix m =
        load_split(data, split, comm, train ? std::optional(train->parts) : std::nullopt, lo);
    if (!o->reference.empty()) {
      const Reference kind = o->reference == "truth"   ? Reference::kTruth
                             : o->reference == "bayes" ? Reference::kBayes
                                                       : Reference::kKnownUsers;
      f = reference_factors(comm, data, kind, train ? *train : m);
    } else {
      io::ModelFile mf = io::read_model(o->model, comm, m.parts.users, m.parts.comparisons);
      f = Factors{static_cast<int>(hd.rank), std::move(mf.U), std::move(mf.Z)};
    }
    std::vector<double> user_aucs;
    // A model's log-loss is that of its calibrated probabilities (solver/eval/calibration.hpp);
    // the uncalibrated one is reported beside it.
    const double scale = o->model.empty() ? 1.0 : hd.calibration_scale;
    double logloss_raw = 0;
    const SplitMetrics s = evaluate_split(comm, m, f, &user_aucs, scale, &logloss_raw);
    const double qs[5] = {0.1, 0.25, 0.5, 0.75, 0.9};
    const std::vector<double> q = global_quantiles(comm, std::move(user_aucs), qs);
    if (comm.rank() != 0) return 0;
    auto num = [](double x) { return std::isnan(x) ? nlohmann::json(nullptr) : nlohmann::json(x); };
    nlohmann::json j = {{"model", o->model.empty() ? "reference:" + o->reference : o->model},
                        {"data", o->data},
                        {"split", o->split},
                        {"labels", s.labels},
                        {"logloss", num(s.logloss)},
                        {"logloss_uncalibrated", num(logloss_raw)},
                        {"calibration_scale", scale},
                        {"accuracy", num(s.accuracy)},
                        {"auc", num(s.auc)},
                        {"user_auc_mean", num(s.user_auc_mean)},
                        {"users_with_auc", s.users_with_auc},
                        {"user_auc_quantiles",
                         {{"0.1", num(q[0])},
                          {"0.25", num(q[1])},
                          {"0.5", num(q[2])},
                          {"0.75", num(q[3])},
                          {"0.9", num(q[4])}}}};
    if (o->json) {
      fmt::print("{}\n", j.dump());
      return 0;
    }
    fmt::print("{} on {} ({} split, {} labels)\n", j["model"].get<std::string>(), o->data, o->split,
               s.labels);
    fmt::print("  logloss   {:.4f} (calibration scale {:.4g}; uncalibrated {:.4f})\n", s.logloss,
               scale, logloss_raw);
    fmt::print("  accuracy  {:.4f}\n  ROC-AUC   {:.4f}\n", s.accuracy, s.auc);
    fmt::print(
        "  per-user ROC-AUC: mean {:.4f} over {} users; quantiles 10% {:.3f} 25% {:.3f} "
        "50% {:.3f} 75% {:.3f} 90% {:.3f}\n",
        s.user_auc_mean, s.users_with_auc, q[0], q[1], q[2], q[3], q[4]);
    return 0;
  };
}

}  // namespace pref::cli
