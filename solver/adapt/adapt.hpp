#pragma once
// New users from a few answers (issue 13, docs/design.md "Adapting new users"): one user's
// question loop (adapt_user) over the parts in this folder: the Newton solve of the user's
// weights under a Gaussian penalty (new_user.hpp), the mixture prior (mixture.hpp), the exact
// posterior over discrete types (discrete_posterior.hpp) and the question criteria
// (questions.hpp).
//
// Everything about one user is a pure function of the user's pool, Z, the penalty and the seed,
// so results do not depend on the rank count.
#include <Eigen/Core>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "solver/adapt/discrete_posterior.hpp"
#include "solver/adapt/mixture.hpp"
#include "solver/adapt/new_user.hpp"
#include "solver/adapt/ordinal_user.hpp"
#include "solver/adapt/questions.hpp"

namespace pref::adapt {

// The question rule, the estimator's prior and the answer model of a rule (`pref adapt
// --select --prior --likelihood`), each named as on the command line and in the adapted file.
enum class Select { kRandom, kActive, kBayes, kInfo };
enum class Prior { kPopulation, kMixture, kNone, kTypes };
enum class AnswerModel { kLogistic, kOrdinal };
const char* select_name(Select s);
const char* prior_name(Prior p);
const char* answer_model_name(AnswerModel m);
// Parse the names above; throw InputError naming `option` for any other.
Select parse_select(const std::string& name, const std::string& option);
Prior parse_prior(const std::string& name, const std::string& option);
AnswerModel parse_answer_model(const std::string& name, const std::string& option);

struct UserPool {
  std::span<const std::uint32_t> comparison;  // askable part, in pool order
  std::span<const float> value;
  std::span<const std::uint32_t> test_comparison;  // held out, never asked
  std::span<const float> test_value;
};

struct Plan {
  Select select = Select::kActive;
  int answers = 10;
  std::vector<int> budgets;  // increasing, each in 1..answers: held-out AUC recorded there
  std::uint64_t seed = 1;
  const Penalty* estimate = nullptr;   // the reported estimator
  const Penalty* selection = nullptr;  // the criterion's (active: ridge, bayes: prior)
  // When set, the reported estimator is the mixture posterior's mean (estimate is unused);
  // `info` requires it.
  const Mixture* mixture = nullptr;
  // When set (adapt --types), the estimator is the exact discrete posterior over its atoms and
  // the selection random or info (discrete_information); estimate, selection and mixture are
  // unused.
  const Types* types = nullptr;
  // When set, the Gaussian estimator and criterion use this tie-aware answer model
  // (solver/adapt/ordinal_user.hpp) instead of the logistic one; not with a mixture or types.
  const ordinal::Params* answer_model = nullptr;
};

struct UserResult {
  Eigen::VectorXd u;
  Eigen::MatrixXd covariance;  // inverse Hessian of the estimator's f at u (mixture: the
                               // posterior's covariance, MixturePosterior)
  std::vector<std::uint32_t> asked;
  std::vector<float> answers;
  std::vector<double> budget_auc;  // per budget; NaN when the test part lacks a class
  int newton_steps = 0;
};

// Runs one user's question loop. user is the global id (it keys the random stream).
void adapt_user(std::uint64_t user, const double* Z, int J, const UserPool& pool, const Plan& plan,
                Workspace& ws, UserResult& out);

// The Philox stream of the random question choices (and of `active`'s first question):
// draw t of user i picks uniformly among the unasked pool entries, Rng(seed, kAdaptStream, i).
inline constexpr std::uint32_t kAdaptStream = 101;

}  // namespace pref::adapt
