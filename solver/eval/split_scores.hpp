#pragma once
// Scoring a split's labels with factors, outside the fit's sweeps: every label's margin
// u_i . z_p, from which `pref evaluate` and the fit's final test scoring take their metrics
// (evaluate_split) and the SVD initialization its scale (rms_margin, solver/svd/init.hpp). The
// fit's per-sweep validation scores its own localized rows with the label kernels instead
// (solver/fit/fit.cpp, FitEngine::evaluate), since it runs every sweep.
#include <cstddef>
#include <functional>
#include <span>
#include <vector>

#include "solver/base/mpi.hpp"
#include "solver/eval/metrics.hpp"
#include "solver/layout/distribute.hpp"
#include "solver/layout/factors.hpp"

namespace pref {

// For each of this rank's users (row r of m.by_user): fn(r, margins, labels), the margins
// u_r . z_p of the row's labels in the row's order. Fetches the Z rows the labels need from
// their owners (a ghost plan). The matrix must be partitioned like the factors. Collective.
void for_each_user_margins(const mpi::Comm& comm, const LabelMatrix& m, const Factors& f,
                           const std::function<void(std::size_t r, std::span<const double> margins,
                                                    std::span<const float> labels)>& fn);

// The metrics of every label of m (log-loss, global and per-user ROC-AUC, accuracy; solver/
// metrics.hpp). user_aucs: each user's AUC on this rank. The log-loss is that of the
// probabilities sigmoid(scale u.z) (a model's calibration, solver/eval/calibration.hpp); the
// rankings take the margins as they are. logloss_unscaled: the log-loss of sigmoid(u.z), from the
// same pass. Collective.
SplitMetrics evaluate_split(const mpi::Comm& comm, const LabelMatrix& m, const Factors& f,
                            std::vector<double>* user_aucs = nullptr, double scale = 1.0,
                            double* logloss_unscaled = nullptr);

// The root-mean-square margin over every label of m. Collective.
double rms_margin(const mpi::Comm& comm, const LabelMatrix& m, const Factors& f);

}  // namespace pref
