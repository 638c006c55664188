#include "solver/adapt/adapt.hpp"

#include <fmt/core.h>

#include <array>
#include <cmath>
#include <limits>
#include <utility>

#include "solver/base/error.hpp"
#include "solver/base/rng.hpp"
#include "solver/eval/metrics.hpp"

namespace pref::adapt {

namespace {
template <class E, std::size_t N>
using Names = std::array<std::pair<E, const char*>, N>;
constexpr Names<Select, 4> kSelectNames = {{{Select::kRandom, "random"},
                                            {Select::kActive, "active"},
                                            {Select::kBayes, "bayes"},
                                            {Select::kInfo, "info"}}};
constexpr Names<Prior, 4> kPriorNames = {{{Prior::kPopulation, "population"},
                                          {Prior::kMixture, "mixture"},
                                          {Prior::kNone, "none"},
                                          {Prior::kTypes, "types"}}};
constexpr Names<AnswerModel, 2> kAnswerModelNames = {
    {{AnswerModel::kLogistic, "logistic"}, {AnswerModel::kOrdinal, "ordinal"}}};

template <class E, std::size_t N>
const char* name_of(const Names<E, N>& names, E e) {
  for (const auto& [value, name] : names)
    if (value == e) return name;
  return "?";
}
template <class E, std::size_t N>
E parse_name(const Names<E, N>& names, const std::string& text, const std::string& option) {
  std::string all;
  for (const auto& [value, name] : names) {
    if (text == name) return value;
    all += (all.empty() ? "" : ", ") + std::string(name);
  }
  throw InputError(fmt::format("{}: '{}' is not one of {}", option, text, all));
}
}  // namespace

const char* select_name(Select s) {
  return name_of(kSelectNames, s);
}
const char* prior_name(Prior p) {
  return name_of(kPriorNames, p);
}
const char* answer_model_name(AnswerModel m) {
  return name_of(kAnswerModelNames, m);
}
Select parse_select(const std::string& name, const std::string& option) {
  return parse_name(kSelectNames, name, option);
}
Prior parse_prior(const std::string& name, const std::string& option) {
  return parse_name(kPriorNames, name, option);
}
AnswerModel parse_answer_model(const std::string& name, const std::string& option) {
  return parse_name(kAnswerModelNames, name, option);
}

namespace {
double held_out_auc(const Eigen::VectorXd& u, const double* Z, int J, const UserPool& pool) {
  std::vector<Scored> items(pool.test_comparison.size());
  Eigen::Map<const Eigen::VectorXd> uv(u.data(), J);
  for (std::size_t k = 0; k < items.size(); ++k) {
    Eigen::Map<const Eigen::VectorXd> z(Z + std::size_t(pool.test_comparison[k]) * J, J);
    items[k] = {z.dot(uv), pool.test_value[k]};
  }
  return group_auc(items);
}

// Index of the r-th not yet asked pool entry.
int nth_unasked(const std::vector<char>& asked, std::uint64_t r) {
  for (std::size_t c = 0; c < asked.size(); ++c)
    if (!asked[c] && r-- == 0) return static_cast<int>(c);
  return -1;
}
}  // namespace

namespace {
// The pool's comparison factors as the candidate rows (ws.candidates), and out emptied for this
// user: the start of every adapt_user path.
void start_user(const double* Z, int J, const UserPool& pool, const Plan& plan, Workspace& ws,
                UserResult& out) {
  const std::size_t nA = pool.comparison.size();
  ws.candidates.resize(static_cast<Eigen::Index>(nA), J);
  for (std::size_t c = 0; c < nA; ++c)
    ws.candidates.row(c) =
        Eigen::Map<const Eigen::RowVectorXd>(Z + std::size_t(pool.comparison[c]) * J, J);
  out.asked.clear();
  out.answers.clear();
  out.budget_auc.assign(plan.budgets.size(), std::numeric_limits<double>::quiet_NaN());
  out.newton_steps = 0;
}

// adapt_user with plan.types: the exact discrete posterior (Types).
void adapt_user_types(std::uint64_t user, const double* Z, int J, const UserPool& pool,
                      const Plan& plan, Workspace& ws, UserResult& out) {
  const Types& ty = *plan.types;
  const std::size_t nA = pool.comparison.size();
  const int K = ty.K();
  const bool info = plan.select == Select::kInfo;
  start_user(Z, J, pool, plan, ws, out);
  using RowM = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::Map<const RowM> A(ty.atoms.data(), K, J);
  // The answer model of each pool entry against every atom (Types::answer_row): a row of the
  // table, or of this user's own rows when there is no table.
  thread_local std::vector<double> own;
  thread_local std::vector<const double*> rows;
  const std::size_t width = std::size_t(Types::kTableRow) * K;
  if (ty.table.empty()) own.resize(nA * width);
  rows.resize(nA);
  for (std::size_t c = 0; c < nA; ++c) {
    if (ty.table.empty()) {
      rows[c] = own.data() + c * width;
      ty.answer_row(Z + std::size_t(pool.comparison[c]) * J, own.data() + c * width);
    } else {
      rows[c] = ty.table.data() + std::size_t(pool.comparison[c]) * width;
    }
  }
  // The posterior: log weights lw; w normalized over every atom (the reported mean and
  // covariance), and over the support alone for info (discrete_posterior.hpp).
  thread_local std::vector<int> support;
  thread_local std::vector<double> focus;
  thread_local InfoTerms terms;
  if (info) terms.start(rows, K);
  Eigen::VectorXd lw = Eigen::Map<const Eigen::VectorXd>(ty.log_prior.data(), K), w(K);
  auto normalize = [&] {
    const double top = lw.maxCoeff();
    w = (lw.array() - top).exp().matrix();
    w /= w.sum();
  };
  auto refocus = [&] {
    const double top = lw.maxCoeff();
    support.clear();
    focus.clear();
    double total = 0;
    for (int k = 0; k < K; ++k)
      if (lw[k] >= top - kPosteriorCut) {
        support.push_back(k);
        focus.push_back(std::exp(lw[k] - top));
        total += focus.back();
      }
    for (double& x : focus) x /= total;
  };
  normalize();
  if (info) refocus();
  std::vector<char> asked(nA, 0);
  Rng rng(plan.seed, static_cast<Stream>(kAdaptStream), user);
  Eigen::VectorXd mean = A.transpose() * w;
  std::size_t b = 0;
  for (int t = 0; t < plan.answers; ++t) {
    int pick;
    if (plan.select == Select::kInfo) {
      terms.scores(support, focus, asked, ws.scores);
      pick = best_unasked(ws.scores, asked);
      if (pick < 0) pick = nth_unasked(asked, 0);
    } else {
      pick = nth_unasked(asked, rng.below(nA - std::size_t(t)));
    }
    asked[pick] = 1;
    out.asked.push_back(pool.comparison[pick]);
    out.answers.push_back(pool.value[pick]);
    const int o = ordinal::outcome(pool.value[pick]);
    if (o < 0)
      throw InputError(fmt::format("new user {}: answer {} is not 0, 0.5 or 1 (--types)", user,
                                   pool.value[pick]));
    lw += Eigen::Map<const Eigen::VectorXd>(rows[pick] + (4 + o) * K, K);
    const bool at_budget = b < plan.budgets.size() && plan.budgets[b] == t + 1;
    if (info && t + 1 < plan.answers) refocus();
    if (at_budget || t + 1 == plan.answers) {
      normalize();
      mean = A.transpose() * w;
      if (at_budget) out.budget_auc[b++] = held_out_auc(mean, Z, J, pool);
    }
  }
  out.u = mean;
  out.covariance.setZero(J, J);
  for (int k = 0; k < K; ++k) {
    const Eigen::VectorXd d = A.row(k).transpose() - mean;
    out.covariance.noalias() += w[k] * d * d.transpose();
  }
  out.covariance = 0.5 * (out.covariance + out.covariance.transpose()).eval();
}
}  // namespace

void adapt_user(std::uint64_t user, const double* Z, int J, const UserPool& pool, const Plan& plan,
                Workspace& ws, UserResult& out) {
  if (plan.types) {
    if (plan.select != Select::kInfo && plan.select != Select::kRandom)
      throw InputError("--types: --select must be info or random");
    adapt_user_types(user, Z, J, pool, plan, ws, out);
    return;
  }
  const std::size_t nA = pool.comparison.size();
  const int K = plan.answers;
  start_user(Z, J, pool, plan, ws, out);
  std::vector<char> asked(nA, 0);
  Rng rng(plan.seed, static_cast<Stream>(kAdaptStream), user);

  const bool info = plan.select == Select::kInfo;
  if (info && !plan.mixture) throw InputError("--select info needs --prior mixture");
  if (plan.answer_model && plan.mixture)
    throw InputError("--likelihood ordinal: not with --prior mixture");
  // The criteria of active and bayes, with their own estimate u_sel.
  const bool chooses = plan.select == Select::kActive || plan.select == Select::kBayes;
  const bool mixture = plan.mixture != nullptr;
  // With the criterion's penalty the same as the estimator's, one solve serves both.
  const bool one_solve = chooses && !mixture && plan.selection == plan.estimate;
  Eigen::VectorXd u_sel = chooses ? plan.selection->mean : Eigen::VectorXd();
  Eigen::VectorXd u_est = mixture ? Eigen::VectorXd() : plan.estimate->mean;
  thread_local MixturePosterior post;
  post = MixturePosterior();
  Eigen::LLT<Eigen::MatrixXd> V;
  auto answers = [&] {
    return Answers{Z, J, std::span<const std::uint32_t>(out.asked),
                   std::span<const float>(out.answers)};
  };
  // The answer model: logistic, or the tie-aware one (V is then the Fisher information).
  const ordinal::Params* lik = plan.answer_model;
  // The tie-aware f is not convex (a non-tie answer's likelihood dips near m = 0), so its Newton
  // starts from the logistic MAP of the same answers (convex: one optimum, on the right side of
  // most answers) rather than from the previous estimate, which an early answer may have left in
  // another basin.
  auto solve_u = [&](Eigen::VectorXd& u, const Penalty& p) {
    if (!lik) return solve(u, answers(), p, ws);
    SolveStats st = solve(u, answers(), p, ws);
    st.steps += solve_ordinal(u, answers(), p, *lik, ws).steps;
    return st;
  };
  auto precision_at = [&](const Eigen::VectorXd& u, const Penalty& p) {
    if (lik)
      fisher_information(u, answers(), p, *lik, ws);
    else
      gradient_hessian(u, answers(), p, ws);
  };
  if (plan.select == Select::kBayes) {
    // No answers yet: the MAP is the prior mean and V_0 the prior precision, so even the first
    // question is chosen by the criterion.
    precision_at(u_sel, *plan.selection);
    V.compute(ws.H);
  }
  // No answers yet: the mixture's components are its prior, so info chooses the first question.
  if (info) mixture_update(*plan.mixture, answers(), post, ws);
  std::size_t b = 0;
  for (int t = 0; t < K; ++t) {
    int pick;
    if (info) {
      information(post, ws.candidates, ws.scores, ws);
      pick = best_unasked(ws.scores, asked);
      if (pick < 0) pick = nth_unasked(asked, 0);  // every score NaN
    } else if (!chooses || (plan.select == Select::kActive && t == 0)) {
      pick = nth_unasked(asked, rng.below(nA - std::size_t(t)));
    } else {
      criterion(u_sel, V, ws.candidates, ws.scores, ws.W, lik);
      pick = best_unasked(ws.scores, asked);
      if (pick < 0) pick = nth_unasked(asked, 0);  // every score NaN: cannot happen for PD V
    }
    asked[pick] = 1;
    out.asked.push_back(pool.comparison[pick]);
    out.answers.push_back(pool.value[pick]);
    if (lik && ordinal::outcome(pool.value[pick]) < 0)
      throw InputError(
          fmt::format("new user {}: answer {} is not 0, 0.5 or 1 (--likelihood ordinal)", user,
                      pool.value[pick]));
    if (chooses) {
      // V_{t+1} is recomputed in full at the new estimate (O(t J^2) + a J x J Cholesky): every
      // asked comparison's weight sigma'(u . z_s) changes with u, so a Sherman-Morrison update
      // by the new answer's term alone would not equal the formula.
      out.newton_steps += solve_u(u_sel, *plan.selection).steps;
      V.compute(ws.H);
    }
    const bool at_budget = b < plan.budgets.size() && plan.budgets[b] == t + 1;
    if (info) out.newton_steps += mixture_update(*plan.mixture, answers(), post, ws);
    if (at_budget || t + 1 == K) {
      if (mixture) {
        if (!info) out.newton_steps += mixture_update(*plan.mixture, answers(), post, ws);
        u_est = post.mean;
      } else if (one_solve) {
        u_est = u_sel;
      } else {
        out.newton_steps += solve_u(u_est, *plan.estimate).steps;
      }
      if (at_budget) out.budget_auc[b++] = held_out_auc(u_est, Z, J, pool);
    }
  }
  out.u = u_est;
  if (mixture) {
    out.covariance = post.covariance;
    return;
  }
  precision_at(u_est, *plan.estimate);
  Eigen::LLT<Eigen::MatrixXd> H(ws.H);
  out.covariance = H.solve(Eigen::MatrixXd::Identity(J, J));
  out.covariance = 0.5 * (out.covariance + out.covariance.transpose()).eval();
}

}  // namespace pref::adapt
