#pragma once
// The measurement of the fit's state after each sweep (docs/design.md, "Metrics"): the
// objective, the training log-loss, and as much of the validation split as asked for
// (Validation): the stopping rule's sample alone, or the split's log-loss, accuracy and mean
// per-user AUC, or those with the global validation ROC-AUC (a distributed sort) and the
// gradient norm (users' gradients need a pass over the training labels). The Z rows are
// fetched again first (the users' ghost table then holds the state's Z).
#include "solver/fit/context.hpp"
#include "solver/fit/state.hpp"

namespace pref {

// How much of the validation split a measurement reads.
enum class Validation {
  kSample,  // the stopping rule's sample only (FitConfig::monitor_calibrated): its calibrated
            // log-loss; the record has no `validation`
  kSplit,   // every label: log-loss, accuracy, mean per-user AUC, and the sample's calibration
  kFull,    // kSplit with the global ROC-AUC, and the gradient norm
};

class Evaluation {
 public:
  explicit Evaluation(FitContext& ctx) : ctx_(ctx) {}
  // scale_start: where the calibrated log-loss's scale search starts (the last record's scale).
  // Collective.
  SweepRecord measure(Validation level, double scale_start = 1.0);
  // The current state's margins of this rank's validation labels, with the labels (in the
  // order of its users' rows): what the calibration of the returned state is fitted on, without
  // reading the split again. Collective (the Z rows are fetched first).
  void score_validation(std::vector<double>& margins, std::vector<float>& labels);

 private:
  double comparison_gradients(bool measured);
  FitContext& ctx_;
  // Buffers kept so that every sweep does not fault in fresh pages.
  std::vector<double> loss_, gu_, gz_, quad_;
  MetricsAccumulator val_acc_;
  std::vector<double> monitor_margins_;  // FitConfig::monitor_calibrated: the sample's labels
  std::vector<float> monitor_labels_;
  // The sample's validation rows on this rank (found at the first measurement).
  std::vector<std::uint32_t> monitor_rows_;
  bool monitor_found_ = false;
};

}  // namespace pref
