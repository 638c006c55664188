// `pref adapt --select auto` end to end (issue 24), on small populations made here:
//  - the evidence of each candidate is the mean held-out AUC of the training users adapted as new
//    users by that rule: a label file whose training users' held-out (validation) comparisons come
//    after their training ones, and whose /new_users are copies of them, lets `pref adapt` with
//    the explicit rule (--test-answers = the validation labels) compute the same per-user AUCs;
//  - the choice and the whole adapted file are the same at 1, 2 and 4 ranks and on a second run;
//  - changing the new users' held-out answers changes their AUCs but not the choice;
//  - a types file of another model's comparisons, --select info without types, and --prior with
//    --select auto end with exit code 2 and one line at 1 and 4 ranks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <future>
#include <random>

#include "tests/cli_util.hpp"
#include "tests/test_util.hpp"

using namespace pref::test;
namespace fs = std::filesystem;

namespace {

// The planted population of the evidence test: users of a few discrete types in J dimensions
// (so the types rule is a real candidate), train labels on comparisons [0, kTrainComps) and
// validation labels on [kTrainComps, kComparisons); ties where the margin is small.
constexpr int kUsers = 240, kComparisons = 90, kTrainComps = 60, kTrain = 24, kValid = 10,
              kRank = 3, kNewUsers = 12, kPool = 50;

class AutoCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    dir_ = fresh_dir("test_auto_cli");
    write_planted(path("planted.h5"));
    must(run_pref(2, {"fit", "--data", path("planted.h5"), "--rank", std::to_string(kRank),
                      "--max-sweeps", "10", "--out", path("planted_model.h5")}));
    must(run_pref(2, {"types", "--model", path("planted_model.h5"), "--data", path("planted.h5"),
                      "--types", "8", "--rounds", "2", "--out", path("planted_types.h5")}));
    // A generated Attributes population, and another with one comparison more.
    auto gen = [](const std::string& out, int comparisons) {
      return std::vector<std::string>{"generate",
                                      "--model",
                                      "attributes",
                                      "--users",
                                      "500",
                                      "--comparisons",
                                      std::to_string(comparisons),
                                      "--answers-per-user",
                                      "30",
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
                                      out};
    };
    must(run_pref(2, gen(path("data.h5"), 80)));
    must(run_pref(2, gen(path("other.h5"), 81)));
    for (const char* d : {"data", "other"})
      must(run_pref(2,
                    {"fit", "--data", path(std::string(d) + ".h5"), "--rank", std::to_string(kRank),
                     "--max-sweeps", "8", "--out", path(std::string(d) + "_model.h5")}));
    must(run_pref(2, {"types", "--model", path("data_model.h5"), "--data", path("data.h5"),
                      "--types", "12", "--rounds", "2", "--out", path("types.h5")}));
  }
  static void TearDownTestSuite() {
    if (!::testing::UnitTest::GetInstance()->Failed()) fs::remove_all(dir_);
  }
  static void must(const RunResult& r) { ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err; }
  static std::string path(const std::string& name) { return dir_ + "/" + name; }
  static std::vector<std::string> auto_args(const std::string& out,
                                            std::vector<std::string> extra = {}) {
    std::vector<std::string> a = {"adapt",
                                  "--model",
                                  path("data_model.h5"),
                                  "--types",
                                  path("types.h5"),
                                  "--data",
                                  path("data.h5"),
                                  "--out",
                                  out,
                                  "--answers",
                                  "8",
                                  "--test-answers",
                                  "20",
                                  "--budgets",
                                  "2,8",
                                  "--auto-users",
                                  "300"};
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
      for (const auto& n : needles)
        EXPECT_TRUE(contains(lines[0], n)) << "no '" << n << "' in " << lines[0];
    }
  }
  // The planted label file: /labels, /validation, and /new_users = every training user again,
  // its pool its training labels followed (in comparison order) by its validation labels.
  static void write_planted(const std::string& p) {
    std::mt19937_64 gen(17);
    std::normal_distribution<double> nd;
    std::uniform_real_distribution<double> ud;
    std::vector<double> Z(kComparisons * kRank), types(6 * kRank);
    for (auto& x : Z) x = nd(gen);
    for (auto& x : types) x = 1.5 * nd(gen);
    std::vector<std::uint32_t> tu, tc, vu, vc, nu, nc;
    std::vector<double> tv, vv, nv;
    auto label = [&](int type, int c) {
      double m = 0;
      for (int j = 0; j < kRank; ++j) m += types[type * kRank + j] * Z[c * kRank + j];
      if (std::abs(m) < 0.3) return 0.5;
      const double y = m > 0 ? 1.0 : 0.0;
      return ud(gen) < 0.1 ? 1 - y : y;
    };
    for (int u = 0; u < kUsers; ++u) {
      const int type = static_cast<int>(gen() % 6);
      std::vector<int> perm(kTrainComps);
      for (int c = 0; c < kTrainComps; ++c) perm[c] = c;
      std::shuffle(perm.begin(), perm.end(), gen);
      std::sort(perm.begin(), perm.begin() + kTrain);
      std::vector<int> held(kComparisons - kTrainComps);
      for (int c = 0; c < int(held.size()); ++c) held[c] = kTrainComps + c;
      std::shuffle(held.begin(), held.end(), gen);
      std::sort(held.begin(), held.begin() + kValid);
      for (int k = 0; k < kTrain; ++k) {
        const double y = label(type, perm[k]);
        tu.push_back(u), tc.push_back(perm[k]), tv.push_back(y);
        nu.push_back(u), nc.push_back(perm[k]), nv.push_back(y);
      }
      for (int k = 0; k < kValid; ++k) {
        const double y = label(type, held[k]);
        vu.push_back(u), vc.push_back(held[k]), vv.push_back(y);
        nu.push_back(u), nc.push_back(held[k]), nv.push_back(y);
      }
    }
    H5Id f = h5_create(p);
    h5_write_string_attr(f, "/", "format", "pref-labels");
    h5_write_attr<std::uint32_t>(f, "/", "format_version", 1);
    h5_write_attr<std::uint64_t>(f, "/", "users", kUsers);
    h5_write_attr<std::uint64_t>(f, "/", "comparisons", kComparisons);
    h5_write(f, "/labels/user", tu);
    h5_write(f, "/labels/comparison", tc);
    h5_write(f, "/labels/value", tv);
    h5_write(f, "/validation/user", vu);
    h5_write(f, "/validation/comparison", vc);
    h5_write(f, "/validation/value", vv);
    h5_write(f, "/new_users/user", nu);
    h5_write(f, "/new_users/comparison", nc);
    h5_write(f, "/new_users/value", nv);
    h5_write_attr<std::uint64_t>(f, "/new_users", "users", kUsers);
  }
  static std::string dir_;
};
std::string AutoCli::dir_;

