// `pref fit --items responses|embeddings` end to end (issue 14): on a generated population
// with responses, embeddings and held-out prompts, the head generalizes to comparisons of
// responses no training label mentions (test split) where free comparisons cannot; fits at 1
// and 2 ranks agree; the model file holds the item parameters; and the combinations not
// supported, or files without what the option needs, end with exit code 2 and one line.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>

#include "tests/cli_util.hpp"

using namespace pref::test;
namespace fs = std::filesystem;

namespace {

class ItemsCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    dir_ = fresh_dir("test_items_cli");
    // 600 comparisons of 4 responses (6 pairs) per prompt: 100 prompts, the last 20 held out
    // (their 120 comparisons are only in the test split).
    const RunResult r = run_pref(
        2, {"generate", "--users", "1500", "--comparisons", "600", "--answers-per-user", "40",
            "--responses-per-prompt", "4", "--heldout-prompts", "20", "--embedding-dim", "12",
            "--embedding-noise", "0.05", "--seed", "21", "--out", data()});
    ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
    const RunResult v1 = run_pref(1, {"generate", "--users", "100", "--comparisons", "40",
                                      "--answers-per-user", "10", "--out", path("v1.h5")});
    ASSERT_EQ(v1.exit_code, 0) << v1.err;
    const RunResult noemb =
        run_pref(1, {"generate", "--users", "100", "--comparisons", "40", "--answers-per-user",
                     "10", "--responses-per-prompt", "3", "--out", path("noemb.h5")});
    ASSERT_EQ(noemb.exit_code, 0) << noemb.err;
  }
  static void TearDownTestSuite() {
    if (!::testing::UnitTest::GetInstance()->Failed()) fs::remove_all(dir_);
  }
  static std::string path(const std::string& name) { return dir_ + "/" + name; }
  static std::string data() { return path("data.h5"); }

  static std::string fit(int ranks, const std::string& name, const std::string& items,
                         const std::vector<std::string>& extra = {}) {
    std::vector<std::string> a = {"fit", "--data",       data(),    "--rank", "7", "--items",
                                  items, "--max-sweeps", "12",      "--tol",  "0", "--seed",
                                  "4",   "--out",        path(name)};
    a.insert(a.end(), extra.begin(), extra.end());
    const RunResult r = run_pref(ranks, a);
    EXPECT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
    return path(name);
  }
  static double auc(const std::string& model, const std::string& split) {
    const RunResult r =
        run_pref(1, {"evaluate", "--model", model, "--data", data(), "--split", split, "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
    return nlohmann::json::parse(r.out)["auc"].get<double>();
  }

  static std::string dir_;
};
std::string ItemsCli::dir_;

TEST_F(ItemsCli, HeadGeneralizesToHeldOutPromptsAndRankCountsAgree) {
  const std::string e1 = fit(1, "emb1.h5", "embeddings");
  const std::string e2 = fit(2, "emb2.h5", "embeddings");
  // The same run again: the same bytes (the model file has no timings).
  EXPECT_EQ(read_bytes(fit(2, "emb2_again.h5", "embeddings")), read_bytes(e2));
  const std::string c1 = fit(1, "cmp1.h5", "comparisons");
  {
    H5Id a = h5_open(e1), b = h5_open(e2);
    EXPECT_EQ(h5_dims(a, "/embedding_head"), (std::vector<hsize_t>{12, 7}));
    const auto za = h5_read<double>(a, "/comparison_factors");
    const auto zb = h5_read<double>(b, "/comparison_factors");
    ASSERT_EQ(za.size(), zb.size());
    double d = 0, scale = 0;
    for (std::size_t k = 0; k < za.size(); ++k) {
      d = std::max(d, std::abs(za[k] - zb[k]));
      scale = std::max(scale, std::abs(za[k]));
    }
    EXPECT_LT(d, 1e-6 * scale) << "1 and 2 ranks";
    EXPECT_GT(scale, 0.1);
    // Z is the head applied to the embedding differences.
    H5Id dat = h5_open(data());
    const auto W = h5_read<double>(a, "/embedding_head");
    const auto E = h5_read<float>(dat, "/responses/embedding");
    const auto first = h5_read<std::uint32_t>(dat, "/comparisons/first");
    const auto second = h5_read<std::uint32_t>(dat, "/comparisons/second");
    for (std::size_t p = 0; p < first.size(); p += 37)
      for (int j = 0; j < 7; ++j) {
        double z = 0;
        for (int k = 0; k < 12; ++k)
          z += W[k * 7 + j] * (static_cast<double>(E[first[p] * 12 + k]) - E[second[p] * 12 + k]);
        EXPECT_NEAR(za[p * 7 + j], z, 1e-9 * (1 + std::abs(z))) << p << "," << j;
      }
  }
  // Held-out prompts (test split): the head scores responses nobody labelled; free comparisons
  // have nothing there (z_p = 0: AUC 0.5). In sample (validation), both fit.
  const double emb_test = auc(e1, "test"), cmp_test = auc(c1, "test");
  const double emb_val = auc(e1, "validation"), cmp_val = auc(c1, "validation");
  std::printf(
      "test AUC: embeddings %.4f, comparisons %.4f; validation AUC: embeddings %.4f, "
      "comparisons %.4f\n",
      emb_test, cmp_test, emb_val, cmp_val);
  // (The true model's AUC is about 0.81 on both splits of this population.)
  EXPECT_GT(emb_test, 0.68);
  EXPECT_NEAR(cmp_test, 0.5, 0.02);
  EXPECT_GT(emb_test, cmp_val);  // out of sample, better than free comparisons in sample
  EXPECT_GT(emb_test, emb_val - 0.03);
}

TEST_F(ItemsCli, ResponsesModelWritesResponseFactors) {
  const std::string r1 = fit(1, "resp1.h5", "responses");
  H5Id f = h5_open(r1);
  // 100 prompts x 4 responses.
  EXPECT_EQ(h5_dims(f, "/response_factors"), (std::vector<hsize_t>{400, 7}));
  const auto phi = h5_read<double>(f, "/response_factors");
  const auto z = h5_read<double>(f, "/comparison_factors");
  H5Id dat = h5_open(data());
  const auto first = h5_read<std::uint32_t>(dat, "/comparisons/first");
  const auto second = h5_read<std::uint32_t>(dat, "/comparisons/second");
  for (std::size_t p = 0; p < first.size(); ++p)
    for (int j = 0; j < 7; ++j)
      ASSERT_NEAR(z[p * 7 + j], phi[first[p] * 7 + j] - phi[second[p] * 7 + j], 1e-9) << p;
  const double val = auc(r1, "validation");
  EXPECT_GT(val, 0.65);
}

TEST_F(ItemsCli, UnsupportedCombinationsAndMissingStructure) {
  const std::vector<std::string> base = {"fit", "--rank", "3",           "--max-sweeps",
                                         "2",   "--out",  path("bad.h5")};
  auto with = [&](std::vector<std::string> extra) {
    auto a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  expect_usage_error(with({"--data", path("v1.h5"), "--items", "responses"}),
                     {"--items responses", path("v1.h5"), "no response structure"});
  expect_usage_error(with({"--data", path("noemb.h5"), "--items", "embeddings"}),
                     {"--items embeddings", path("noemb.h5"), "/responses/embedding"});
  expect_usage_error(with({"--data", data(), "--items", "embeddings", "--mu-w", "0"}),
                     {"--mu-w", "must be > 0"});
  expect_usage_error(with({"--data", data(), "--items", "responses", "--residual"}),
                     {"--residual", "needs --items embeddings", "--items responses"});
  expect_usage_error(with({"--data", data(), "--residual"}),
                     {"--residual", "needs --items embeddings", "--items comparisons"});
  expect_usage_error(
      with({"--data", data(), "--items", "embeddings", "--residual", "--mu-residual", "-1"}),
      {"--mu-residual", "must be > 0"});  // one bound for -1 and for 0 (issue 22)
  expect_usage_error(
      with({"--data", data(), "--items", "embeddings", "--residual", "--mu-residual", "0"}),
      {"--mu-residual", "must be > 0"});
  expect_usage_error(with({"--data", data(), "--items", "embeddings", "--mu-residual", "3"}),
                     {"--mu-residual", "needs --residual"});
  expect_usage_error(with({"--data", data(), "--items", "responses", "--exchange", "reduce"}),
                     {"--exchange reduce", "--items responses"});
  expect_usage_error(with({"--data", data(), "--items", "responses", "--extrapolate"}),
                     {"--extrapolate", "--items responses"});
  EXPECT_FALSE(fs::exists(path("bad.h5")));
}

// --residual: phi_r = W^T e_r + d_r. The model file holds the residuals (/embedding_residual,
// responses x J), Z is the head's plus the residuals' differences, 1 and 2 ranks agree; `pref
// score --residual` adds them for the fit's responses, and without it scores the head alone.
TEST_F(ItemsCli, ResidualFitWritesResidualsAndScoreUsesThem) {
  const std::vector<std::string> res = {"--residual", "--mu-residual", "3"};
  const std::string m1 = fit(1, "res1.h5", "embeddings", res);
  const std::string m2 = fit(2, "res2.h5", "embeddings", res);
  H5Id a = h5_open(m1), b = h5_open(m2), dat = h5_open(data());
  EXPECT_EQ(h5_dims(a, "/embedding_residual"), (std::vector<hsize_t>{400, 7}));
  const auto W = h5_read<double>(a, "/embedding_head");
  const auto D = h5_read<double>(a, "/embedding_residual");
  const auto D2 = h5_read<double>(b, "/embedding_residual");
  const auto z = h5_read<double>(a, "/comparison_factors");
  const auto E = h5_read<float>(dat, "/responses/embedding");
  const auto first = h5_read<std::uint32_t>(dat, "/comparisons/first");
  const auto second = h5_read<std::uint32_t>(dat, "/comparisons/second");
  double dmax = 0, ddiff = 0;
  for (std::size_t k = 0; k < D.size(); ++k) {
    dmax = std::max(dmax, std::abs(D[k]));
    ddiff = std::max(ddiff, std::abs(D[k] - D2[k]));
  }
  EXPECT_GT(dmax, 1e-3);  // the residuals moved
  EXPECT_LT(ddiff, 1e-6 * dmax) << "1 and 2 ranks";
  auto phi = [&](std::size_t r, int j) {
    double s = 0;
    for (int k = 0; k < 12; ++k) s += W[k * 7 + j] * E[r * 12 + k];
    return s;
  };
  for (std::size_t p = 0; p < first.size(); p += 29)
    for (int j = 0; j < 7; ++j) {
      const double ref =
          phi(first[p], j) + D[first[p] * 7 + j] - phi(second[p], j) - D[second[p] * 7 + j];
      EXPECT_NEAR(z[p * 7 + j], ref, 1e-9 * (1 + std::abs(ref))) << p << "," << j;
    }
  // Held-out prompts' responses are in no training comparison: their residuals stay 0 (the
  // ridge alone), so there the model is the head's.
  const auto prompt = h5_read<std::uint32_t>(dat, "/responses/prompt");
  for (std::size_t r = 0; r < prompt.size(); ++r) {
    if (prompt[r] < 80) continue;
    for (int j = 0; j < 7; ++j) EXPECT_EQ(D[r * 7 + j], 0.0) << r;
  }
  std::printf("residual fit: validation AUC %.4f, test AUC %.4f\n", auc(m1, "validation"),
              auc(m1, "test"));
  // Scores: with --residual u_i . (W^T e_r + d_r), without it u_i . W^T e_r.
  const auto U = h5_read<double>(a, "/user_factors");
  for (const bool with : {true, false}) {
    for (const int np : {1, 3}) {
      std::vector<std::string> args = {
          "score",           "--model",     m1,        "--responses", data(), "--out",
          path("scores.h5"), "--overwrite", "--users", "0:20"};
      if (with) args.push_back("--residual");
      const RunResult r = run_pref(np, args);
      ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
      H5Id s = h5_open(path("scores.h5"));
      const auto S = h5_read<float>(s, "/scores");
      ASSERT_EQ(S.size(), 20u * 400u);
      for (std::size_t i = 0; i < 20; ++i)
        for (std::size_t rr = 0; rr < 400; rr += 7) {
          double ref = 0;
          for (int j = 0; j < 7; ++j)
            ref += U[i * 7 + j] * (phi(rr, j) + (with ? D[rr * 7 + j] : 0.0));
          EXPECT_NEAR(S[i * 400 + rr], ref, 1e-5 * (1 + std::abs(ref))) << i << "," << rr;
        }
    }
  }
  // --residual on a model without residuals, or a responses file with fewer responses.
  expect_usage_error({"score", "--model", fit(1, "nores.h5", "embeddings"), "--responses", data(),
                      "--residual", "--out", path("bad_scores.h5")},
                     {"--residual", "no /embedding_residual"});
}

}  // namespace
