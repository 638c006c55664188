// `pref fit` and `pref evaluate` end to end: the same run twice gives a byte-identical model file;
// runs at 1 and 3 ranks (and with either exchange pattern) give the same factors and objective;
// `pref evaluate --json` prints one JSON object, the same at any rank count.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "tests/test_util.hpp"

using namespace pref::test;
namespace fs = std::filesystem;

namespace {

constexpr int kUsers = 300, kComparisons = 80, kRank = 3;

double read_double_attr(hid_t file, const std::string& name) {
  H5Id a(h5check(H5Aopen_by_name(file, "/", name.c_str(), H5P_DEFAULT, H5P_DEFAULT),
                 ("open attribute " + name).c_str()),
         H5Aclose);
  double v = NAN;
  h5check(H5Aread(a, H5T_NATIVE_DOUBLE, &v), ("read attribute " + name).c_str());
  return v;
}

struct Model {
  std::vector<double> U, Z;
  std::vector<hsize_t> udims, zdims;
  double objective = NAN;
};

Model read_model(const std::string& path) {
  H5Id f = h5_open(path);
  Model m;
  m.U = h5_read<double>(f, "/user_factors");
  m.Z = h5_read<double>(f, "/comparison_factors");
  m.udims = h5_dims(f, "/user_factors");
  m.zdims = h5_dims(f, "/comparison_factors");
  m.objective = read_double_attr(f, "objective");
  return m;
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return INFINITY;
  double d = 0;
  for (std::size_t k = 0; k < a.size(); ++k) d = std::max(d, std::abs(a[k] - b[k]));
  return d;
}

class FitCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    dir_ = fresh_dir("test_fit_cli");
    const RunResult r = run_pref(
        2, {"generate", "--model", "lowrank", "--users", std::to_string(kUsers), "--comparisons",
            std::to_string(kComparisons), "--answers-per-user", "30", "--rank",
            std::to_string(kRank), "--temperature", "0.5", "--seed", "11", "--out", data()});
    ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
  }
  static void TearDownTestSuite() {
    if (!::testing::UnitTest::GetInstance()->Failed()) fs::remove_all(dir_);
  }
  static std::string path(const std::string& name) { return dir_ + "/" + name; }
  static std::string data() { return path("data.h5"); }

  // Fits data.h5 at `ranks` ranks into `name` (seed 5 unless `extra` sets it); returns its path.
  static std::string fit(int ranks, const std::string& name,
                         const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {
        "fit",    "--data",  data(),         "--rank", std::to_string(kRank),
        "--init", "random",  "--max-sweeps", "25",     "--tol",
        "0",      "--mu-u",  "0.5",          "--mu-z", "0.5",
        "--out",  path(name)};
    args.insert(args.end(), extra.begin(), extra.end());
    if (std::find(extra.begin(), extra.end(), "--seed") == extra.end())
      args.insert(args.end(), {"--seed", "5"});
    const RunResult r = run_pref(ranks, args);
    EXPECT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
    return path(name);
  }

  static inline std::string dir_;
};

TEST_F(FitCli, SameRunGivesAByteIdenticalModel) {
  const std::string a = fit(2, "a.h5"), b = fit(2, "b.h5");
  const std::string ba = read_bytes(a), bb = read_bytes(b);
  EXPECT_GT(ba.size(), 8u * kUsers * kRank);
  EXPECT_TRUE(ba == bb) << a << " and " << b << " differ";
  // A different seed changes the file (the comparison above can fail).
  const std::string c = fit(2, "c.h5", {"--overwrite"});
  const std::string d = fit(2, "d.h5", {"--seed", "6"});
  EXPECT_TRUE(read_bytes(c) == ba) << "--overwrite of a new file changed nothing else";
  EXPECT_FALSE(read_bytes(d) == ba);
}

TEST_F(FitCli, RankCountAndExchangePatternDoNotChangeTheModel) {
  const Model m1 = read_model(fit(1, "r1.h5"));
  ASSERT_EQ(m1.udims, (std::vector<hsize_t>{kUsers, kRank}));
  ASSERT_EQ(m1.zdims, (std::vector<hsize_t>{kComparisons, kRank}));
  ASSERT_TRUE(std::isfinite(m1.objective));
  for (const char* ex : {"ship", "reduce", "auto"}) {
    const Model m3 = read_model(fit(3, std::string("r3-") + ex + ".h5", {"--exchange", ex}));
    EXPECT_LT(max_abs_diff(m1.U, m3.U), 1e-8) << "user factors, 1 vs 3 ranks, " << ex;
    EXPECT_LT(max_abs_diff(m1.Z, m3.Z), 1e-8) << "comparison factors, 1 vs 3 ranks, " << ex;
    EXPECT_NEAR(m1.objective, m3.objective, 1e-10 * std::abs(m1.objective)) << ex;
  }
}

