// `pref score` end to end (issue 14): scores of a head model's fitted users and of adapted new
// users equal u . (W^T e) computed here from the files; --best-of-N picks each user's argmax per
// prompt; the file is the same at 1 and 4 ranks; models and files that cannot be scored end
// with exit code 2 and one line.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "tests/cli_util.hpp"

using namespace pref::test;
namespace fs = std::filesystem;

namespace {

constexpr int kJ = 7, kD = 6, kN = 4;

class ScoreCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    dir_ = fresh_dir("test_score_cli");
    auto ok = [](const RunResult& r) { ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err; };
    // 120 comparisons of 4 responses per prompt: 20 prompts, 80 responses.
    ok(run_pref(2, {"generate",
                    "--users",
                    "200",
                    "--comparisons",
                    "120",
                    "--answers-per-user",
                    "30",
                    "--responses-per-prompt",
                    std::to_string(kN),
                    "--heldout-prompts",
                    "4",
                    "--embedding-dim",
                    std::to_string(kD),
                    "--embedding-noise",
                    "0.1",
                    "--new-users",
                    "10",
                    "--new-user-answers",
                    "40",
                    "--seed",
                    "8",
                    "--out",
                    data()}));
    ok(run_pref(2, {"fit", "--data", data(), "--rank", std::to_string(kJ), "--items", "embeddings",
                    "--max-sweeps", "5", "--out", path("emb.h5")}));
    ok(run_pref(
        1, {"fit", "--data", data(), "--rank", "3", "--max-sweeps", "2", "--out", path("cmp.h5")}));
    ok(run_pref(1, {"adapt", "--model", path("emb.h5"), "--data", data(), "--answers", "5", "--out",
                    path("adapted.h5")}));
  }
  static void TearDownTestSuite() {
    if (!::testing::UnitTest::GetInstance()->Failed()) fs::remove_all(dir_);
  }
  static std::string path(const std::string& name) { return dir_ + "/" + name; }
  static std::string data() { return path("data.h5"); }
  static void score(int np, const std::vector<std::string>& extra, const std::string& out) {
    std::vector<std::string> a = {"score", "--model", path("emb.h5"), "--responses",
                                  data(),  "--out",   path(out)};
    a.insert(a.end(), extra.begin(), extra.end());
    const RunResult r = run_pref(np, a);
    ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
  }

  // u . (W^T e_r) for the given weights (rows x J), computed here.
  static std::vector<double> reference(const std::vector<double>& U) {
    H5Id m = h5_open(path("emb.h5")), d = h5_open(data());
    const auto W = h5_read<double>(m, "/embedding_head");
    const auto E = h5_read<float>(d, "/responses/embedding");
    const std::size_t R = E.size() / kD, n = U.size() / kJ;
    std::vector<double> out(n * R);
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t r = 0; r < R; ++r) {
        double s = 0;
        for (int j = 0; j < kJ; ++j) {
          double phi = 0;
          for (int k = 0; k < kD; ++k) phi += W[k * kJ + j] * E[r * kD + k];
          s += U[i * kJ + j] * phi;
        }
        out[i * R + r] = s;
      }
    return out;
  }
  static std::string dir_;
};
std::string ScoreCli::dir_;

