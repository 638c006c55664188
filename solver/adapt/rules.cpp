#include "solver/adapt/rules.hpp"

#include <fmt/core.h>

#include <Eigen/LU>
#include <algorithm>

#include "io/model_prior.hpp"
#include "solver/base/log.hpp"
#include "solver/prior/moments.hpp"

namespace pref::adapt {

namespace {
// --prior mixture clusters at most this many of the model's fitted users (the first ones).
constexpr std::uint64_t kMixtureUsers = 65536;
}  // namespace

std::string Rule::name() const {
  std::string n = fmt::format("{}/{}", select_name(select), prior_name(prior));
  if (answer_model == AnswerModel::kOrdinal) n += "/ordinal";
  return n;
}

SourceFiles SourceFiles::open(const std::string& model, const std::string& types,
                              const mpi::Comm& comm) {
  SourceFiles f;
  f.model = model;
  f.types = types;
  if (!types.empty()) {
    f.types_data = io::read_types(types, comm);
    f.J = static_cast<int>(f.types_data->rank);
    f.comparisons = f.types_data->comparisons;
  }
  if (model.empty()) return f;
  const io::ModelHeader& hd = f.model_header = io::read_model_header(model, comm);
  mpi::agree(comm, [&] {
    if (hd.kind == "shared")
      throw InputError(model +
                       ": a shared model (kind 'shared': one score per comparison, the "
                       "same for every user) has no user weights to adapt (--model)");
    if (hd.kind != "factor")
      throw InputError(
          fmt::format("{}: model kind '{}' is not supported (--model)", model, hd.kind));
    if (f.types_data &&
        (f.types_data->comparisons != hd.comparisons || f.types_data->rank != hd.rank))
      throw InputError(fmt::format(
          "{}: a types file of another model's comparisons: {} comparisons of rank {}, but the "
          "model {} has {} of rank {} (--types, --model)",
          types, f.types_data->comparisons, f.types_data->rank, model, hd.comparisons, hd.rank));
  });
  f.J = static_cast<int>(hd.rank);
  f.comparisons = hd.comparisons;
  return f;
}

void Sources::prepare(const Rule& rule, int components, const mpi::Comm& comm) {
  const int J = files_.J;
  if (rule.prior == Prior::kTypes) {
    if (types_) return;
    const io::TypesData& td = *files_.types_data;
    mpi::agree(comm, [&] {
      types_ = Types::from_file(td.atoms, td.atom_weights, J, ordinal::Params{td.r, td.s, td.a});
    });
    log::info(comm,
              "prior: the exact discrete posterior over the {} atoms of positive weight of {} "
              "(prior: the atoms' shares; ordinal labels r={:.4f} s={:.4f} a={:.4f})",
              types_->K(), files_.types, td.r, td.s, td.a);
    types_->tabulate(td.Z.data(), td.comparisons);
    log::info(
        comm, "types: {}",
        types_->table.empty()
            ? std::string("answer model per user (the table of every comparison would "
                          "exceed 512 MiB per rank)")
            : fmt::format("answer model of the {} comparisons tabulated ({:.1f} MiB per rank)",
                          td.comparisons, types_->table.size() * sizeof(double) / 1048576.0));
    return;
  }
  const io::ModelHeader& hd = files_.model_header;
  ridge_ = Penalty::ridge(J, kPaperRidge);
  if (rule.prior == Prior::kMixture && !mixture_) {
    // The first kMixtureUsers fitted users (all of a small model), read by every rank and
    // clustered the same way everywhere.
    const std::uint64_t n = std::min<std::uint64_t>(hd.users, kMixtureUsers);
    const std::vector<double> rows =
        io::read_model_rows(files_.model, comm, "user_factors", 0, n, hd.rank);
    mpi::agree(comm, [&] { mixture_ = fit_mixture(rows.data(), n, J, components, seed_); });
    log::info(comm,
              "prior: a mixture of {} Gaussians (k-means of the first {} of {}'s {} fitted users)",
              mixture_->size(), n, files_.model, hd.users);
  }
  if (rule.uses_prior() && !prior_) {
    Eigen::VectorXd mean(J);
    Eigen::MatrixXd cov(J, J);
    if (!hd.prior_mean.empty()) {  // read and checked with the header
      mean = Eigen::Map<const Eigen::VectorXd>(hd.prior_mean.data(), J);
      cov = Eigen::Map<const RowMatrix>(hd.prior_covariance.data(), J, J);
      prior_source_ = "model";
      log::info(comm, "prior: the population prior stored in {} (/prior)", files_.model);
    } else {
      const Moments m = population_moments(comm, files_.model, hd.users, J);
      mean = m.mean;
      cov = m.covariance;
      prior_source_ = "fitted-users";
      log::info(comm,
                "prior: {} has no /prior group; using the mean and covariance of its {} "
                "fitted users",
                files_.model, hd.users);
    }
    mpi::agree(comm, [&] { prior_ = Penalty::gaussian(mean, cov, files_.model + ": prior"); });
  }
  if (model_Z_.empty())
    model_Z_ =
        io::read_model_rows(files_.model, comm, "comparison_factors", 0, hd.comparisons, hd.rank);
}

const double* Sources::Z(const Rule& rule) const {
  return rule.prior == Prior::kTypes ? files_.types_data->Z.data() : model_Z_.data();
}

Plan Sources::plan(const Rule& rule, int answers, const std::vector<int>& budgets) const {
  Plan p;
  p.select = rule.select;
  p.answers = answers;
  p.budgets = budgets;
  p.seed = seed_;
  if (rule.prior == Prior::kTypes) {
    p.types = &*types_;
    return p;
  }
  // Unused with a mixture.
  p.estimate = rule.prior == Prior::kPopulation && prior_ ? &*prior_ : &ridge_;
  p.selection = rule.select == Select::kBayes    ? &*prior_
                : rule.select == Select::kActive ? &ridge_
                                                 : nullptr;
  p.mixture = rule.prior == Prior::kMixture ? &*mixture_ : nullptr;
  p.answer_model = rule.answer_model == AnswerModel::kOrdinal ? &*answer_model_ : nullptr;
  return p;
}

void Sources::describe(const Rule& rule, io::AdaptedHeader& ah) const {
  const int J = files_.J;
  const bool types = rule.prior == Prior::kTypes;
  ah.select = select_name(rule.select);
  ah.prior = prior_name(rule.prior);
  // With the mixture alone, the source attribute names it (/prior is then absent).
  ah.prior_source = types                                                 ? "types-atom-weights"
                    : rule.prior == Prior::kMixture && !rule.uses_prior() ? "fitted-users-mixture"
                    : rule.uses_prior()                                   ? prior_source_
                                                                          : "none";
  ah.model = types && files_.model.empty() ? files_.types : files_.model;
  if (!files_.model.empty() && !files_.types.empty()) ah.types = files_.types;
  ah.ridge = types ? 0.0 : kPaperRidge;
  if (rule.uses_prior()) {
    const Eigen::MatrixXd cov = prior_->precision.inverse();
    ah.prior_mean.assign(prior_->mean.data(), prior_->mean.data() + J);
    ah.prior_covariance.assign(cov.data(), cov.data() + J * J);
  }
  if (rule.prior == Prior::kMixture) {
    for (const Penalty& c : mixture_->components) {
      const Eigen::MatrixXd cov = c.precision.inverse();
      ah.mixture_mean.insert(ah.mixture_mean.end(), c.mean.data(), c.mean.data() + J);
      ah.mixture_covariance.insert(ah.mixture_covariance.end(), cov.data(), cov.data() + J * J);
    }
    for (double lw : mixture_->log_weight) ah.mixture_weight.push_back(std::exp(lw));
  }
  if (rule.answer_model == AnswerModel::kOrdinal) {
    ah.likelihood = answer_model_name(rule.answer_model);
    ah.ordinal = {answer_model_->r, answer_model_->s, answer_model_->a};
  }
}

}  // namespace pref::adapt
