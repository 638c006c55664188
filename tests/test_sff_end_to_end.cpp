// Bring your own data, end to end (issue 25): a planted population written in
// summarize-from-feedback's layout by jobs/sff_population.py (400 workers, 3000 posts x 4
// summaries, 50 labels per worker, 16-d embeddings, a few pairs labelled twice), imported with its
// embeddings, fitted with `fit --items embeddings` and the defaults, evaluated on the test split
// (valid2: posts no training label mentions) against the true rewards' AUC, and scored; and a fit
// whose labels are coin flips, which must say it ends at chance.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/test_util.hpp"

namespace fs = std::filesystem;
using namespace pref::test;

namespace {

const std::string kSource = PREF_SOURCE_DIR;

double attr_double(hid_t f, const char* name) {
  double v = 0;
  H5Id a(h5check(H5Aopen(f, name, H5P_DEFAULT), name), H5Aclose);
  h5check(H5Aread(a, H5T_NATIVE_DOUBLE, &v), name);
  return v;
}

}  // namespace

TEST(SffEndToEnd, DefaultsReachThreeQuartersOfTheTrueLift) {
  // The generator needs Debian's python3 with numpy and h5py (jobs/setup.sh installs them).
  const RunResult py = run_command({"/usr/bin/python3", "-c", "import numpy, h5py"});
  if (py.exit_code != 0) GTEST_SKIP() << "no /usr/bin/python3 with numpy and h5py: " << py.err;
  const std::string dir = fresh_dir("sff-end-to-end");
  const RunResult gen =
      run_command({"/usr/bin/python3", kSource + "/jobs/sff_population.py", "--out", dir}, 300);
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  const nlohmann::json truth = nlohmann::json::parse(read_bytes(dir + "/truth.json"));

  // Import at 1 and 4 ranks: the same file.
  for (auto [np, out] : {std::pair<int, std::string>{1, "data.h5"}, {4, "data4.h5"}}) {
    const RunResult r = run_pref(
        np, {"import", "--layout", "summarize-from-feedback", "--input", dir + "/comparisons",
             "--embeddings", dir + "/embeddings.h5", "--out", dir + "/" + out});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(contains(r.err, std::to_string(truth["unused_embeddings"].get<int>()) +
                                    " rows of " + dir + "/embeddings.h5 belong to no response"))
        << r.err;
  }
  EXPECT_EQ(h5_differences(dir + "/data.h5", dir + "/data4.h5"), std::vector<std::string>{});
  {
    // The labels the generator counted per split (pairs labelled twice by a worker merged).
    H5Id f = h5_open(dir + "/data.h5");
    for (auto [split, group] : {std::pair<const char*, const char*>{"train", "/labels/value"},
                                {"validation", "/validation/value"},
                                {"test", "/test/value"}})
      EXPECT_EQ(h5_dims(f, group)[0], truth[split]["labels"].get<hsize_t>()) << split;
    EXPECT_EQ(h5_dims(f, "/responses/embedding"),
              (std::vector<hsize_t>{truth["responses_used"].get<hsize_t>(), 16}));
  }

  // Fit with the defaults (the rank is the only choice), at 2 ranks.
  const RunResult fit = run_pref(2,
                                 {"fit", "--data", dir + "/data.h5", "--items", "embeddings",
                                  "--rank", "4", "--out", dir + "/model.h5"},
                                 600);
  ASSERT_EQ(fit.exit_code, 0) << fit.err;
  EXPECT_FALSE(contains(fit.err, "ends at chance")) << fit.err;
  {
    H5Id f = h5_open(dir + "/model.h5");
    const double users = 400;
    H5Id d = h5_open(dir + "/data.h5");
    std::uint64_t comparisons = 0;
    H5Id a(H5Aopen(d, "comparisons", H5P_DEFAULT), H5Aclose);
    H5Aread(a, H5T_NATIVE_UINT64, &comparisons);
    // The item models' default ridge: users / comparisons on each z_p.
    EXPECT_DOUBLE_EQ(attr_double(f, "mu_z"), users / static_cast<double>(comparisons));
    EXPECT_EQ(attr_double(f, "at_chance"), 0.0);
  }
  {
    // The free comparisons' ridge of 3 on each z_p collapses the factors at about one label per
    // comparison: the fit says so, though the calibration keeps the predictions ranking.
    const RunResult strong =
        run_pref(2, {"fit", "--data", dir + "/data.h5", "--items", "embeddings", "--rank", "4",
                     "--mu-z", "3", "--out", dir + "/model3.h5"});
    ASSERT_EQ(strong.exit_code, 0) << strong.err;
    EXPECT_TRUE(contains(strong.err, "pref: warning: the factors collapsed towards 0"))
        << strong.err;
    H5Id f = h5_open(dir + "/model3.h5");
    EXPECT_DOUBLE_EQ(attr_double(f, "mu_z"), 3.0);
  }
  {
    // A requeued --resume of the finished fit finds its model (the default mu_z is resolved
    // before the options are compared with the model's).
    const RunResult again =
        run_pref(1, {"fit", "--data", dir + "/data.h5", "--items", "embeddings", "--rank", "4",
                     "--checkpoint-dir", dir + "/ckpt", "--resume", "--out", dir + "/model.h5"});
    ASSERT_EQ(again.exit_code, 0) << again.err;
    EXPECT_TRUE(contains(again.err, "already holds the finished fit")) << again.err;
  }
  const RunResult ev = run_pref(2, {"evaluate", "--model", dir + "/model.h5", "--data",
                                    dir + "/data.h5", "--split", "test", "--json"});
  ASSERT_EQ(ev.exit_code, 0) << ev.err;
  const double auc = nlohmann::json::parse(ev.out)["auc"].get<double>();
  const double true_auc = truth["test"]["auc"].get<double>();
  std::printf("test AUC %.4f, the true rewards' %.4f: %.1f%% of the lift over 0.5\n", auc, true_auc,
              100 * (auc - 0.5) / (true_auc - 0.5));
  EXPECT_GE(auc - 0.5, 0.75 * (true_auc - 0.5)) << "AUC " << auc << ", truth " << true_auc;

  // Personalized rewards and each worker's best summary of each post.
  const RunResult sc = run_pref(2, {"score", "--model", dir + "/model.h5", "--responses",
                                    dir + "/data.h5", "--best-of-N", "--out", dir + "/best.h5"});
  ASSERT_EQ(sc.exit_code, 0) << sc.err;
  H5Id b = h5_open(dir + "/best.h5");
  H5Id d = h5_open(dir + "/data.h5");
  std::uint64_t prompts = 0;
  {
    H5Id g(H5Gopen2(d, "/responses", H5P_DEFAULT), H5Gclose);
    H5Id a(H5Aopen(g, "prompts", H5P_DEFAULT), H5Aclose);
    H5Aread(a, H5T_NATIVE_UINT64, &prompts);
  }
  EXPECT_EQ(h5_dims(b, "/best"), (std::vector<hsize_t>{400, prompts}));
}

TEST(SffEndToEnd, AFitOfCoinFlipsEndsAtChanceLoudly) {
  const std::string dir = fresh_dir("fit-at-chance");
  // Labels with no signal: the Bradley-Terry probability at an enormous temperature is 1/2.
  const RunResult gen =
      run_pref(1, {"generate", "--model", "attributes", "--users", "400", "--comparisons", "300",
                   "--answers-per-user", "30", "--temperature", "1e9", "--out", dir + "/coin.h5"});
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  const RunResult fit = run_pref(2, {"fit", "--data", dir + "/coin.h5", "--rank", "4",
                                     "--max-sweeps", "20", "--out", dir + "/model.h5"});
  ASSERT_EQ(fit.exit_code, 0) << fit.err;
  EXPECT_TRUE(contains(fit.err, "pref: warning: the fit ends at chance: ")) << fit.err;
  EXPECT_TRUE(contains(fit.err, "ended at chance after")) << fit.err;
  EXPECT_FALSE(contains(fit.err, "converged after")) << fit.err;
  H5Id f = h5_open(dir + "/model.h5");
  EXPECT_EQ(attr_double(f, "at_chance"), 1.0);
}
