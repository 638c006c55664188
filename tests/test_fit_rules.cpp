// The fit's stopping rule and accelerations (issue 21; solver/fit/stopping.hpp, gauge.hpp,
// squarem.hpp), at 1, 2 and 4 ranks against references computed here:
//  - the predictions rule is gauge invariant: starts moved along the factorization's gauge
//    (U A^-T, Z A; a scale and a rotation) stop at the same sweep with the same predictions;
//  - it keeps the best state: the kept state's calibrated validation log-loss, recomputed here
//    from the gathered factors, is the lowest of the records;
//  - the same sweep and predictions at every rank count (against a one-rank run), with
//    SQUAREM and with `pref fit`'s defaults, where Aitken's projection ends the fit;
//  - Aitken's projection on given losses: where it ends a geometric sequence, and where not;
//  - SQUAREM's safeguard: every extrapolated cycle ends at an objective not above the plain
//    sweeps' (a return to them is exercised).
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <vector>

#include "solver/base/log.hpp"
#include "solver/base/mpi.hpp"
#include "solver/eval/calibration.hpp"
#include "solver/fit/fit.hpp"
#include "solver/fit/stopping.hpp"
#include "tests/fit_util.hpp"

using namespace pref;
using namespace pref::fit_test;

namespace {

// A planted population: users u_i ~ N(m, S) (J = 3, eigenvalues 2, 1, 0.5 in a rotated basis),
// comparisons z_p ~ N(0, I), `answers` distinct comparisons per user of which the last
// `held_out` are the validation split, Bernoulli labels (some exactly 0.5: ties).
struct Planted {
  Problem train, validation;
};

Planted make_planted(std::uint64_t users, std::uint64_t comparisons, int answers, int held_out,
                     unsigned seed) {
  const int J = 3;
  std::mt19937 gen(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::uniform_real_distribution<double> unif(0.0, 1.0);
  Matrix R(J, J);
  for (int a = 0; a < J; ++a)
    for (int b = 0; b < J; ++b) R(a, b) = normal(gen);
  const Matrix Q = Eigen::HouseholderQR<Matrix>(R).householderQ();
  Vector ev(J);
  ev << 2.0, 1.0, 0.5;
  const Matrix L = Eigen::LLT<Matrix>(Q * ev.asDiagonal() * Q.transpose()).matrixL();
  Vector mean(J);
  mean << 0.4, -0.2, 0.1;
  Matrix U(users, J), Z(comparisons, J);
  for (std::uint64_t i = 0; i < users; ++i) {
    Vector e(J);
    for (int a = 0; a < J; ++a) e[a] = normal(gen);
    U.row(i) = (mean + L * e).transpose();
  }
  for (std::uint64_t c = 0; c < comparisons; ++c)
    for (int a = 0; a < J; ++a) Z(c, a) = normal(gen);
  Planted p;
  p.train.users = p.validation.users = users;
  p.train.comparisons = p.validation.comparisons = comparisons;
  std::vector<std::uint32_t> items(comparisons);
  for (std::uint64_t i = 0; i < users; ++i) {
    std::iota(items.begin(), items.end(), 0u);
    std::shuffle(items.begin(), items.end(), gen);
    for (int k = 0; k < answers; ++k) {
      const double m = U.row(i).dot(Z.row(items[k]));
      const double u = unif(gen);
      const float y = u < 0.05 ? 0.5f : (unif(gen) < 1.0 / (1.0 + std::exp(-m)) ? 1.0f : 0.0f);
      (k < answers - held_out ? p.train : p.validation)
          .cols.push_back(static_cast<std::uint32_t>(i), items[k], y);
    }
  }
  return p;
}

// `pref fit`'s defaults: the predictions rule on the calibrated validation log-loss, SQUAREM.
FitConfig default_config() {
  FitConfig c;
  c.J = 3;
  c.prior = UserPrior::kPopulation;
  c.stop = StopRule::kPredictions;
  c.accelerate = Acceleration::kSquarem;
  c.monitor_calibrated = true;
  c.canonical_start = true;
  c.auc_every = 10;
  c.max_sweeps = 80;
  c.seed = 3;
  c.init_scale = 0.5;
  return c;
}

struct FitRun {
  FitResult res;
  Matrix X;  // U Z^T, gathered
};

// A fit from `init` (this rank's rows of the start; random_factors when empty).
FitRun run(const mpi::Comm& comm, const Planted& pl, const FitConfig& cfg,
           const std::function<void(Factors&)>& move_start = {}) {
  LabelMatrix train = distribute_problem(comm, pl.train);
  const LabelColumns mine = share_of(comm, pl.validation.cols);
  LabelMatrix val = distribute(comm, mine, train.parts, pl.validation.users,
                               pl.validation.comparisons, Duplicates::kError, "validation");
  Factors init = random_factors(comm, train.parts, cfg);
  if (move_start) move_start(init);
  FitRun r;
  r.res = fit(comm, std::move(train), std::move(val), std::move(init), cfg);
  r.X = as_matrix(allgather_rows(comm, r.res.factors.U), cfg.J) *
        as_matrix(allgather_rows(comm, r.res.factors.Z), cfg.J).transpose();
  return r;
}

double relative_difference(const Matrix& a, const Matrix& b) {
  return (a - b).cwiseAbs().maxCoeff() / a.cwiseAbs().maxCoeff();
}

// The calibrated log-loss of the validation labels under predictions X (a reference).
double calibrated_validation_logloss(const mpi::Comm& comm, const Planted& pl, const Matrix& X) {
  std::vector<double> m;
  std::vector<float> y;
  if (comm.rank() == 0)
    for (std::size_t k = 0; k < pl.validation.cols.size(); ++k) {
      m.push_back(X(pl.validation.cols.user[k], pl.validation.cols.comparison[k]));
      y.push_back(pl.validation.cols.value[k]);
    }
  return calibrate_margins(comm, m, y).logloss_after;
}

class FitRules : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { log::set_quiet(!std::getenv("PREF_TEST_VERBOSE")); }
};

TEST_F(FitRules, PredictionsRuleIsGaugeInvariantAndKeepsTheBestState) {
  auto comm = mpi::Comm::world();
  const Planted pl = make_planted(3000, 60, 24, 4, 5);
  const FitConfig cfg = default_config();
  const FitRun base = run(comm, pl, cfg);
  ASSERT_TRUE(base.res.converged) << base.res.reason;
  const int sweeps = base.res.history.back().sweep;
  EXPECT_LT(sweeps, cfg.max_sweeps);
  // The kept state is the best of the candidates (not sweep 0, not SQUAREM's trials), and its
  // calibrated validation log-loss, recomputed from the factors, is the one recorded.
  double best = INFINITY;
  int best_sweep = -1;
  for (const SweepRecord& r : base.res.history)
    if (r.sweep > 0 && r.extrapolation == 0 && r.calibrated_logloss < best)
      best = r.calibrated_logloss, best_sweep = r.sweep;
  EXPECT_EQ(base.res.state_sweep, best_sweep);
  // (The monitor samples every user at this size.)
  EXPECT_NEAR(calibrated_validation_logloss(comm, pl, base.X), best, 1e-9);
  // Starts moved along the gauge: U A^-T, Z A with A = 2.5 I, and with A = Q a rotation.
  Matrix R(3, 3);
  R << 0.3, -1.2, 0.5, 0.9, 0.4, -0.7, -0.2, 0.8, 1.1;
  const Matrix Q = Eigen::HouseholderQR<Matrix>(R).householderQ();
  const std::vector<std::pair<const char*, Matrix>> moves = {
      {"scaled", 2.5 * Matrix::Identity(3, 3)}, {"rotated", Q}};
  for (const auto& move : moves) {
    const char* name = move.first;
    const Matrix& A = move.second;  // a plain reference: C++17 lambdas cannot capture bindings
    const Matrix Ait = A.inverse().transpose();
    const FitRun moved = run(comm, pl, cfg, [&](Factors& f) {
      for (std::size_t r = 0; r < f.U.size() / 3; ++r) {
        Eigen::Map<Eigen::RowVectorXd> u(f.U.data() + 3 * r, 3);
        u = (u * Ait).eval();
      }
      for (std::size_t r = 0; r < f.Z.size() / 3; ++r) {
        Eigen::Map<Eigen::RowVectorXd> z(f.Z.data() + 3 * r, 3);
        z = (z * A).eval();
      }
    });
    EXPECT_EQ(moved.res.history.back().sweep, sweeps) << name;
    EXPECT_EQ(moved.res.state_sweep, base.res.state_sweep) << name;
    EXPECT_LT(relative_difference(base.X, moved.X), 1e-6) << name;
  }
}

TEST_F(FitRules, SameSweepAndPredictionsAtAnyRankCount) {
  auto comm = mpi::Comm::world();
  const Planted pl = make_planted(2000, 50, 20, 4, 6);
  // With SQUAREM, and with `pref fit`'s defaults (plain sweeps, the over-relaxed M-step,
  // Aitken's projection in the rule; the users' directions side by side in both).
  FitConfig fit_defaults = default_config();
  fit_defaults.accelerate = Acceleration::kNone;
  fit_defaults.prior_relax = 1.8;
  fit_defaults.aitken = true;
  for (const FitConfig& cfg : {default_config(), fit_defaults}) {
    const FitRun a = run(comm, pl, cfg);
    const FitRun b = run(comm, pl, cfg);
    EXPECT_TRUE(a.X == b.X) << "not bitwise repeatable";
    if (comm.rank() == 0) {
      const FitRun one = run(mpi::Comm::self(), pl, cfg);
      EXPECT_EQ(one.res.history.back().sweep, a.res.history.back().sweep);
      EXPECT_EQ(one.res.state_sweep, a.res.state_sweep);
      EXPECT_EQ(one.res.reason.find("Aitken") == std::string::npos,
                a.res.reason.find("Aitken") == std::string::npos);
      EXPECT_LT(relative_difference(one.X, a.X), 1e-8);
      // (Here the projection ends the defaults' fit, so the check above is not vacuous.)
      if (cfg.aitken) {
        EXPECT_NE(a.res.reason.find("Aitken"), std::string::npos) << a.res.reason;
      }
    }
    comm.barrier();
  }
}

// SQUAREM's safeguard: where the cycle's plain sweeps lowered the objective (x2's not above
// x1's), every extrapolated cycle ends at an objective not above x2's: a trial sweep above it is
// undone, and the next sweep's change is measured from x2's objective. Where they raised it, the
// trial is judged by its fixed-point residual instead (tests/test_prior.cpp shows those cycles
// reach the plain sweeps' fixed point). The planted problem (12 answers per user, 400 sweeps) has
// cycles of both kinds and makes the objective's safeguard undo some (the check is not vacuous).
TEST_F(FitRules, SquaremSafeguardNeverEndsACycleAboveThePlainSweeps) {
  auto comm = mpi::Comm::world();
  const Planted pl = make_planted(3000, 60, 12, 4, 7);
  FitConfig sq = default_config();
  sq.stop = StopRule::kObjective;
  sq.accelerate = Acceleration::kSquarem;
  sq.tol = 0;
  sq.max_sweeps = 400;
  const FitRun rs = run(comm, pl, sq);
  const std::vector<SweepRecord>& h = rs.res.history;
  int trials = 0, returns = 0, by_residual = 0;
  for (std::size_t k = 2; k + 1 < h.size(); ++k) {
    if (h[k].extrapolation == 0) continue;
    ++trials;
    EXPECT_LE(h[k].extrapolation, -1.0);
    EXPECT_EQ(h[k - 1].extrapolation, 0) << "two trials in a row";
    if (h[k - 1].objective > h[k - 2].objective) {  // x2 above x1: judged by the residual
      ++by_residual;
      continue;
    }
    if (h[k].objective > h[k - 1].objective) {
      ++returns;
      const double from_x2 =
          std::abs(h[k - 1].objective - h[k + 1].objective) / std::abs(h[k + 1].objective);
      EXPECT_EQ(h[k + 1].rel_change, from_x2) << "sweep " << h[k + 1].sweep;
    }
  }
  if (comm.rank() == 0)
    std::printf("squarem: %d trials (%d judged by the residual), %d returned by the objective\n",
                trials, by_residual, returns);
  EXPECT_GT(trials, 10);
  EXPECT_GT(by_residual, 0);
  EXPECT_GT(returns, 0) << "the safeguard was not exercised";
}

}  // namespace

