// `pref adapt` end to end on a small generated population and a fitted model:
//  - the adapted-users file is the same at 1, 2 and 4 ranks (bitwise, apart from the mpi_ranks
//    attribute) for every selection rule and estimator, and has the documented contents;
//  - a model's stored /prior is used (and recorded), a ridge model falls back to its users'
//    moments;
//  - every bad input of issue 13 ends with exit code 2 and one line at 1 and 4 ranks.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <future>
#include <set>

#include "tests/test_util.hpp"

using namespace pref::test;
namespace fs = std::filesystem;

namespace {

constexpr int kComparisons = 80, kNewUsers = 10, kPool = 50, kRank = 3;

class AdaptCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    dir_ = fresh_dir("test_adapt_cli");
    auto gen = [](const std::string& out, int comparisons, int new_users) {
      return std::vector<std::string>{"generate",
                                      "--model",
                                      "attributes",
                                      "--users",
                                      "400",
                                      "--comparisons",
                                      std::to_string(comparisons),
                                      "--answers-per-user",
                                      "20",
                                      "--new-users",
                                      std::to_string(new_users),
                                      "--new-user-answers",
                                      std::to_string(kPool),
                                      "--seed",
                                      "3",
                                      "--out",
                                      out};
    };
    must(run_pref(2, gen(path("data.h5"), kComparisons, kNewUsers)));
    must(run_pref(2, gen(path("other_m.h5"), kComparisons + 1, kNewUsers)));
    must(run_pref(2, gen(path("no_new.h5"), kComparisons, 0)));
    // A ridge model (no /prior: the fallback; the tests add their own), and one with the fit's
    // population prior (the default).
    must(run_pref(2, {"fit", "--data", path("data.h5"), "--rank", std::to_string(kRank),
                      "--max-sweeps", "8", "--prior", "ridge", "--out", path("model.h5")}));
    must(run_pref(2, {"fit", "--data", path("data.h5"), "--rank", std::to_string(kRank),
                      "--max-sweeps", "8", "--out", path("model_fitted_prior.h5")}));
    must(run_pref(2, {"fit", "--data", path("data.h5"), "--model", "shared", "--rank", "1",
                      "--max-sweeps", "3", "--out", path("shared.h5")}));
  }
  static void TearDownTestSuite() {
    if (!::testing::UnitTest::GetInstance()->Failed()) fs::remove_all(dir_);
  }
  static void must(const RunResult& r) { ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err; }
  static std::string path(const std::string& name) { return dir_ + "/" + name; }
  static std::vector<std::string> adapt_args(const std::string& out,
                                             std::vector<std::string> extra = {}) {
    std::vector<std::string> a = {
        "adapt",     "--model", path("model.h5"), "--data", path("data.h5"), "--out", out,
        "--answers", "8",       "--test-answers", "20",     "--budgets",     "1,2,8"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  static void expect_input_error(const std::vector<std::string>& args,
                                 const std::vector<std::string>& needles) {
    std::vector<std::future<RunResult>> runs;
    for (int np : {1, 4}) runs.push_back(std::async(std::launch::async, run_pref, np, args, 120));
    for (auto& run : runs) {
      const RunResult r = run.get();
      SCOPED_TRACE(r.command);
      ASSERT_FALSE(r.timed_out) << r.err;
      EXPECT_EQ(r.exit_code, 2) << r.err;
      const auto lines = error_lines(r);
      ASSERT_EQ(lines.size(), 1u) << r.err;
      EXPECT_EQ(lines[0].rfind("pref: error: ", 0), 0u) << lines[0];
      for (const auto& n : needles)
        EXPECT_TRUE(contains(lines[0], n)) << "no '" << n << "' in " << lines[0];
    }
  }
  // A label file of 3 training users over kComparisons comparisons whose /new_users group
  // (2 users) has the given columns.
  static std::string make_pool(const std::string& name, const std::vector<std::uint32_t>& user,
                               const std::vector<std::uint32_t>& comparison,
                               const std::vector<double>& value) {
    const std::string p = path(name);
    H5Id f = h5_create(p);
    h5_write_string_attr(f, "/", "format", "pref-labels");
    h5_write_attr<std::uint32_t>(f, "/", "format_version", 1);
    h5_write_attr<std::uint64_t>(f, "/", "users", 3);
    h5_write_attr<std::uint64_t>(f, "/", "comparisons", kComparisons);
    h5_write(f, "/labels/user", std::vector<std::uint32_t>{0, 1, 2});
    h5_write(f, "/labels/comparison", std::vector<std::uint32_t>{0, 1, 2});
    h5_write(f, "/labels/value", std::vector<double>{1, 0, 1});
    h5_write(f, "/new_users/user", user);
    h5_write(f, "/new_users/comparison", comparison);
    h5_write(f, "/new_users/value", value);
    h5_write_attr<std::uint64_t>(f, "/new_users", "users", 2);
    return p;
  }
  static std::string dir_;
};
std::string AdaptCli::dir_;

std::string fmt(const char* select, const char* prior, int np) {
  return std::string("adapted_") + select + "_" + prior + "_" + std::to_string(np) + ".h5";
}

// The differences that are not the rank count.
std::vector<std::string> result_differences(const std::string& a, const std::string& b) {
  std::vector<std::string> out;
  for (auto& d : h5_differences(a, b))
    if (d != "/ attribute mpi_ranks: different") out.push_back(d);
  return out;
}

TEST_F(AdaptCli, SameFileAtOneTwoAndFourRanks) {
  const std::vector<std::pair<const char*, const char*>> rules = {
      {"random", "population"}, {"random", "none"}, {"active", "population"}, {"active", "none"},
      {"bayes", "population"},  {"bayes", "none"},  {"random", "mixture"},    {"info", "mixture"}};
  for (const auto& [select, prior] : rules) {
    {
      SCOPED_TRACE(std::string(select) + " " + prior);
      std::vector<std::future<RunResult>> runs;
      std::vector<std::string> extra = {"--select", select, "--prior", prior};
      if (std::string(prior) == "mixture") extra.insert(extra.end(), {"--components", "3"});
      for (int np : {1, 2, 4})
        runs.push_back(std::async(std::launch::async, run_pref, np,
                                  adapt_args(path(fmt(select, prior, np)), extra), 120));
      for (auto& r : runs) must(r.get());
      const std::string one = path(fmt(select, prior, 1));
      EXPECT_EQ(result_differences(one, path(fmt(select, prior, 2))), std::vector<std::string>{});
      EXPECT_EQ(result_differences(one, path(fmt(select, prior, 4))), std::vector<std::string>{});
      H5Id f = h5_open(one);
      EXPECT_EQ(h5_dims(f, "/weights"), (std::vector<hsize_t>{kNewUsers, kRank}));
      EXPECT_EQ(h5_dims(f, "/covariance"), (std::vector<hsize_t>{kNewUsers, kRank, kRank}));
      EXPECT_EQ(h5_dims(f, "/asked"), (std::vector<hsize_t>{kNewUsers, 8}));
      EXPECT_EQ(h5_dims(f, "/budget_auc"), (std::vector<hsize_t>{kNewUsers, 3}));
      const auto asked = h5_read<std::uint32_t>(f, "/asked");
      const auto cov = h5_read<double>(f, "/covariance");
      for (int u = 0; u < kNewUsers; ++u) {
        std::set<std::uint32_t> distinct(asked.begin() + u * 8, asked.begin() + (u + 1) * 8);
        EXPECT_EQ(distinct.size(), 8u) << "user " << u;
        for (int i = 0; i < kRank; ++i) {
          EXPECT_GT(cov[u * 9 + i * 4], 0.0);
          for (int j = 0; j < kRank; ++j) EXPECT_EQ(cov[u * 9 + i * 3 + j], cov[u * 9 + j * 3 + i]);
        }
      }
      const auto auc = h5_read<double>(f, "/budget_auc");
      int defined = 0;
      for (double a : auc) defined += !std::isnan(a) && a >= 0 && a <= 1;
      EXPECT_GE(defined, kNewUsers * 3 / 2);
      if (std::string(prior) == "mixture") {
        const auto w = h5_read<double>(f, "/mixture/weight");
        EXPECT_GE(w.size(), 1u);
        EXPECT_LE(w.size(), 3u);
        EXPECT_EQ(h5_dims(f, "/mixture/covariance"),
                  (std::vector<hsize_t>{w.size(), kRank, kRank}));
      }
    }
  }
}

TEST_F(AdaptCli, StoredPriorIsUsedElseTheFittedUsersMoments) {
  const std::string with_prior = path("model_prior.h5");
  fs::copy_file(path("model.h5"), with_prior, fs::copy_options::overwrite_existing);
  {
    H5Id f = h5_open(with_prior, true);
    h5_write(f, "/prior/mean", std::vector<double>{0.5, -0.25, 0.125});
    const hsize_t d[2] = {3, 3};
    H5Id space(H5Screate_simple(2, d, nullptr), H5Sclose);
    H5Id ds(H5Dcreate2(f, "/prior/covariance", H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT,
                       H5P_DEFAULT),
            H5Dclose);
    const std::vector<double> cov = {2, 0.5, 0, 0.5, 1, 0, 0, 0, 0.5};
    H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, cov.data());
    h5_write_string_attr(f, "/prior", "kind", "population");
  }
  auto args = adapt_args(path("stored.h5"), {"--select", "bayes"});
  args[2] = with_prior;
  const RunResult r = run_pref(2, args);
  must(r);
  EXPECT_FALSE(contains(r.err, "fitted users"));
  H5Id f = h5_open(path("stored.h5"));
  EXPECT_EQ(h5_read<double>(f, "/prior/mean"), (std::vector<double>{0.5, -0.25, 0.125}));
  const auto cov = h5_read<double>(f, "/prior/covariance");
  EXPECT_NEAR(cov[0], 2, 1e-12);
  EXPECT_NEAR(cov[1], 0.5, 1e-12);
  EXPECT_NEAR(cov[8], 0.5, 1e-12);

  const RunResult fb = run_pref(2, adapt_args(path("fallback.h5"), {"--select", "bayes"}));
  must(fb);
  EXPECT_TRUE(contains(fb.err, "has no /prior group; using the mean and covariance")) << fb.err;
  // A model of `pref fit` with its default population prior: that prior is what adapt uses.
  auto fitted = adapt_args(path("fitted_prior.h5"), {"--select", "bayes"});
  fitted[2] = path("model_fitted_prior.h5");
  const RunResult fp = run_pref(2, fitted);
  must(fp);
  EXPECT_TRUE(contains(fp.err, "the population prior stored in")) << fp.err;
  {
    H5Id m = h5_open(path("model_fitted_prior.h5"));
    H5Id a = h5_open(path("fitted_prior.h5"));
    EXPECT_EQ(h5_read<double>(a, "/prior/mean"), h5_read<double>(m, "/prior/mean"));
    const auto ca = h5_read<double>(a, "/prior/covariance");
    const auto cm = h5_read<double>(m, "/prior/covariance");
    ASSERT_EQ(ca.size(), cm.size());
    for (std::size_t k = 0; k < ca.size(); ++k) EXPECT_NEAR(ca[k], cm[k], 1e-14) << k;
  }
  // Another prior, other answers chosen.
  H5Id g = h5_open(path("fallback.h5"));
  EXPECT_NE(h5_read<double>(g, "/prior/mean"), (std::vector<double>{0.5, -0.25, 0.125}));
  EXPECT_NE(h5_read<double>(g, "/weights"), h5_read<double>(f, "/weights"));
}