TEST_F(ScoreCli, FittedUsersScoresAndBestOfNAgainstTheFiles) {
  score(1, {}, "s1.h5");
  score(4, {}, "s4.h5");
  score(1, {"--best-of-N"}, "b1.h5");
  score(4, {"--best-of-N"}, "b4.h5");
  score(1, {"--users", "50:60"}, "range.h5");
  H5Id m = h5_open(path("emb.h5"));
  const auto U = h5_read<double>(m, "/user_factors");
  const std::vector<double> ref = reference(U);
  H5Id s1 = h5_open(path("s1.h5")), s4 = h5_open(path("s4.h5"));
  EXPECT_EQ(h5_dims(s1, "/scores"), (std::vector<hsize_t>{200, 80}));
  const auto a = h5_read<float>(s1, "/scores"), b = h5_read<float>(s4, "/scores");
  ASSERT_EQ(a.size(), ref.size());
  double scale = 0;
  for (std::size_t k = 0; k < a.size(); ++k) {
    EXPECT_NEAR(a[k], ref[k], 1e-5 * (1 + std::abs(ref[k]))) << k;
    EXPECT_NEAR(a[k], b[k], 1e-5 * (1 + std::abs(ref[k]))) << "1 vs 4 ranks, " << k;
    scale = std::max(scale, std::abs(ref[k]));
  }
  EXPECT_GT(scale, 0.5);
  // Best of each prompt's 4 responses.
  H5Id b1 = h5_open(path("b1.h5")), b4 = h5_open(path("b4.h5"));
  EXPECT_EQ(h5_dims(b1, "/best"), (std::vector<hsize_t>{200, 20}));
  const auto best = h5_read<std::uint32_t>(b1, "/best");
  EXPECT_EQ(best, h5_read<std::uint32_t>(b4, "/best"));
  const auto best_score = h5_read<float>(b1, "/best_score");
  int differs = 0;
  for (int i = 0; i < 200; ++i)
    for (int q = 0; q < 20; ++q) {
      int arg = q * kN;
      for (int r = q * kN; r < (q + 1) * kN; ++r)
        if (ref[i * 80 + r] > ref[i * 80 + arg]) arg = r;
      EXPECT_EQ(best[i * 20 + q], static_cast<std::uint32_t>(arg))
          << "user " << i << " prompt " << q;
      EXPECT_NEAR(best_score[i * 20 + q], ref[i * 80 + arg],
                  1e-5 * (1 + std::abs(ref[i * 80 + arg])));
      differs += best[i * 20 + q] != best[q];  // users disagree with user 0
    }
  EXPECT_GT(differs, 500);  // personalized: not one choice for everyone
  H5Id rg = h5_open(path("range.h5"));
  const auto part = h5_read<float>(rg, "/scores");
  ASSERT_EQ(part.size(), 10u * 80u);
  for (std::size_t k = 0; k < part.size(); ++k) EXPECT_EQ(part[k], a[50 * 80 + k]);
}

TEST_F(ScoreCli, AdaptedUsers) {
  score(2, {"--adapted", path("adapted.h5"), "--best-of-N"}, "adapted_best.h5");
  score(1, {"--adapted", path("adapted.h5")}, "adapted_scores.h5");
  H5Id a = h5_open(path("adapted.h5"));
  const auto U = h5_read<double>(a, "/weights");
  ASSERT_EQ(U.size(), 10u * kJ);
  const std::vector<double> ref = reference(U);
  H5Id s = h5_open(path("adapted_scores.h5"));
  const auto got = h5_read<float>(s, "/scores");
  ASSERT_EQ(got.size(), ref.size());
  for (std::size_t k = 0; k < got.size(); ++k)
    EXPECT_NEAR(got[k], ref[k], 1e-5 * (1 + std::abs(ref[k])));
  H5Id b = h5_open(path("adapted_best.h5"));
  EXPECT_EQ(h5_dims(b, "/best"), (std::vector<hsize_t>{10, 20}));
}

TEST_F(ScoreCli, WhatCannotBeScored) {
  expect_usage_error(
      {"score", "--model", path("cmp.h5"), "--responses", data(), "--out", path("bad.h5")},
      {path("cmp.h5"), "--items comparisons", "--model"});
  expect_usage_error({"score", "--model", path("emb.h5"), "--responses", data(), "--users",
                      "150:300", "--out", path("bad.h5")},
                     {"--users", "150:300", "[0, 200)"});
  expect_usage_error({"score", "--model", path("emb.h5"), "--responses", data(), "--users", "1:2",
                      "--adapted", path("adapted.h5"), "--out", path("bad.h5")},
                     {"--users", "--adapted"});
  // Embeddings of another dimension.
  const RunResult g =
      run_pref(1, {"generate", "--users", "20", "--comparisons", "12", "--answers-per-user", "5",
                   "--responses-per-prompt", "3", "--embedding-dim", "5", "--out", path("d5.h5")});
  ASSERT_EQ(g.exit_code, 0) << g.err;
  expect_usage_error(
      {"score", "--model", path("emb.h5"), "--responses", path("d5.h5"), "--out", path("bad.h5")},
      {path("d5.h5"), "dimension 5", "takes 6"});
  EXPECT_FALSE(fs::exists(path("bad.h5")));
}

}  // namespace
