// `pref types` and `pref adapt --types` end to end on a small generated population and a fitted
// model (issue 13):
//  - the types file is the same at 1 and 4 ranks (bitwise, apart from the mpi_ranks attribute)
//    and holds the documented datasets; its objective history never decreases;
//  - adapt --types (info and random) gives the same adapted file at 1 and 4 ranks, records the
//    discrete prior, and its weights are convex combinations of the atoms; without --select
//    (auto) a types file alone runs info;
//  - bad inputs end with exit code 2 and one line at 1, 2 and 4 ranks: a training label 0.3,
//    --types 0, a types file of the wrong kind, a selection other than info or random with
//    --types, --prior with --types, a new user's answer 0.3 (a types file of another model's
//    comparisons: test_auto_cli).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <future>

#include "tests/cli_util.hpp"
#include "tests/test_util.hpp"

using namespace pref::test;
namespace fs = std::filesystem;

namespace {

constexpr int kComparisons = 80, kNewUsers = 10, kPool = 50, kRank = 3, kUsers = 400;

class TypesCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    dir_ = fresh_dir("test_types_cli");
    must(run_pref(2, {"generate",
                      "--model",
                      "attributes",
                      "--users",
                      std::to_string(kUsers),
                      "--comparisons",
                      std::to_string(kComparisons),
                      "--answers-per-user",
                      "20",
                      "--labels",
                      "deterministic",
                      "--tie-band",
                      "0.2",
                      "--label-noise",
                      "0.1",
                      "--new-users",
                      std::to_string(kNewUsers),
                      "--new-user-answers",
                      std::to_string(kPool),
                      "--seed",
                      "3",
                      "--out",
                      path("data.h5")}));
    must(run_pref(2, {"fit", "--data", path("data.h5"), "--rank", std::to_string(kRank),
                      "--max-sweeps", "8", "--out", path("model.h5")}));
    must(run_pref(2, types_args(path("types.h5"))));
  }
  static void TearDownTestSuite() {
    if (!::testing::UnitTest::GetInstance()->Failed()) fs::remove_all(dir_);
  }
  static void must(const RunResult& r) { ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err; }
  static std::string path(const std::string& name) { return dir_ + "/" + name; }
  static std::vector<std::string> types_args(const std::string& out,
                                             std::vector<std::string> extra = {}) {
    std::vector<std::string> a = {
        "types",   "--model", path("model.h5"), "--data", path("data.h5"), "--out", out,
        "--types", "12",      "--rounds",       "2",      "--seed",        "2"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  static std::vector<std::string> adapt_args(const std::string& out,
                                             std::vector<std::string> extra = {}) {
    std::vector<std::string> a = {
        "adapt",     "--types", path("types.h5"), "--data", path("data.h5"), "--out", out,
        "--answers", "8",       "--test-answers", "20",     "--budgets",     "1,2,8"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  // A label file over kUsers users and kComparisons comparisons with the given training rows
  // and, optionally, a /new_users group.
  static std::string make_labels(const std::string& name, const std::vector<double>& train,
                                 const std::vector<double>& pool = {}) {
    const std::string p = path(name);
    H5Id f = h5_create(p);
    h5_write_string_attr(f, "/", "format", "pref-labels");
    h5_write_attr<std::uint32_t>(f, "/", "format_version", 1);
    h5_write_attr<std::uint64_t>(f, "/", "users", kUsers);
    h5_write_attr<std::uint64_t>(f, "/", "comparisons", kComparisons);
    std::vector<std::uint32_t> u(train.size()), c(train.size());
    for (std::size_t i = 0; i < train.size(); ++i) u[i] = std::uint32_t(i), c[i] = std::uint32_t(i);
    h5_write(f, "/labels/user", u);
    h5_write(f, "/labels/comparison", c);
    h5_write(f, "/labels/value", train);
    if (!pool.empty()) {
      std::vector<std::uint32_t> pu(pool.size(), 0), pc(pool.size());
      for (std::size_t i = 0; i < pool.size(); ++i) pc[i] = std::uint32_t(i);
      h5_write(f, "/new_users/user", pu);
      h5_write(f, "/new_users/comparison", pc);
      h5_write(f, "/new_users/value", pool);
      h5_write_attr<std::uint64_t>(f, "/new_users", "users", 1);
    }
    return p;
  }
  static std::string dir_;
};
std::string TypesCli::dir_;

std::vector<std::string> result_differences(const std::string& a, const std::string& b) {
  std::vector<std::string> out;
  for (auto& d : h5_differences(a, b))
    if (d != "/ attribute mpi_ranks: different") out.push_back(d);
  return out;
}

TEST_F(TypesCli, SameFileAtOneAndFourRanks) {
  std::vector<std::future<RunResult>> runs;
  for (int np : {1, 4})
    runs.push_back(std::async(std::launch::async, run_pref, np,
                              types_args(path("types_" + std::to_string(np) + ".h5")), 300));
  for (auto& r : runs) must(r.get());
  EXPECT_EQ(result_differences(path("types_1.h5"), path("types_4.h5")), std::vector<std::string>{});
  EXPECT_EQ(result_differences(path("types.h5"), path("types_4.h5")), std::vector<std::string>{});
  H5Id f = h5_open(path("types_1.h5"));
  EXPECT_EQ(h5_dims(f, "/comparison_factors"), (std::vector<hsize_t>{kComparisons, kRank}));
  EXPECT_EQ(h5_dims(f, "/atoms"), (std::vector<hsize_t>{12, kRank}));
  const auto w = h5_read<double>(f, "/atom_weights");
  double total = 0;
  for (double x : w) total += x;
  EXPECT_NEAR(total, 1.0, 1e-12);
  const auto history = h5_read<double>(f, "/objective");
  ASSERT_EQ(history.size(), 4u);  // start, step (0), 2 rounds
  for (std::size_t i = 1; i < history.size(); ++i) EXPECT_GE(history[i], history[i - 1]);
}

TEST_F(TypesCli, AdaptWithTypesIsTheSameAtOneAndFourRanks) {
  for (const char* select : {"info", "random"}) {
    std::vector<std::future<RunResult>> runs;
    for (int np : {1, 4})
      runs.push_back(
          std::async(std::launch::async, run_pref, np,
                     adapt_args(path(std::string("adapted_") + select + std::to_string(np) + ".h5"),
                                {"--select", select}),
                     300));
    for (auto& r : runs) must(r.get());
    const std::string a = path(std::string("adapted_") + select + "1.h5");
    EXPECT_EQ(result_differences(a, path(std::string("adapted_") + select + "4.h5")),
              std::vector<std::string>{});
    H5Id f = h5_open(a);
    const auto weights = h5_read<double>(f, "/weights");
    ASSERT_EQ(weights.size(), std::size_t(kNewUsers * kRank));
    for (double x : weights) EXPECT_TRUE(std::isfinite(x));
    const auto auc = h5_read<double>(f, "/budget_auc");
    EXPECT_EQ(auc.size(), std::size_t(kNewUsers * 3));
    // The posterior mean lies in the atoms' bounding box.
    H5Id t = h5_open(path("types.h5"));
    const auto atoms = h5_read<double>(t, "/atoms");
    for (int j = 0; j < kRank; ++j) {
      double lo = INFINITY, hi = -INFINITY;
      for (std::size_t k = 0; k < atoms.size() / kRank; ++k)
        lo = std::min(lo, atoms[k * kRank + j]), hi = std::max(hi, atoms[k * kRank + j]);
      for (int u = 0; u < kNewUsers; ++u) {
        EXPECT_GE(weights[u * kRank + j], lo - 1e-12);
        EXPECT_LE(weights[u * kRank + j], hi + 1e-12);
      }
    }
  }
  // Without --select (auto), info: the only rule a types file alone can run, recorded as
  // chosen in /selection.
  must(run_pref(2, adapt_args(path("adapted_default.h5"))));
  H5Id g = h5_open(path("adapted_default.h5")), i = h5_open(path("adapted_info1.h5"));
  EXPECT_TRUE(h5_exists(g, "/selection"));
  for (const char* d : {"/weights", "/covariance", "/budget_auc", "/answers"})
    EXPECT_EQ(h5_read<double>(g, d), h5_read<double>(i, d)) << d;
  EXPECT_EQ(h5_read<std::uint32_t>(g, "/asked"), h5_read<std::uint32_t>(i, "/asked"));
}

TEST_F(TypesCli, BadInputsAreOneLineExitTwo) {
  const std::string bad = make_labels("bad_value.h5", {1, 0.5, 0.3, 0});
  auto t = types_args(path("o1.h5"));
  t[4] = bad;
  expect_usage_error(t, {"bad_value.h5", "/labels/value", "row 2", "value 0.3", "0, 0.5 or 1"});
  t = types_args(path("o2.h5"));
  t[8] = "0";  // --types 0
  expect_usage_error(t, {"--types", ">= 1"});
  auto a = adapt_args(path("o3.h5"));
  a[2] = path("model.h5");
  expect_usage_error(a, {path("model.h5"), "not a pref types file", "--types"});
  expect_usage_error(adapt_args(path("o4.h5"), {"--select", "active"}),
                     {"--select active", "--types", "info", "random"});
  expect_usage_error(adapt_args(path("o5.h5"), {"--select", "bayes"}), {"--select bayes"});
  expect_usage_error(adapt_args(path("o7.h5"), {"--prior", "mixture"}), {"--prior"});
  std::vector<double> pool(30, 1.0);
  pool[4] = 0.3;
  const std::string bad_pool = make_labels("bad_pool.h5", {1, 0}, pool);
  auto b = adapt_args(path("o8.h5"));
  b[4] = bad_pool;
  b[10] = "0";  // --test-answers 0
  expect_usage_error(b, {"bad_pool.h5", "/new_users/value", "row 4", "value 0.3"});
}

}  // namespace
