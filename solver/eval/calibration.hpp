#pragma once
// Probability calibration of a fitted model (docs/design.md, "Calibration"): the scale s >= 0
// that minimizes the log-loss of P(first preferred) = sigmoid(s u.z) on held-out labels
// (temperature scaling, Guo et al. 2017, with s = 1 / T). A MAP fit over-fits its training
// labels, and its margins are too large where the data say little (docs/results.md: at 10^5
// users the test log-loss falls from 0.681 to 0.676 against the Bayes-optimal 0.675); s rescales
// them without changing any ranking (AUC, accuracy and best-of-N stay as they are). `pref fit`
// fits s on the validation split after the sweeps and stores it in the model
// (`calibration_scale`); `pref evaluate` reports the log-loss of the calibrated probabilities.
#include <cstdint>
#include <span>
#include <string>

#include "solver/base/enum_names.hpp"
#include "solver/base/mpi.hpp"
#include "solver/layout/distribute.hpp"
#include "solver/layout/factors.hpp"

namespace pref {

// `fit --calibrate` (and the model's attribute `calibration`): fit s on the validation split,
// or keep s = 1.
enum class CalibrateOn { kValidation, kNone };
inline constexpr EnumNames<CalibrateOn, 2> kCalibrateOnNames{
    {{{CalibrateOn::kValidation, "validation"}, {CalibrateOn::kNone, "none"}}}};

// A safe calibration: s stays 1 unless the held-out labels can tell it from 1. Below
// kCalibrationMinLabels labels s is not estimated at all (one label fitted s = 66 and made the
// test log-loss 12 against 0.67); above, the minimizing s replaces 1 only when both the
// likelihood-ratio statistic 2 (L(1) - L(s)) and the Wald statistic (s - 1)^2 I(s) (I the
// observed information, sum p (1 - p) m^2) exceed kCalibrationChi2, the 99% point of chi^2 with
// one degree of freedom: a scale that is not clearly better than 1 on the labels it was fitted
// on is not used on others. (The Wald test refuses the unbounded s of separable labels, whose
// information vanishes; the likelihood ratio, a scale that barely changes the loss.)
inline constexpr std::uint64_t kCalibrationMinLabels = 50;
inline constexpr double kCalibrationChi2 = 6.635;

struct Calibration {
  double scale = 1;           // s: probabilities sigmoid(s u.z)
  double logloss_before = 0;  // mean log-loss at s = 1
  double logloss_after = 0;   // at s
  std::uint64_t labels = 0;   // held-out labels it was fitted on (all ranks)
  int newton_steps = 0;
  double fitted = 1;       // the minimizing s, whether or not it was kept
  double information = 0;  // sum p (1 - p) m^2 at the minimizing s (all ranks)
  std::string kept;        // why s stayed 1 when it was not estimated or not used ("": it was used)
};

// The minimizing s >= 0 of sum_k BCE(sigmoid(s margins[k]), labels[k]) over every rank's
// (margins, labels), by Newton's method on this convex function of one variable (from s = 1,
// halving a step that does not lower it, s clamped at 0). With no labels, or margins all zero,
// s = 1. Collective; the sums are allreduced, so s is bitwise the same for the same rank count.
// `start`: where Newton's method starts (a previous s, when the margins changed little since).
// The raw estimate, without the tests of a safe calibration (the fit's stopping rule uses it).
Calibration calibrate_margins(const mpi::Comm& comm, std::span<const double> margins,
                              std::span<const float> labels, double start = 1.0);

// The calibration `pref fit` stores in the model, over held-out (margins, labels) of every rank:
// a safe calibration, calibrate_margins' s used only when it passes the tests above (else s = 1,
// logloss_after = logloss_before and `kept` says why; below kCalibrationMinLabels labels s is not
// estimated at all). Collective.
Calibration calibrate_scores(const mpi::Comm& comm, std::span<const double> margins,
                             std::span<const float> labels, double start = 1.0);

// The same over the labels of m scored with f (solver/eval/split_scores.hpp). Collective.
Calibration calibrate_scale(const mpi::Comm& comm, const LabelMatrix& m, const Factors& f);

}  // namespace pref
