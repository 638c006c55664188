#include "solver/eval/calibration.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "solver/eval/split_scores.hpp"
#include "solver/newton/kernels.hpp"
#include "solver/newton/loss.hpp"

namespace pref {

namespace {

// sum BCE, its first and second derivatives in s, at s (all ranks). Each label's terms come from
// the label kernels (vectorized exp and log1p) in blocks, summed in label order.
std::array<double, 3> sums_at(const mpi::Comm& comm, std::span<const double> m,
                              std::span<const float> y, double s) {
  constexpr std::size_t kChunk = 4096;
  std::array<double, 3> a{0, 0, 0};
  std::vector<double> loss(std::min(kChunk, m.size())), prob(loss.size());
  const auto lt = kernels::best().logistic_terms;
  for (std::size_t k0 = 0; k0 < m.size(); k0 += kChunk) {
    const std::size_t c = std::min(kChunk, m.size() - k0);
    lt(m.data() + k0, y.data() + k0, c, s, loss.data(), prob.data());
    for (std::size_t k = 0; k < c; ++k) {
      const double p = prob[k], mk = m[k0 + k];
      a[0] += loss[k];
      a[1] += (p - y[k0 + k]) * mk;
      a[2] += p * (1 - p) * mk * mk;
    }
  }
  mpi::allreduce(comm, std::span<double>(a), MPI_SUM);
  return a;
}

}  // namespace

Calibration calibrate_margins(const mpi::Comm& comm, std::span<const double> margins,
                              std::span<const float> labels, double start) {
  constexpr int kMaxSteps = 100;
  constexpr int kHalvings = 60;
  Calibration c;
  c.labels = mpi::allreduce_sum(comm, static_cast<std::uint64_t>(margins.size()));
  std::array<double, 3> a = sums_at(comm, margins, labels, 1.0);
  const double n = static_cast<double>(c.labels);
  c.logloss_before = c.logloss_after = c.labels ? a[0] / n : 0.0;
  if (c.labels == 0 || !(a[2] > 0)) return c;  // nothing to fit: s = 1
  double s = 1;
  if (start != 1.0 && std::isfinite(start) && start >= 0) {
    const std::array<double, 3> b = sums_at(comm, margins, labels, start);
    if (b[0] < a[0] && b[2] > 0) s = start, a = b;
  }
  for (int it = 0; it < kMaxSteps; ++it) {
    if (s == 0 && a[1] >= 0) break;  // the minimum is at the boundary
    if (!(a[2] > 0)) break;
    // Converged: Newton's predicted decrease g^2 / 2h is below 1e-20 of the loss (the mean
    // derivative is then below about 1e-10).
    if (a[1] * a[1] <= 2e-20 * a[2] * std::abs(a[0])) break;
    double step = -a[1] / a[2];
    // Near the minimum the predicted decrease falls below what the sum of the loss can resolve
    // (1e-12 of it): comparing two losses would then decide at random, and the step would be
    // halved until it vanished (up to 60 passes over the margins). There the full Newton step
    // of this convex function of one variable is taken as it is.
    if (a[1] * a[1] <= 2e-12 * a[2] * std::abs(a[0])) {
      const double t = std::max(0.0, s + step);
      ++c.newton_steps;
      if (t == s) break;
      s = t;
      a = sums_at(comm, margins, labels, s);
      continue;
    }
    // Newton's step on a convex function; where it leaves [0, inf) or does not lower the
    // loss, it is halved (the sum is convex, so a short enough step along -g lowers it).
    double taken = 0;
    for (int h = 0; h < kHalvings; ++h, step *= 0.5) {
      const double t = std::max(0.0, s + step);
      if (t == s) break;
      const std::array<double, 3> b = sums_at(comm, margins, labels, t);
      if (b[0] < a[0]) {
        taken = t - s;
        s = t;
        a = b;
        break;
      }
    }
    ++c.newton_steps;
    // Stop when no step lowers the loss, or the step is at round-off of s.
    if (taken == 0 || std::abs(taken) <= 1e-12 * std::max(1.0, s) || !(a[2] > 0)) break;
  }
  c.scale = c.fitted = s;
  c.information = a[2];
  c.logloss_after = a[0] / n;
  return c;
}

Calibration calibrate_scores(const mpi::Comm& comm, std::span<const double> margins,
                             std::span<const float> labels, double start) {
  const std::uint64_t count = mpi::allreduce_sum(comm, static_cast<std::uint64_t>(margins.size()));
  if (count > 0 && count < kCalibrationMinLabels) {
    Calibration c;
    c.labels = count;
    std::array<double, 3> a = sums_at(comm, margins, labels, 1.0);
    c.logloss_before = c.logloss_after = a[0] / static_cast<double>(count);
    c.kept = fmt::format(
        "the validation split has {} labels, fewer than the {} needed to estimate "
        "the scale",
        c.labels, kCalibrationMinLabels);
    return c;
  }
  Calibration c = calibrate_margins(comm, margins, labels, start);
  if (c.scale == 1.0) return c;  // nothing fitted (no labels, margins all zero) or s = 1 exactly
  const double n = static_cast<double>(c.labels);
  const double ratio = 2 * n * (c.logloss_before - c.logloss_after);
  const double wald = (c.fitted - 1) * (c.fitted - 1) * c.information;
  if (!(ratio > kCalibrationChi2 && wald > kCalibrationChi2)) {
    c.kept = fmt::format(
        "the {} validation labels do not tell the fitted scale {:.4g} from 1 (likelihood ratio "
        "{:.3g}, Wald {:.3g}; both must exceed {})",
        c.labels, c.fitted, ratio, wald, kCalibrationChi2);
    c.scale = 1;
    c.logloss_after = c.logloss_before;
  }
  return c;
}

Calibration calibrate_scale(const mpi::Comm& comm, const LabelMatrix& m, const Factors& f) {
  std::vector<double> margins;
  std::vector<float> labels;
  margins.reserve(m.by_user.val.size());
  labels.reserve(m.by_user.val.size());
  for_each_user_margins(comm, m, f,
                        [&](std::size_t, std::span<const double> mg, std::span<const float> y) {
                          margins.insert(margins.end(), mg.begin(), mg.end());
                          labels.insert(labels.end(), y.begin(), y.end());
                        });
  return calibrate_scores(comm, margins, labels);
}

}  // namespace pref