TEST_F(AdaptCli, ModelOfWrongKindOrVersion) {
  auto a = adapt_args(path("o1.h5"));
  a[2] = path("data.h5");
  expect_input_error(a, {path("data.h5"), "not a pref model file"});
  const std::string v2 = path("model_v2.h5");
  fs::copy_file(path("model.h5"), v2, fs::copy_options::overwrite_existing);
  {
    H5Id f = h5_open(v2, true);
    H5Adelete(f, "format_version");
    h5_write_attr<std::uint32_t>(f, "/", "format_version", 2);
  }
  a[2] = v2;
  expect_input_error(a, {v2, "format_version 2 is not supported"});
  a[2] = path("shared.h5");
  expect_input_error(a, {path("shared.h5"), "shared model"});
  expect_input_error(adapt_args(path("x.h5"), {"--select", "info"}),
                     {"--select info", "--prior mixture"});
  expect_input_error(adapt_args(path("x.h5"), {"--prior", "mixture", "--components", "0"}),
                     {"--components"});
  const std::string bad_prior = path("model_bad_prior.h5");
  fs::copy_file(path("model.h5"), bad_prior, fs::copy_options::overwrite_existing);
  {
    H5Id f = h5_open(bad_prior, true);
    h5_write(f, "/prior/mean", std::vector<double>{0, 0});
    h5_write_string_attr(f, "/prior", "kind", "population");
  }
  a[2] = bad_prior;
  expect_input_error(a, {bad_prior, "/prior/mean", "expected 3 float64"});
}

