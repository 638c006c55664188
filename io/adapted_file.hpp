#pragma once
// The adapted-users file written by `pref adapt` (docs/format.md, "Adapted users"):
//   /                 attrs format="pref-adapted", format_version=1, users (N), comparisons (M),
//                     rank (J), answers (K), test_answers, select, prior, prior_source, ridge,
//                     seed, model, data, group, mpi_ranks
//   /weights          N x J float64       the estimate after K answers
//   /covariance       N x J x J float64   the inverse Hessian of the estimator's objective there
//   /asked            N x K uint32        comparison ids asked, in order
//   /answers          N x K float32       the answers used
//   /budgets          B uint32            budgets at which the held-out AUC was recorded
//   /budget_auc       N x B float64       held-out ROC-AUC per user and budget (NaN: one class)
//   /prior/mean, /prior/covariance        the prior used (J, J x J float64), attr source
//   /mixture/weight, /mixture/mean,       with --prior mixture: its C components' weights
//   /mixture/covariance                   (C), means (C x J), covariances (C x J x J), float64
//   attr types                            with --model and --types both: the types file (model
//                                         then names the model)
//   attr likelihood = "ordinal", /ordinal the tie-aware answer model of the Gaussian rules
//     (attrs r, s, a)                     (absent: logistic)
//   /selection (attrs mode = "auto",      --select auto: how the rule was chosen; chosen and
//     chosen, candidates, users,          candidates name rules (select/prior[/ordinal],
//     held_out)                           candidates comma-separated), users the training
//                                         users sampled, held_out their labels scored
//   /selection/budgets (B uint32), /selection/evidence (C x B float64: the candidates' mean
//   held-out ROC-AUC on the sampled training users), /selection/evidence_users (B uint64: users
//   with an AUC), /selection/score (C float64: the mean over budgets; the largest is chosen);
//   the datasets are absent when only one rule could run
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "io/pref_file.hpp"
#include "solver/base/mpi.hpp"
#include "solver/base/partition.hpp"

namespace pref::io {

inline constexpr FileKind kAdaptedFile{"pref-adapted", "adapt output", 1};

struct AdaptedHeader {
  std::uint64_t users = 0, comparisons = 0;
  std::uint32_t rank = 0, answers = 0, test_answers = 0;
  std::string select, prior, prior_source, model, data, group;
  double ridge = 0;
  std::uint64_t seed = 0;
  std::vector<std::uint32_t> budgets;
  std::vector<double> prior_mean, prior_covariance;  // empty: no prior used
  // --prior mixture: C weights, C x J means, C x J x J covariances (empty: no mixture)
  std::vector<double> mixture_weight, mixture_mean, mixture_covariance;
  std::string types;                // empty: not written
  std::string likelihood;           // empty: logistic (not written); "ordinal": with `ordinal`
  std::array<double, 3> ordinal{};  // r, s, a
  // --select auto (absent: the rule was given).
  struct Selection {
    std::string chosen, candidates, held_out;
    std::uint64_t users = 0;
    std::vector<std::uint32_t> budgets;
    std::vector<double> evidence, score;        // C x B, C (empty: one rule could run)
    std::vector<std::uint64_t> evidence_users;  // B
  };
  std::optional<Selection> selection;
};

// This rank's users (rows of the `users` partition), row-major.
struct AdaptedRows {
  std::vector<double> weights, covariance, budget_auc;
  std::vector<std::uint32_t> asked;
  std::vector<float> answers;
};

// Collective: every rank writes its rows at its offset of `users`.
void write_adapted(const std::string& path, const mpi::Comm& comm, const AdaptedHeader& header,
                   const Partition& users, const AdaptedRows& rows);

}  // namespace pref::io