TEST_F(FitCli, EvaluatePrintsOneJsonObject) {
  const std::string model = fit(2, "eval.h5");
  nlohmann::json first;
  for (int ranks : {1, 2, 3}) {
    const RunResult r = run_pref(ranks, {"evaluate", "--model", model, "--data", data(), "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
    std::vector<std::string> lines;
    for (auto& l : split_lines(r.out))
      if (!l.empty()) lines.push_back(l);
    ASSERT_EQ(lines.size(), 1u) << "standard output:\n" << r.out;
    const nlohmann::json j = nlohmann::json::parse(lines[0]);
    ASSERT_TRUE(j.is_object());
    for (const char* key : {"auc", "logloss", "accuracy", "labels"})
      ASSERT_TRUE(j.contains(key)) << key << " missing in " << lines[0];
    EXPECT_EQ(j["labels"].get<std::uint64_t>(), std::uint64_t{kUsers} * 3);  // 10% of 30 each
    EXPECT_GT(j["auc"].get<double>(), 0.6);
    EXPECT_LE(j["auc"].get<double>(), 1.0);
    EXPECT_GT(j["logloss"].get<double>(), 0.0);
    EXPECT_GE(j["accuracy"].get<double>(), 0.5);
    EXPECT_LE(j["accuracy"].get<double>(), 1.0);
    if (ranks == 1) {
      first = j;
    } else {
      // The AUC and accuracy are exact counts; the log-loss a sum in another order.
      EXPECT_EQ(j["auc"].get<double>(), first["auc"].get<double>()) << ranks << " ranks";
      EXPECT_EQ(j["accuracy"].get<double>(), first["accuracy"].get<double>()) << ranks;
      EXPECT_NEAR(j["logloss"].get<double>(), first["logloss"].get<double>(), 1e-12) << ranks;
    }
  }
}

// --calibrate validation (the default) stores the scale s of the probabilities sigmoid(s u.z)
// that minimizes the validation log-loss, recomputed here from the model's factors and the
// file's validation labels; `pref evaluate` reports the log-loss at s and at 1; --calibrate none
// stores s = 1; a bad value exits 2 with one line.
TEST_F(FitCli, CalibrationScaleMinimizesTheValidationLogLoss) {
  const std::string model = fit(2, "calibrated.h5", {"--calibrate", "validation"});
  H5Id mf = h5_open(model);
  const double s = read_double_attr(mf, "calibration_scale");
  const std::vector<double> U = h5_read<double>(mf, "/user_factors");
  const std::vector<double> Z = h5_read<double>(mf, "/comparison_factors");
  H5Id df = h5_open(data());
  const auto vu = h5_read<std::uint64_t>(df, "/validation/user");
  const auto vc = h5_read<std::uint64_t>(df, "/validation/comparison");
  const auto vq = h5_read<double>(df, "/validation/value");
  ASSERT_EQ(vu.size(), vq.size());
  // The generator stores 0/1 labels as uint8 q = 200 v (docs/format.md).
  const double den = *std::max_element(vq.begin(), vq.end()) > 1 ? 200.0 : 1.0;
  // Mean log-loss of sigmoid(t m) and its derivative in t, summed in long double.
  auto at = [&](double t, double* grad = nullptr) {
    long double f = 0, g = 0;
    for (std::size_t k = 0; k < vu.size(); ++k) {
      double m = 0;
      for (int a = 0; a < kRank; ++a) m += U[vu[k] * kRank + a] * Z[vc[k] * kRank + a];
      const double y = vq[k] / den, x = t * m;
      f += std::max(x, 0.0) + std::log1p(std::exp(-std::abs(x))) - y * x;
      g += (1 / (1 + std::exp(-x)) - y) * m;
    }
    if (grad) *grad = static_cast<double>(g / vu.size());
    return static_cast<double>(f / vu.size());
  };
  double g = NAN;
  const double f = at(s, &g);
  ASSERT_GT(s, 0.0);
  EXPECT_NE(s, 1.0);  // an over-fitted ridge: its margins need shrinking or stretching
  EXPECT_LT(std::abs(g), 1e-9) << "the derivative of the validation log-loss at s = " << s;
  EXPECT_LE(f, at(s * 1.01));
  EXPECT_LE(f, at(s * 0.99));
  EXPECT_LT(f, at(1.0));
  const RunResult r = run_pref(
      2, {"evaluate", "--model", model, "--data", data(), "--split", "validation", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_NEAR(j["logloss"].get<double>(), f, 1e-12);
  EXPECT_NEAR(j["logloss_uncalibrated"].get<double>(), at(1.0), 1e-12);
  EXPECT_EQ(j["calibration_scale"].get<double>(), s);

  const std::string none = fit(2, "uncalibrated.h5", {"--calibrate", "none"});
  EXPECT_EQ(read_double_attr(h5_open(none), "calibration_scale"), 1.0);
  const RunResult rn = run_pref(
      1, {"evaluate", "--model", none, "--data", data(), "--split", "validation", "--json"});
  ASSERT_EQ(rn.exit_code, 0) << rn.command << "\n" << rn.err;
  const nlohmann::json jn = nlohmann::json::parse(rn.out);
  EXPECT_EQ(jn["logloss"].get<double>(), jn["logloss_uncalibrated"].get<double>());
  EXPECT_NEAR(jn["logloss"].get<double>(), at(1.0), 1e-12);
  // The factors are those of the calibrated fit: calibration changes nothing else.
  EXPECT_EQ(h5_read<double>(h5_open(none), "/user_factors"), U);

  for (int ranks : {1, 2, 4}) {
    const RunResult bad = run_pref(ranks, {"fit", "--data", data(), "--rank", "2", "--calibrate",
                                           "test", "--out", path("bad.h5")});
    EXPECT_EQ(bad.exit_code, 2) << bad.command << "\n" << bad.err;
    EXPECT_NE(bad.err.find("--calibrate"), std::string::npos) << bad.err;
    EXPECT_FALSE(fs::exists(path("bad.h5")));
  }
}

// The population prior is the default (no --mu-u): the model stores it (/prior/mean,
// /prior/covariance, attribute prior), and its test AUC is that of a ridge fit or better; --mu-u
// alone keeps its old meaning (the ridge, no /prior); bad values are refused with one line.
TEST_F(FitCli, PopulationPriorIsTheDefaultAndIsStored) {
  const std::vector<std::string> base = {
      "fit", "--data", data(), "--rank", std::to_string(kRank), "--max-sweeps", "60"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  const RunResult pr = run_pref(2, with({"--out", path("prior.h5")}));
  ASSERT_EQ(pr.exit_code, 0) << pr.command << "\n" << pr.err;
  EXPECT_TRUE(contains(pr.err, "prior tr")) << "no per-sweep prior in the log:\n" << pr.err;
  const RunResult rr = run_pref(2, with({"--mu-u", "3", "--mu-z", "3", "--out", path("ridge.h5")}));
  ASSERT_EQ(rr.exit_code, 0) << rr.command << "\n" << rr.err;
  {
    H5Id f = h5_open(path("prior.h5"));
    ASSERT_TRUE(h5_exists(f, "/prior/mean"));
    EXPECT_EQ(h5_dims(f, "/prior/mean"), (std::vector<hsize_t>{kRank}));
    EXPECT_EQ(h5_dims(f, "/prior/covariance"), (std::vector<hsize_t>{kRank, kRank}));
    const std::vector<double> cov = h5_read<double>(f, "/prior/covariance");
    for (int a = 0; a < kRank; ++a) {
      EXPECT_GT(cov[a * kRank + a], 0.0);
      for (int b = 0; b < kRank; ++b) EXPECT_EQ(cov[a * kRank + b], cov[b * kRank + a]);
    }
    H5Id g = h5_open(path("ridge.h5"));
    EXPECT_FALSE(h5_exists(g, "/prior"));
  }
  auto auc = [&](const std::vector<std::string>& args) {
    const RunResult r = run_pref(1, args);
    EXPECT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
    return nlohmann::json::parse(r.out)["auc"].get<double>();
  };
  const double a_prior = auc({"evaluate", "--model", path("prior.h5"), "--data", data(), "--json"});
  const double a_ridge = auc({"evaluate", "--model", path("ridge.h5"), "--data", data(), "--json"});
  const double a_truth = auc({"evaluate", "--reference", "truth", "--data", data(), "--json"});
  const double a_bayes = auc({"evaluate", "--reference", "bayes", "--data", data(), "--json"});
  const std::vector<std::string> known = {"evaluate", "--reference", "known-users",
                                          "--data",   data(),        "--json"};
  const double a_known = auc(known);
  std::printf(
      "test AUC: prior %.4f, ridge mu 3 %.4f, known-users ceiling %.4f, "
      "known-comparisons Bayes ceiling %.4f, true model %.4f\n",
      a_prior, a_ridge, a_known, a_bayes, a_truth);
  // Z estimated from the labels (with the true users) cannot beat the true Z by much, nor can a
  // fit, which knows no user, beat the estimate made with the true users by much.
  EXPECT_LE(a_known, a_bayes + 0.005);
  EXPECT_LE(a_prior, a_known + 0.01);
  EXPECT_GT(a_known, 0.55);
  {  // the same reference on 3 ranks: rank-count independent to round-off
    const RunResult r3 = run_pref(3, known);
    ASSERT_EQ(r3.exit_code, 0) << r3.command << "\n" << r3.err;
    EXPECT_NEAR(nlohmann::json::parse(r3.out)["auc"].get<double>(), a_known, 1e-9);
  }
  EXPECT_GE(a_prior, a_ridge - 0.005);
  EXPECT_LE(a_bayes, a_truth + 0.005);  // estimated users cannot beat the true ones by much
  EXPECT_LE(a_prior, a_bayes + 0.01);   // nor can a fit beat the ceiling beyond noise
  EXPECT_GT(a_bayes, 0.6);
  // Bad values: one line, exit 2, no output file.
  for (const auto& extra : std::vector<std::vector<std::string>>{
           {"--prior", "population", "--mu-u", "0"}, {"--prior", "lasso"}}) {
    std::vector<std::string> args = extra;
    args.insert(args.end(), {"--out", path("bad.h5")});
    const RunResult r = run_pref(2, with(args));
    EXPECT_EQ(r.exit_code, 2) << r.command << "\n" << r.err;
    // (a value outside an option's choices is CLI11's message, with its --help hint below)
    EXPECT_TRUE(contains(error_lines(r).at(0), extra[1] == "lasso" ? "--prior" : "--mu-u"))
        << r.err;
    EXPECT_FALSE(fs::exists(path("bad.h5")));
  }
  const RunResult both = run_pref(
      1, {"evaluate", "--model", path("prior.h5"), "--reference", "truth", "--data", data()});
  EXPECT_EQ(both.exit_code, 2) << both.err;
  EXPECT_TRUE(contains(both.err, "--reference")) << both.err;
}

}  // namespace

namespace {

// The default fit (issue 21: --stop predictions on the calibrated validation log-loss, the
// balanced start) of a population large enough for the validation monitor (9000 validation
// labels), at `ranks` ranks.
class DefaultFitCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    dir_ = fresh_dir("test_fit_cli_default");
    for (auto [name, users] : {std::pair{"data.h5", "3000"}, std::pair{"grown.h5", "3300"}}) {
      const RunResult r = run_pref(
          2, {"generate", "--model", "lowrank", "--users", users, "--comparisons", "150",
              "--answers-per-user", "30", "--rank", "3", "--seed", "4", "--out", path(name)});
      ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
    }
  }
  static void TearDownTestSuite() {
    if (!::testing::UnitTest::GetInstance()->Failed()) fs::remove_all(dir_);
  }
  static std::string path(const std::string& name) { return dir_ + "/" + name; }
  static RunResult fit(int ranks, const std::string& data, const std::string& out,
                       const std::vector<std::string>& extra = {}, const std::string& rank = "3") {
    std::vector<std::string> args = {"fit", "--data", path(data), "--rank",
                                     rank,  "--out",  path(out)};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_pref(ranks, args);
  }
  static std::int64_t int_attr(const std::string& file, const std::string& name) {
    H5Id f = h5_open(file);
    H5Id a(h5check(H5Aopen_by_name(f, "/", name.c_str(), H5P_DEFAULT, H5P_DEFAULT), "attr"),
           H5Aclose);
    std::int64_t v = -1;
    h5check(H5Aread(a, H5T_NATIVE_INT64, &v), "read attr");
    return v;
  }
  // U Z^T of a model file (users x comparisons, row-major).
  static std::vector<double> predictions(const std::string& file) {
    const Model m = read_model(file);
    const std::size_t n = m.udims[0], c = m.zdims[0], J = m.udims[1];
    std::vector<double> X(n * c, 0.0);
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t p = 0; p < c; ++p)
        for (std::size_t j = 0; j < J; ++j) X[i * c + p] += m.U[i * J + j] * m.Z[p * J + j];
    return X;
  }
  static inline std::string dir_;
};

// The stopping rule ends the fit at the same sweep, keeping the same state, at 1, 2 and 4 ranks,
// before the sweep limit; the predictions agree to round-off.
TEST_F(DefaultFitCli, RuleStopsAtTheSameSweepAtOneTwoAndFourRanks) {
  std::vector<std::int64_t> sweeps, kept;
  std::vector<std::vector<double>> X;
  for (int ranks : {1, 2, 4}) {
    const std::string out = "ranks" + std::to_string(ranks) + ".h5";
    const RunResult r = fit(ranks, "data.h5", out);
    ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
    EXPECT_TRUE(contains(r.err, "calibrated validation log-loss has not improved")) << r.err;
    EXPECT_EQ(int_attr(path(out), "converged"), 1);
    sweeps.push_back(int_attr(path(out), "sweeps"));
    kept.push_back(int_attr(path(out), "state_sweep"));
    X.push_back(predictions(path(out)));
  }
  EXPECT_LT(sweeps[0], 100) << "the rule did not stop the fit";
  EXPECT_LE(kept[0], sweeps[0]);
  for (std::size_t k = 1; k < sweeps.size(); ++k) {
    EXPECT_EQ(sweeps[k], sweeps[0]);
    EXPECT_EQ(kept[k], kept[0]);
    EXPECT_LT(max_abs_diff(X[k], X[0]), 1e-7);
  }
}

// --stop objective accelerates the sweeps by SQUAREM unless told otherwise (--accelerate's
// default resolves by the rule, and the value used is recorded), and the accelerated and the
// plain sweeps reach the same fixed point (predictions within what --tol 1e-9 leaves), the
// accelerated one in fewer sweeps (21 against 38 here). Where SQUAREM does not apply (--prior
// ridge) the default is none, and asking for it there is refused.
TEST_F(DefaultFitCli, StopObjectiveIsAcceleratedToThePlainSweepsFixedPoint) {
  const std::vector<std::string> objective = {"--stop", "objective",    "--tol",
                                              "1e-9",   "--max-sweeps", "400"};
  std::vector<std::string> plain_args = objective;
  plain_args.insert(plain_args.end(), {"--accelerate", "none"});
  const RunResult sq = fit(2, "data.h5", "objective_default.h5", objective);
  const RunResult plain = fit(2, "data.h5", "objective_plain.h5", plain_args);
  ASSERT_EQ(sq.exit_code, 0) << sq.command << "\n" << sq.err;
  ASSERT_EQ(plain.exit_code, 0) << plain.command << "\n" << plain.err;
  EXPECT_TRUE(contains(sq.err, "acceleration: squarem")) << sq.err;
  EXPECT_FALSE(contains(plain.err, "acceleration: squarem")) << plain.err;
  {
    H5Id f = h5_open(path("objective_default.h5")), g = h5_open(path("objective_plain.h5"));
    EXPECT_EQ(h5_string_attr(f, "/", "accelerate"), "squarem");
    EXPECT_EQ(h5_string_attr(g, "/", "accelerate"), "none");
  }
  EXPECT_EQ(int_attr(path("objective_default.h5"), "converged"), 1);
  EXPECT_EQ(int_attr(path("objective_plain.h5"), "converged"), 1);
  const std::vector<double> a = predictions(path("objective_default.h5")),
                            b = predictions(path("objective_plain.h5"));
  double scale = 0;
  for (double v : b) scale = std::max(scale, std::abs(v));
  EXPECT_LT(max_abs_diff(a, b), 1e-6 * scale);
  EXPECT_LT(int_attr(path("objective_default.h5"), "sweeps"),
            int_attr(path("objective_plain.h5"), "sweeps"))
      << "SQUAREM took no fewer sweeps than the plain ones";

  const RunResult ridge = fit(2, "data.h5", "objective_ridge.h5",
                              {"--stop", "objective", "--prior", "ridge", "--max-sweeps", "5"});
  ASSERT_EQ(ridge.exit_code, 0) << ridge.command << "\n" << ridge.err;
  {
    H5Id f = h5_open(path("objective_ridge.h5"));
    EXPECT_EQ(h5_string_attr(f, "/", "accelerate"), "none");
  }
  const RunResult refused =
      fit(2, "data.h5", "objective_refused.h5",
          {"--stop", "objective", "--prior", "ridge", "--accelerate", "squarem"});
  EXPECT_EQ(refused.exit_code, 2) << refused.err;
  EXPECT_TRUE(contains(refused.err, "--accelerate squarem: not supported with --prior ridge"))
      << refused.err;
  EXPECT_FALSE(fs::exists(path("objective_refused.h5")));
}

// --init model:PATH starts from the model: with no sweeps the output is the model (same
// predictions and prior); on grown data (10% more users, the same first ones) the model's users
// keep their rows and the new ones start at the prior's mean; the fit then runs and stops by
// its rule.
TEST_F(DefaultFitCli, WarmStartStartsFromTheModel) {
  RunResult r = fit(2, "data.h5", "source.h5");
  ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
  const std::string init = "model:" + path("source.h5");
  r = fit(2, "data.h5", "same0.h5", {"--init", init, "--max-sweeps", "0"});
  ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
  EXPECT_LT(max_abs_diff(predictions(path("same0.h5")), predictions(path("source.h5"))), 1e-12);
  {
    H5Id a = h5_open(path("same0.h5")), b = h5_open(path("source.h5"));
    EXPECT_LT(max_abs_diff(h5_read<double>(a, "/prior/covariance"),
                           h5_read<double>(b, "/prior/covariance")),
              1e-15);
  }
  r = fit(4, "grown.h5", "grown0.h5", {"--init", init, "--max-sweeps", "0"});
  ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
  EXPECT_TRUE(contains(r.err, "3000 users and 150 comparisons from the model")) << r.err;
  const Model src = read_model(path("source.h5")), grown = read_model(path("grown0.h5"));
  ASSERT_EQ(grown.udims[0], 3300u);
  H5Id sf = h5_open(path("source.h5"));
  const std::vector<double> mean = h5_read<double>(sf, "/prior/mean");
  double moved = 0, off_mean = 0;
  for (std::size_t k = 0; k < src.U.size(); ++k)
    moved = std::max(moved, std::abs(src.U[k] - grown.U[k]));
  for (std::size_t i = 3000; i < 3300; ++i)
    for (std::size_t j = 0; j < 3; ++j)
      off_mean = std::max(off_mean, std::abs(grown.U[i * 3 + j] - mean[j]));
  EXPECT_LT(moved, 1e-12);
  EXPECT_LT(off_mean, 1e-12);
  EXPECT_LT(max_abs_diff(src.Z, grown.Z), 1e-12);
  r = fit(2, "grown.h5", "warm.h5", {"--init", init});
  ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
  EXPECT_EQ(int_attr(path("warm.h5"), "converged"), 1);
}

// A source that cannot start this fit is refused with one line naming it, exit code 2, at 1 and
// 4 ranks, and nothing is written.
TEST_F(DefaultFitCli, BadWarmStartSourceIsRefused) {
  RunResult r = fit(2, "grown.h5", "big.h5", {"--max-sweeps", "1"});
  ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
  r = fit(2, "data.h5", "rank2.h5", {"--max-sweeps", "1"}, "2");
  ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
  struct Case {
    std::string init, expect;
    std::vector<std::string> extra;
  };
  const std::vector<Case> cases = {
      {"model:" + path("missing.h5"), path("missing.h5"), {}},
      {"model:" + path("rank2.h5"), "the model has rank 2, the fit --rank 3", {}},
      {"model:" + path("data.h5"), path("data.h5"), {}},
      {"model:" + path("big.h5"),
       "the model has 3300 users and 150 comparisons, the data 3000",
       {}},
      {"model:" + path("rank2.h5"), "--init model:", {"--model", "shared"}},
  };
  for (const Case& c : cases)
    for (int ranks : {1, 4}) {
      std::vector<std::string> extra = {"--init", c.init};
      extra.insert(extra.end(), c.extra.begin(), c.extra.end());
      r = fit(ranks, "data.h5", "refused.h5", extra);
      EXPECT_EQ(r.exit_code, 2) << r.command << "\n" << r.err;
      const auto lines = error_lines(r);
      ASSERT_EQ(lines.size(), 1u) << r.command << "\n" << r.err;
      EXPECT_TRUE(contains(lines[0], c.expect)) << lines[0];
      EXPECT_FALSE(fs::exists(path("refused.h5")));
    }
}

}  // namespace
