#pragma once
// Quality metrics of predictions spread over ranks: log-loss, accuracy and ROC-AUC (global and
// mean per user), ties (label 0.5) excluded from accuracy and AUC. The global AUC is exact: a
// distributed sample sort orders all scores, then the Mann-Whitney count runs across ranks.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "solver/base/mpi.hpp"

namespace pref {

struct Scored {
  double score;  // margin u.z
  float label;   // in [0, 1]
};

// Exact ROC-AUC of all ranks' items (labels > 0.5 positive, < 0.5 negative, 0.5 skipped);
// NaN if a class is empty. Collective. Reorders `items`.
double global_auc(const mpi::Comm& comm, std::vector<Scored>& items);
// The same with a scratch buffer that is kept (its memory is reused by the next call).
double global_auc(const mpi::Comm& comm, std::vector<Scored>& items, std::vector<Scored>& scratch);

// Exact AUC of one small group (e.g. one user's labels); NaN if a class is empty.
double group_auc(std::span<Scored> items);

// Value at quantile q in [0, 1] (nearest rank) of all ranks' values. Collective.
std::vector<double> global_quantiles(const mpi::Comm& comm, std::vector<double> values,
                                     std::span<const double> qs);

struct SplitMetrics {
  std::uint64_t labels = 0;
  double logloss = 0;        // mean BCE over all labels (soft labels included)
  double accuracy = 0;       // share of non-tie labels on the right side of 0
  double auc = 0;            // global ROC-AUC
  double user_auc_mean = 0;  // mean over users having both classes
  std::uint64_t users_with_auc = 0;
};

// Why a fit's predictions are no better than a coin, or an empty string when they are: with a
// validation split, its ROC-AUC within 3 standard errors of 1/2 (the Hanley-McNeil standard
// error of a coin's AUC, sqrt((n + 1) / (3 n^2)) with n labels taken as half each class);
// without one, collapsed(train_logloss). The fit says so loudly instead of "converged"
// (docs/design.md, "Item models").
std::string chance_verdict(double train_logloss, const SplitMetrics* validation);

// The factors collapsed towards 0: the training log-loss within 1e-3 of ln 2, every
// uncalibrated prediction within about 0.02 of 1/2. With a validation split the calibration
// scale may still make them rank well (then the fit warns but is not at chance).
bool collapsed(double train_logloss);

// Accumulates metrics of per-user groups of scored labels; finish() is collective. Kept across
// calls (e.g. one per sweep), it reuses its buffers.
class MetricsAccumulator {
 public:
  // One user's labels (reordered).
  void add_user(std::span<Scored> items);
  // The same when the sum of the items' BCE is already known (computed with the margins).
  void add_user(std::span<Scored> items, double loss);
  // with_auc false: the global ROC-AUC (a distributed sort) is left out (NaN).
  SplitMetrics finish(const mpi::Comm& comm, std::vector<double>* user_aucs = nullptr,
                      bool with_auc = true);

 private:
  std::vector<Scored> all_, scratch_;
  std::vector<double> user_aucs_;
  double loss_ = 0;
  double correct_ = 0;
  std::uint64_t decided_ = 0;
};

}  // namespace pref