TEST_F(AdaptCli, DataNotMatchingTheModel) {
  auto a = adapt_args(path("o2.h5"));
  a[4] = path("other_m.h5");
  expect_input_error(a, {path("other_m.h5"), "81 comparisons", "has 80"});
  a[4] = path("no_new.h5");
  expect_input_error(a, {path("no_new.h5"), "no /new_users group", "--group"});
  // An answer naming comparison 80 of a model that knows 0..79.
  a[4] = make_pool("unknown_comparison.h5", {0, 0, 1, 1}, {3, 4, 5, 80}, {1, 0, 1, 0});
  expect_input_error(a, {"unknown_comparison.h5", "/new_users/comparison", "row 3",
                         "comparison id 80 out of range [0, 80)"});
  a[4] = make_pool("bad_value.h5", {0, 0, 1, 1}, {3, 4, 5, 6}, {1, 0, 1.5, 0});
  expect_input_error(a, {"bad_value.h5", "/new_users/value", "row 2", "1.5 outside [0, 1]"});
}

TEST_F(AdaptCli, AnswersLargerThanAPoolNameTheUser) {
  auto a = adapt_args(path("o3.h5"));
  a[8] = "31";  // --answers 31 + --test-answers 20 > a pool of 50
  a[12] = "1,2";
  expect_input_error(a, {path("data.h5"), "/new_users", "user 0 has 50 answers",
                         "--answers 31 + --test-answers 20"});
  // Only user 1 short: its id is named, at every rank count.
  a[4] = make_pool("short_pool.h5", {0, 0, 0, 1, 1}, {3, 4, 5, 6, 7}, {1, 0, 1, 0, 1});
  a[8] = "3";
  a[10] = "0";
  a[12] = "3";
  expect_input_error(a, {"short_pool.h5", "user 1 has 2 answers", "--answers 3"});
}

TEST_F(AdaptCli, ExistingOutputNeedsOverwrite) {
  const std::string out = path("exists.h5");
  must(run_pref(1, adapt_args(out)));
  expect_input_error(adapt_args(out), {out, "already exists", "--overwrite"});
  must(run_pref(1, adapt_args(out, {"--overwrite"})));
}

}  // namespace
