#pragma once
// The rules of `pref adapt` (docs/design.md "Adapting new users"): a rule is a question choice,
// an estimator's prior and an answer model; Sources holds what the rules are made of, read from
// the run's files once (Z and the population prior of a model, the mixture fitted to its users,
// the atoms of a types file, the tie-aware answer model), and turns a rule into the Plan of
// adapt_user.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "io/adapted_file.hpp"
#include "io/model_file.hpp"
#include "io/types_file.hpp"
#include "solver/adapt/adapt.hpp"
#include "solver/base/mpi.hpp"

namespace pref::adapt {

struct Rule {
  Select select = Select::kBayes;
  Prior prior = Prior::kPopulation;
  AnswerModel answer_model = AnswerModel::kLogistic;
  // "bayes/population", "bayes/population/ordinal", "info/types", ...
  std::string name() const;
  // The Gaussian estimator's penalty is the population prior's (and `bayes` chooses with it).
  bool uses_prior() const {
    return prior != Prior::kTypes && (prior == Prior::kPopulation || select == Select::kBayes);
  }
  // Needs answers of 0, 0.5 or 1 (the ordinal label model).
  bool categorical() const {
    return prior == Prior::kTypes || answer_model == AnswerModel::kOrdinal;
  }
};

// The files of a run: a model (--model), a types file (--types), or both.
struct SourceFiles {
  std::string model, types;
  io::ModelHeader model_header;             // when model is given
  std::optional<io::TypesData> types_data;  // when types is given
  int J = 0;
  std::uint64_t comparisons = 0;
  // Opens and checks what is given: a model of kind factor; a types file; both of the same
  // comparisons and J (the minimal check that a types file is the model's: issue 22's
  // comparison-factor checksum will replace it). Collective; errors name the files and options.
  static SourceFiles open(const std::string& model, const std::string& types,
                          const mpi::Comm& comm);
};

class Sources {
 public:
  Sources(SourceFiles files, std::uint64_t seed) : files_(std::move(files)), seed_(seed) {}
  const SourceFiles& files() const { return files_; }
  int J() const { return files_.J; }

  // Loads what `rule` needs (collective; once each): the model's Z, its population prior (else
  // the fitted users' moments), the mixture of `components` Gaussians, the types' atoms. The
  // tie-aware answer model is set apart (set_answer_model), since it is fitted to the users.
  void prepare(const Rule& rule, int components, const mpi::Comm& comm);
  void set_answer_model(const ordinal::Params& p) { answer_model_ = p; }
  const std::optional<ordinal::Params>& answer_model() const { return answer_model_; }

  // The rule's Z (the types file's for --prior types, else the model's) and its plan; prepare
  // must have run for the rule.
  const double* Z(const Rule& rule) const;
  Plan plan(const Rule& rule, int answers, const std::vector<int>& budgets) const;

  // What the adapted file records of the rule: prior_source, the prior, the mixture.
  void describe(const Rule& rule, io::AdaptedHeader& header) const;
  const Penalty& prior() const { return *prior_; }

 private:
  SourceFiles files_;
  std::uint64_t seed_;
  std::vector<double> model_Z_;
  std::optional<Penalty> prior_;
  std::string prior_source_ = "none";
  Penalty ridge_;
  std::optional<Mixture> mixture_;
  std::optional<Types> types_;
  std::optional<ordinal::Params> answer_model_;
};

}  // namespace pref::adapt
