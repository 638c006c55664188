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

#include "solver/base/mpi.hpp"
#include "solver/layout/distribute.hpp"
#include "solver/layout/factors.hpp"

namespace pref {

struct Calibration {
  double scale = 1;           // s: probabilities sigmoid(s u.z)
  double logloss_before = 0;  // mean log-loss at s = 1
  double logloss_after = 0;   // at s
  std::uint64_t labels = 0;   // held-out labels it was fitted on (all ranks)
  int newton_steps = 0;
};

// The minimizing s >= 0 of sum_k BCE(sigmoid(s margins[k]), labels[k]) over every rank's
// (margins, labels), by Newton's method on this convex function of one variable (from s = 1,
// halving a step that does not lower it, s clamped at 0). With no labels, or margins all zero,
// s = 1. Collective; the sums are allreduced, so s is bitwise the same for the same rank count.
// `start`: where Newton's method starts (a previous s, when the margins changed little since).
Calibration calibrate_margins(const mpi::Comm& comm, std::span<const double> margins,
                              std::span<const float> labels, double start = 1.0);

// The calibration `pref fit` stores in the model, over held-out (margins, labels) of every rank.
// Collective.
Calibration calibrate_scores(const mpi::Comm& comm, std::span<const double> margins,
                             std::span<const float> labels);

// The same over the labels of m scored with f (solver/eval/split_scores.hpp). Collective.
Calibration calibrate_scale(const mpi::Comm& comm, const LabelMatrix& m, const Factors& f);

}  // namespace pref