// Aitken's projection in the predictions rule, on monitored log-losses given here (no fit):
//  - geometric improvements L_k = L + c r^k: the fit ends at the first sweep k >= 3 where the
//    projected rest, (L_{k-1} - L_k) a / (1 - a) with a = r (= c r^k exactly), is within the
//    tolerance, computed here apart from the rule; without Aitken the patience decides, later;
//  - improvements that do not shrink (a >= 1), a worse sweep, or an extrapolated trial among
//    the last three never end the fit by the projection.
TEST(StoppingAitken, EndsWhereTheGeometricRestIsWithinTheTolerance) {
  FitConfig cfg;
  cfg.stop = StopRule::kPredictions;
  cfg.monitor_calibrated = true;
  cfg.aitken = true;
  cfg.stop_tol = 3e-5;
  cfg.patience = 3;
  const double L = 0.67, c = 2e-3, r = 0.6;
  // Runs the rule over losses(k), k = 1.., with trial(k) marking extrapolated sweeps; returns
  // the sweep it stops at (-1: not within 60 sweeps) and the reason.
  auto run = [&](const FitConfig& conf, auto&& losses, auto&& trial, std::string* why) {
    StoppingRule rule(conf, 100000);
    StopState st;
    std::vector<SweepRecord> history(1);  // sweep 0
    history[0].calibrated_logloss = losses(0);
    for (int k = 1; k <= 60; ++k) {
      SweepRecord rec;
      rec.sweep = k;
      rec.calibrated_logloss = losses(k);
      rec.extrapolation = trial(k) ? 1.5 : 0.0;
      const StopDecision d = rule.observe(rec, st, nullptr, &history);
      history.push_back(rec);
      if (d.stop) {
        if (why) *why = d.reason;
        return k;
      }
    }
    return -1;
  };
  auto none = [](int) { return false; };
  auto geometric = [&](int k) { return L + c * std::pow(r, k); };
  int expected = -1;
  for (int k = 3; k <= 60 && expected < 0; ++k)
    if (c * std::pow(r, k) <= cfg.stop_tol * geometric(k)) expected = k;
  ASSERT_GT(expected, 3);
  std::string why;
  EXPECT_EQ(run(cfg, geometric, none, &why), expected);
  EXPECT_NE(why.find("Aitken"), std::string::npos) << why;
  FitConfig patience_only = cfg;
  patience_only.aitken = false;
  const int later = run(patience_only, geometric, none, &why);
  EXPECT_GT(later, expected);
  EXPECT_EQ(why.find("Aitken"), std::string::npos) << why;
  // Improvements that do not shrink: the patience alone (both ways the same sweep).
  auto linear = [&](int k) { return L + 1e-3 - 2.5e-5 * k; };
  EXPECT_EQ(run(cfg, linear, none, nullptr), run(patience_only, linear, none, nullptr));
  // A sweep worse than the one before it among the last three: no projection from it.
  auto bump = [&](int k) { return geometric(k) + (k == expected - 1 ? 1e-3 : 0.0); };
  EXPECT_NE(run(cfg, bump, none, nullptr), expected);
  // An extrapolated trial among the last three: no projection at that sweep.
  auto trial = [&](int k) { return k == expected - 1; };
  EXPECT_NE(run(cfg, geometric, trial, nullptr), expected);
}