std::vector<std::string> result_differences(const std::string& a, const std::string& b) {
  std::vector<std::string> out;
  for (auto& d : h5_differences(a, b))
    if (d != "/ attribute mpi_ranks: different") out.push_back(d);
  return out;
}

// Mean over users of a column of /budget_auc (NaN: no AUC).
double mean_auc(const std::string& file, std::size_t b, std::size_t B) {
  H5Id f = h5_open(file);
  const auto auc = h5_read<double>(f, "/budget_auc");
  double sum = 0, n = 0;
  for (std::size_t u = 0; u < auc.size() / B; ++u)
    if (!std::isnan(auc[u * B + b])) sum += auc[u * B + b], n += 1;
  return sum / n;
}

TEST_F(AutoCli, EvidenceIsTheTrainingUsersAdaptedAsNewUsersByEachRule) {
  const std::vector<std::string> common = {"--data",         path("planted.h5"),
                                           "--answers",      "8",
                                           "--budgets",      "2,8",
                                           "--test-answers", std::to_string(kValid),
                                           "--auto-users",   std::to_string(kUsers)};
  auto args = [&](const std::string& out, std::vector<std::string> extra) {
    std::vector<std::string> a = {
        "adapt", "--model", path("planted_model.h5"), "--types", path("planted_types.h5"),
        "--out", out};
    a.insert(a.end(), common.begin(), common.end());
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  must(run_pref(2, args(path("planted_auto.h5"), {})));
  H5Id f = h5_open(path("planted_auto.h5"));
  const std::string candidates = h5_string_attr(f, "/selection", "candidates");
  ASSERT_EQ(candidates, "bayes/population,bayes/population/ordinal,info/types");
  EXPECT_EQ(h5_read<std::uint32_t>(f, "/selection/budgets"), (std::vector<std::uint32_t>{2, 8}));
  const auto evidence = h5_read<double>(f, "/selection/evidence");
  const auto score = h5_read<double>(f, "/selection/score");
  ASSERT_EQ(evidence.size(), 6u);
  // Each candidate run by hand on the copies of the training users.
  const std::vector<std::vector<std::string>> rules = {
      {"--select", "bayes", "--prior", "population"},
      {"--select", "bayes", "--prior", "population", "--likelihood", "ordinal"},
      {"--select", "info", "--prior", "types"}};
  std::size_t best = 0;
  for (std::size_t c = 0; c < rules.size(); ++c) {
    const std::string out = path("planted_rule" + std::to_string(c) + ".h5");
    must(run_pref(2, args(out, rules[c])));
    for (std::size_t b = 0; b < 2; ++b)
      EXPECT_NEAR(evidence[c * 2 + b], mean_auc(out, b, 2), 1e-12) << "candidate " << c;
    EXPECT_NEAR(score[c], 0.5 * (evidence[c * 2] + evidence[c * 2 + 1]), 1e-15);
    if (score[c] > score[best]) best = c;
  }
  const std::vector<std::string> names = {"bayes/population", "bayes/population/ordinal",
                                          "info/types"};
  EXPECT_EQ(h5_string_attr(f, "/selection", "chosen"), names[best]);
  // The adapted users are those of the chosen rule run by hand, and the file says which it is.
  H5Id g = h5_open(path("planted_rule" + std::to_string(best) + ".h5"));
  EXPECT_EQ(h5_string_attr(f, "/", "select"), h5_string_attr(g, "/", "select"));
  EXPECT_EQ(h5_string_attr(f, "/", "prior"), h5_string_attr(g, "/", "prior"));
  EXPECT_EQ(h5_read<double>(f, "/weights"), h5_read<double>(g, "/weights"));
  EXPECT_EQ(h5_read<std::uint32_t>(f, "/asked"), h5_read<std::uint32_t>(g, "/asked"));
  EXPECT_EQ(h5_read<double>(f, "/budget_auc"), h5_read<double>(g, "/budget_auc"));
}

TEST_F(AutoCli, SameFileAtOneTwoAndFourRanksAndOnARepeat) {
  std::vector<std::future<RunResult>> runs;
  for (int np : {1, 2, 4})
    runs.push_back(std::async(std::launch::async, run_pref, np,
                              auto_args(path("auto_" + std::to_string(np) + ".h5")), 300));
  for (auto& r : runs) must(r.get());
  must(run_pref(2, auto_args(path("auto_again.h5"))));
  EXPECT_EQ(result_differences(path("auto_1.h5"), path("auto_2.h5")), std::vector<std::string>{});
  EXPECT_EQ(result_differences(path("auto_1.h5"), path("auto_4.h5")), std::vector<std::string>{});
  EXPECT_EQ(h5_differences(path("auto_2.h5"), path("auto_again.h5")), std::vector<std::string>{});
  H5Id f = h5_open(path("auto_1.h5"));
  EXPECT_EQ(h5_string_attr(f, "/selection", "mode"), "auto");
  EXPECT_EQ(h5_read<double>(f, "/selection/evidence").size(),
            h5_read<double>(f, "/selection/score").size() * 2);
}

TEST_F(AutoCli, NewUsersHeldOutAnswersDoNotChangeTheChoice) {
  must(run_pref(2, auto_args(path("before.h5"))));
  // The same file with every new user's held-out answers (the last --test-answers of its pool,
  // the generator writes each user's pool in comparison order) flipped.
  const std::string flipped = path("flipped.h5");
  fs::copy_file(path("data.h5"), flipped, fs::copy_options::overwrite_existing);
  {
    H5Id f = h5_open(flipped, true);
    auto users = h5_read<std::uint32_t>(f, "/new_users/user");
    auto values = h5_read<double>(f, "/new_users/value");
    // Stored as one byte (q / 200: docs/format.md) or as floats.
    const bool bytes = *std::max_element(values.begin(), values.end()) > 1;
    for (double& v : values)
      if (bytes) v /= 200;
    for (std::size_t i = 0; i < values.size(); ++i)
      if (i % kPool >= kPool - 20) values[i] = values[i] == 0.5 ? 0.5 : 1.0 - values[i];
    ASSERT_EQ(users[kPool - 1], users[0]);
    H5Ldelete(f, "/new_users/value", H5P_DEFAULT);
    h5_write(f, "/new_users/value", values);
  }
  auto args = auto_args(path("after.h5"));
  args[6] = flipped;
  must(run_pref(2, args));
  H5Id a = h5_open(path("before.h5")), b = h5_open(path("after.h5"));
  for (const char* attr : {"chosen", "candidates"})
    EXPECT_EQ(h5_string_attr(a, "/selection", attr), h5_string_attr(b, "/selection", attr));
  EXPECT_EQ(h5_read<double>(a, "/selection/evidence"), h5_read<double>(b, "/selection/evidence"));
  EXPECT_EQ(h5_string_attr(a, "/", "select"), h5_string_attr(b, "/", "select"));
  EXPECT_EQ(h5_string_attr(a, "/", "prior"), h5_string_attr(b, "/", "prior"));
  // The change is real: the new users' held-out AUCs moved.
  EXPECT_NE(h5_read<double>(a, "/budget_auc"), h5_read<double>(b, "/budget_auc"));
}

TEST_F(AutoCli, BadInputsAreOneLineExitTwo) {
  // A types file of another model's comparisons (81 against 80).
  auto a = auto_args(path("x1.h5"));
  a[2] = path("other_model.h5");
  a[6] = path("other.h5");
  expect_input_error(a, {path("types.h5"), "another model's comparisons", "--types", "--model"});
  // info without types.
  expect_input_error({"adapt", "--model", path("data_model.h5"), "--data", path("data.h5"), "--out",
                      path("x2.h5"), "--select", "info"},
                     {"--select info", "--types", "--prior mixture"});
  // --prior with --select auto given.
  expect_input_error(auto_args(path("x4.h5"), {"--select", "auto", "--prior", "none"}),
                     {"--select auto", "--prior"});
}

}  // namespace
