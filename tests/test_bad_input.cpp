// Bad input and bad usage end a run with exit code 2 and one line on standard error naming the
// file, the dataset and the row or value, printed once, under 1 and 4 ranks, without hanging.
// The bad files are made here with the HDF5 C API (serially), or by generating a good file with
// pref and damaging it.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <future>
#include <limits>

#include "tests/test_util.hpp"

using namespace pref::test;
namespace fs = std::filesystem;

namespace {

constexpr int kRankCounts[] = {1, 4};
constexpr std::uint64_t kUsers = 10, kComparisons = 8, kRows = 40;

class BadInput : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    dir_ = fresh_dir("test_bad_input");
  }
  static void TearDownTestSuite() {
    if (!::testing::UnitTest::GetInstance()->Failed()) fs::remove_all(dir_);
  }
  static std::string path(const std::string& name) { return dir_ + "/" + name; }

  // The columns of a valid file: row i is user i % 10, comparison i / 10 (distinct pairs), so
  // that rows 0-9, 10-19, 20-29, 30-39 fall on ranks 0, 1, 2, 3 of a 4-rank run.
  static std::vector<std::int64_t> users() {
    std::vector<std::int64_t> v(kRows);
    for (std::uint64_t i = 0; i < kRows; ++i) v[i] = static_cast<std::int64_t>(i % kUsers);
    return v;
  }
  static std::vector<std::int64_t> comparisons() {
    std::vector<std::int64_t> v(kRows);
    for (std::uint64_t i = 0; i < kRows; ++i) v[i] = static_cast<std::int64_t>(i / kUsers);
    return v;
  }
  static std::vector<double> values() {
    std::vector<double> v(kRows);
    for (std::uint64_t i = 0; i < kRows; ++i) v[i] = 0.5 * static_cast<double>(i % 3);
    return v;
  }

  // Writes a label file: the root attributes, then whatever `body` writes.
  static std::string make(const std::string& name, const std::function<void(hid_t)>& body,
                          std::uint64_t n_users = kUsers,
                          std::uint64_t n_comparisons = kComparisons) {
    const std::string p = path(name);
    H5Id f = h5_create(p);
    h5_write_string_attr(f, "/", "format", "pref-labels");
    h5_write_attr<std::uint32_t>(f, "/", "format_version", 1);
    h5_write_attr<std::uint64_t>(f, "/", "users", n_users);
    h5_write_attr<std::uint64_t>(f, "/", "comparisons", n_comparisons);
    body(f);
    return p;
  }
  // A file whose columns are the given ones (ids stored as uint32 or int32, values as float64).
  static std::string make_columns(const std::string& name, const std::vector<std::int64_t>& u,
                                  const std::vector<std::int64_t>& c, const std::vector<double>& v,
                                  bool signed_ids = false) {
    return make(name, [&](hid_t f) {
      if (signed_ids) {
        h5_write(f, "/labels/user", std::vector<std::int32_t>(u.begin(), u.end()));
        h5_write(f, "/labels/comparison", std::vector<std::int32_t>(c.begin(), c.end()));
      } else {
        h5_write(f, "/labels/user", std::vector<std::uint32_t>(u.begin(), u.end()));
        h5_write(f, "/labels/comparison", std::vector<std::uint32_t>(c.begin(), c.end()));
      }
      h5_write(f, "/labels/value", v);
    });
  }

  // Runs pref under 1 and 4 ranks and expects exit code 2 and exactly one line on standard error
  // (besides progress logs): "pref: error: ..." holding every needle.
  static void expect_input_error(const std::vector<std::string>& args,
                                 const std::vector<std::string>& needles) {
    // Both rank counts at once (most of a run's time is mpirun starting and ending).
    std::vector<std::future<RunResult>> runs;
    for (int np : kRankCounts)
      runs.push_back(std::async(std::launch::async, run_pref, np, args, 120));
    for (auto& run : runs) {
      const RunResult r = run.get();
      SCOPED_TRACE(r.command);
      ASSERT_FALSE(r.timed_out) << "hung; stderr:\n" << r.err;
      EXPECT_EQ(r.exit_code, 2) << "stderr:\n" << r.err;
      const auto lines = error_lines(r);
      ASSERT_EQ(lines.size(), 1u) << "stderr:\n" << r.err;
      EXPECT_EQ(lines[0].rfind("pref: error: ", 0), 0u) << lines[0];
      for (const auto& n : needles)
        EXPECT_TRUE(contains(lines[0], n)) << "no '" << n << "' in: " << lines[0];
      EXPECT_TRUE(r.out.empty()) << "stdout:\n" << r.out;
    }
  }
  static void expect_inspect_error(const std::string& file, std::vector<std::string> needles,
                                   std::vector<std::string> extra_args = {}) {
    needles.insert(needles.begin(), file);
    std::vector<std::string> args = {"inspect", file};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    expect_input_error(args, needles);
  }
  static RunResult expect_success(const std::vector<std::string>& args, int np = 1) {
    RunResult r = run_pref(np, args);
    EXPECT_EQ(r.exit_code, 0) << r.command << "\nstderr:\n" << r.err;
    return r;
  }
  static std::vector<std::string> partial_files() {
    std::vector<std::string> out;
    for (auto& e : fs::recursive_directory_iterator(dir_))
      if (contains(e.path().filename().string(), ".partial.")) out.push_back(e.path().string());
    return out;
  }

  // A version-2 file: the valid columns, 4 prompts x 3 responses (response r of prompt r / 3),
  // comparison p pairs responses 3 (p % 4) + (p / 4) and 3 (p % 4) + 2, and an embedding of
  // 12 x 2 values; `damage` changes the tables before they are written.
  struct Responses {
    std::uint32_t version = 2;
    std::vector<std::int64_t> prompt, first, second;
    std::vector<float> embedding;
    std::uint64_t embedding_rows = 12;
    bool write_comparisons = true;
  };
  static std::string make_v2(const std::string& name,
                             const std::function<void(Responses&)>& damage = {}) {
    Responses t;
    for (std::int64_t r = 0; r < 12; ++r) t.prompt.push_back(r / 3);
    for (std::int64_t p = 0; p < static_cast<std::int64_t>(kComparisons); ++p) {
      t.first.push_back(3 * (p % 4) + p / 4);
      t.second.push_back(3 * (p % 4) + 2);
    }
    for (int i = 0; i < 24; ++i) t.embedding.push_back(0.25f * static_cast<float>(i % 7) - 0.5f);
    if (damage) damage(t);
    return make(name, [&](hid_t f) {
      H5Adelete(f, "format_version");
      h5_write_attr<std::uint32_t>(f, "/", "format_version", t.version);
      auto u = users();
      auto c = comparisons();
      h5_write(f, "/labels/user", std::vector<std::uint32_t>(u.begin(), u.end()));
      h5_write(f, "/labels/comparison", std::vector<std::uint32_t>(c.begin(), c.end()));
      h5_write(f, "/labels/value", values());
      h5_write(f, "/responses/prompt", t.prompt);
      h5_write_attr<std::uint64_t>(f, "/responses", "responses", 12);
      h5_write_attr<std::uint64_t>(f, "/responses", "prompts", 4);
      if (t.write_comparisons) {
        h5_write(f, "/comparisons/first", t.first);
        h5_write(f, "/comparisons/second", t.second);
      }
      if (!t.embedding.empty())
        h5_write_matrix(f, "/responses/embedding", t.embedding, t.embedding_rows);
    });
  }

  static std::string dir_;
};
std::string BadInput::dir_;

TEST_F(BadInput, ResponseStructureValidFilePasses) {
  const std::string f = make_v2("v2_good.h5");
  for (int np : kRankCounts) {
    RunResult r = expect_success({"inspect", f, "--json"}, np);
    EXPECT_TRUE(contains(r.out, "\"responses\":12")) << r.out;
    EXPECT_TRUE(contains(r.out, "\"prompts\":4")) << r.out;
    EXPECT_TRUE(contains(r.out, "\"embedding_dim\":2")) << r.out;
    EXPECT_TRUE(contains(r.out, "\"format_version\":2")) << r.out;
  }
}

TEST_F(BadInput, ResponseIdOutOfRange) {
  const std::string p = make_v2("v2_response_range.h5", [](Responses& t) {
    t.second[5] = 12;
    t.second[7] = -1;
  });
  expect_inspect_error(p, {"/comparisons/second", "row 5", "response id 12 out of range [0, 12)"});
}

TEST_F(BadInput, ResponsesOfDifferentPrompts) {
  const std::string p = make_v2("v2_prompts.h5", [](Responses& t) { t.second[6] = 11; });
  // Row 6 pairs response 3 * 2 + 1 = 7 of prompt 2 with response 11 of prompt 3.
  expect_inspect_error(p, {"/comparisons", "row 6", "responses 7 (prompt 2) and 11 (prompt 3)",
                           "different prompts"});
}

TEST_F(BadInput, ComparisonOfAResponseWithItself) {
  const std::string p = make_v2("v2_same.h5", [](Responses& t) { t.first[4] = t.second[4]; });
  expect_inspect_error(p, {"/comparisons", "row 4", "both responses are 2"});
}

TEST_F(BadInput, PromptIdOutOfRange) {
  const std::string p = make_v2("v2_prompt_range.h5", [](Responses& t) { t.prompt[7] = 4; });
  expect_inspect_error(p, {"/responses/prompt", "row 7", "prompt id 4 out of range [0, 4)"});
}

TEST_F(BadInput, EmbeddingNotFinite) {
  // 12 rows over 4 ranks: rows 9-11 on rank 3; the smallest bad row is reported.
  const std::string p = make_v2("v2_nan.h5", [](Responses& t) {
    t.embedding[2 * 11 + 0] = std::numeric_limits<float>::infinity();
    t.embedding[2 * 9 + 1] = std::numeric_limits<float>::quiet_NaN();
  });
  expect_inspect_error(p, {"/responses/embedding", "row 9, column 1", "nan", "not finite"});
}

TEST_F(BadInput, EmbeddingOfWrongShape) {
  const std::string rows = make_v2("v2_rows.h5", [](Responses& t) {
    t.embedding.resize(22);
    t.embedding_rows = 11;
  });
  expect_inspect_error(rows, {"/responses/embedding", "11 rows, expected one per response (12)"});
  const std::string flat = make_v2("v2_flat.h5", [](Responses& t) { t.embedding.clear(); });
  {
    H5Id f = h5_open(flat, true);
    h5_write(f, "/responses/embedding", std::vector<float>(12, 1.0f));
  }
  expect_inspect_error(flat, {"/responses/embedding", "expected a 2-D dataset", "1 dimensions"});
  const std::string ints = make_v2("v2_int.h5", [](Responses& t) { t.embedding.clear(); });
  {
    H5Id f = h5_open(ints, true);
    h5_write_matrix(f, "/responses/embedding", std::vector<std::int32_t>(24, 1), 12);
  }
  expect_inspect_error(ints, {"/responses/embedding", "int32", "expected float16, float32"});
}

TEST_F(BadInput, ResponseTablesOfWrongLengthOrMissing) {
  const std::string shorter = make_v2("v2_short.h5", [](Responses& t) { t.first.pop_back(); });
  expect_inspect_error(shorter, {"/comparisons/first", "7 rows, expected 8"});
  const std::string missing =
      make_v2("v2_missing.h5", [](Responses& t) { t.write_comparisons = false; });
  expect_inspect_error(missing, {"/responses", "/comparisons/first"});
}

TEST_F(BadInput, ResponseStructureInVersion1File) {
  const std::string p = make_v2("v2_as_v1.h5", [](Responses& t) { t.version = 1; });
  expect_inspect_error(p, {"/responses", "needs format_version 2", "format_version 1"});
  const std::string v3 = make_v2("v3.h5", [](Responses& t) { t.version = 3; });
  expect_inspect_error(v3, {"format_version 3 is not supported", "reads version 2"});
}

TEST_F(BadInput, GenerateResponseOptions) {
  const std::string out = path("responses_options.h5");
  const std::vector<std::string> base = {
      "generate", "--users", "20", "--comparisons", "12", "--answers-per-user", "5", "--out", out};
  auto with = [&](std::vector<std::string> extra) {
    auto a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  expect_input_error(with({"--model", "lowrank", "--responses-per-prompt", "3"}),
                     {"--responses-per-prompt", "attributes"});
  expect_input_error(with({"--responses-per-prompt", "1"}), {"--responses-per-prompt", "1"});
  expect_input_error(with({"--embedding-dim", "4"}), {"--embedding-dim", "--responses-per-prompt"});
  // 12 comparisons of 3 responses (3 pairs) per prompt: 4 prompts.
  expect_input_error(with({"--responses-per-prompt", "3", "--heldout-prompts", "4"}),
                     {"--heldout-prompts", "4", "none of the 4 prompts"});
  expect_input_error(with({"--responses-per-prompt", "3", "--prompts", "2"}),
                     {"--comparisons", "12", "2 prompts x 3 pairs"});
  expect_input_error(
      with({"--responses-per-prompt", "3", "--embedding-dim", "2", "--embedding-noise", "-1"}),
      {"--embedding-noise", "-1"});
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(BadInput, ValidFilesPass) {
  // The reference files the other cases damage are themselves accepted.
  const std::string f = make_columns("good.h5", users(), comparisons(), values());
  const std::string s = make_columns("good_signed.h5", users(), comparisons(), values(), true);
  for (int np : kRankCounts) {
    RunResult r = expect_success({"inspect", f, "--json"}, np);
    EXPECT_TRUE(contains(r.out, "\"labels\":40")) << r.out;
    EXPECT_TRUE(contains(r.out, "\"users\":10")) << r.out;
    expect_success({"inspect", s}, np);
  }
}

TEST_F(BadInput, MissingFile) {
  expect_inspect_error(path("does_not_exist.h5"), {"no such file"});
}

TEST_F(BadInput, NotHdf5) {
  const std::string p = path("text.h5");
  write_text(p, "user,comparison,value\n0,1,1\n");
  expect_inspect_error(p, {"not an HDF5 file"});
}

TEST_F(BadInput, TruncatedFile) {
  const std::string p = path("truncated.h5");
  expect_success({"generate", "--users", "300", "--comparisons", "100", "--answers-per-user", "20",
                  "--out", p});
  const auto size = fs::file_size(p);
  ASSERT_GT(size, 10000u);
  fs::resize_file(p, size / 2);
  expect_inspect_error(p, {"truncated"});
}

TEST_F(BadInput, MissingDataset) {
  const std::string p = make("no_value.h5", [](hid_t f) {
    h5_write(f, "/labels/user", std::vector<std::uint32_t>(kRows, 0));
    h5_write(f, "/labels/comparison", std::vector<std::uint32_t>(kRows, 0));
  });
  expect_inspect_error(p, {"/labels/value", "missing"});
}

TEST_F(BadInput, FloatUserColumn) {
  const std::string p = make("float_user.h5", [](hid_t f) {
    auto u = users();
    h5_write(f, "/labels/user", std::vector<float>(u.begin(), u.end()));
    auto c = comparisons();
    h5_write(f, "/labels/comparison", std::vector<std::uint32_t>(c.begin(), c.end()));
    h5_write(f, "/labels/value", values());
  });
  expect_inspect_error(p, {"/labels/user", "float32"});
}

TEST_F(BadInput, StringValueColumn) {
  const std::string p = make("string_value.h5", [](hid_t f) {
    auto u = users();
    auto c = comparisons();
    h5_write(f, "/labels/user", std::vector<std::uint32_t>(u.begin(), u.end()));
    h5_write(f, "/labels/comparison", std::vector<std::uint32_t>(c.begin(), c.end()));
    h5_write_strings(f, "/labels/value", std::vector<std::string>(kRows, "1"));
  });
  expect_inspect_error(p, {"/labels/value", "string"});
}

TEST_F(BadInput, ColumnsOfDifferentLengths) {
  auto v = values();
  v.pop_back();
  const std::string p = make_columns("lengths.h5", users(), comparisons(), v);
  expect_inspect_error(p, {"/labels", "different lengths", "40", "39"});
}

TEST_F(BadInput, UserIdOutOfRange) {
  auto u = users();
  u[23] = kUsers;  // the first bad row, on rank 2 of 4
  u[35] = 1000;    // a later one, on rank 3
  const std::string p = make_columns("user_range.h5", u, comparisons(), values());
  expect_inspect_error(p, {"/labels/user", "row 23", "id 10 "});
}

TEST_F(BadInput, ComparisonIdOutOfRange) {
  auto c = comparisons();
  c[17] = kComparisons;
  c[2] = kComparisons + 5;
  const std::string p = make_columns("comparison_range.h5", users(), c, values());
  expect_inspect_error(p, {"/labels/comparison", "row 2", "id 13 "});
}

TEST_F(BadInput, NegativeIdInSignedColumn) {
  auto u = users();
  u[26] = -3;
  u[39] = -1;
  const std::string p = make_columns("negative.h5", u, comparisons(), values(), true);
  expect_inspect_error(p, {"/labels/user", "row 26", "-3"});
}

TEST_F(BadInput, ValueNaN) {
  auto v = values();
  v[14] = std::numeric_limits<double>::quiet_NaN();
  v[30] = 2.0;
  const std::string p = make_columns("nan.h5", users(), comparisons(), v);
  expect_inspect_error(p, {"/labels/value", "row 14", "nan"});
}

TEST_F(BadInput, ValueInfinite) {
  auto v = values();
  v[27] = -std::numeric_limits<double>::infinity();
  const std::string p = make_columns("inf.h5", users(), comparisons(), v);
  expect_inspect_error(p, {"/labels/value", "row 27", "inf"});
}

TEST_F(BadInput, ValueOutsideUnitInterval) {
  auto v = values();
  v[33] = 1.5;
  const std::string p = make_columns("above.h5", users(), comparisons(), v);
  expect_inspect_error(p, {"/labels/value", "row 33", "1.5"});
  v = values();
  v[7] = -0.1;
  v[8] = 1.5;
  const std::string q = make_columns("below.h5", users(), comparisons(), v);
  expect_inspect_error(q, {"/labels/value", "row 7", "-0.1"});
}

TEST_F(BadInput, QuantizedValueAboveDenominator) {
  const std::string p = make("quantized.h5", [](hid_t f) {
    auto u = users();
    auto c = comparisons();
    h5_write(f, "/labels/user", std::vector<std::uint16_t>(u.begin(), u.end()));
    h5_write(f, "/labels/comparison", std::vector<std::uint16_t>(c.begin(), c.end()));
    std::vector<std::uint8_t> q(kRows);
    for (std::uint64_t i = 0; i < kRows; ++i) q[i] = static_cast<std::uint8_t>(100 * (i % 3));
    q[19] = 201;
    q[21] = 255;
    h5_write(f, "/labels/value", q);
    h5_write_attr<std::uint32_t>(f, "/labels/value", "denominator", 200);
  });
  expect_inspect_error(p, {"/labels/value", "row 19", "201"});
}

TEST_F(BadInput, BadRowInValidationSplit) {
  const std::string p = make("validation.h5", [](hid_t f) {
    auto u = users();
    auto c = comparisons();
    h5_write(f, "/labels/user", std::vector<std::uint32_t>(u.begin(), u.end()));
    h5_write(f, "/labels/comparison", std::vector<std::uint32_t>(c.begin(), c.end()));
    h5_write(f, "/labels/value", values());
    h5_write(f, "/validation/user", std::vector<std::uint32_t>{1, 2, 3, 4, 5});
    h5_write(f, "/validation/comparison", std::vector<std::uint32_t>{7, 7, 7, 99, 7});
    h5_write(f, "/validation/value", std::vector<float>{0, 1, 1, 0, 1});
  });
  expect_inspect_error(p, {"/validation/comparison", "row 3", "99"});
}

TEST_F(BadInput, GeneratorGroupWithoutAttributes) {
  // An optional group that inspect summarizes, present but incomplete.
  const std::string p = make("generator.h5", [](hid_t f) {
    auto u = users();
    auto c = comparisons();
    h5_write(f, "/labels/user", std::vector<std::uint32_t>(u.begin(), u.end()));
    h5_write(f, "/labels/comparison", std::vector<std::uint32_t>(c.begin(), c.end()));
    h5_write(f, "/labels/value", values());
    H5Id g(H5Gcreate2(f, "/generator", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
    h5_write_attr<std::uint64_t>(f, "/generator", "seed", 5);
  });
  expect_inspect_error(p, {"/generator", "model"});
}

TEST_F(BadInput, NewUsersGroupWithoutCount) {
  const std::string p = make("new_users.h5", [](hid_t f) {
    auto u = users();
    auto c = comparisons();
    h5_write(f, "/labels/user", std::vector<std::uint32_t>(u.begin(), u.end()));
    h5_write(f, "/labels/comparison", std::vector<std::uint32_t>(c.begin(), c.end()));
    h5_write(f, "/labels/value", values());
    h5_write(f, "/new_users/user", std::vector<std::uint32_t>{0, 1});
    h5_write(f, "/new_users/comparison", std::vector<std::uint32_t>{0, 1});
    h5_write(f, "/new_users/value", std::vector<float>{0, 1});
  });
  expect_inspect_error(p, {"/new_users", "users"});
}

TEST_F(BadInput, DuplicateLabels) {
  auto u = users();
  auto c = comparisons();
  // Rows 12, 31 and 38 all label (user 2, comparison 1); rows 31 and 38 are on rank 3 of 4.
  u[31] = u[38] = u[12];
  c[31] = c[38] = c[12];
  const std::string p = make_columns("duplicates.h5", u, c, values());
  expect_inspect_error(p, {"/labels", "duplicate", "user 2", "comparison 1", "rows 12 and 31"});
  for (int np : kRankCounts) {
    RunResult r = expect_success({"inspect", p, "--duplicates", "mean", "--json"}, np);
    EXPECT_TRUE(contains(r.out, "\"labels\":38")) << r.out;  // 40 rows, 3 of them one label
  }
}

TEST_F(BadInput, ZeroLabels) {
  const std::string p = make_columns("empty.h5", {}, {}, {});
  expect_inspect_error(p, {"/labels", "no labels"});
}

TEST_F(BadInput, OutputUnderMissingDirectory) {
  const std::string out = path("no_such_dir/out.h5");
  expect_input_error(
      {"generate", "--users", "20", "--comparisons", "10", "--answers-per-user", "5", "--out", out},
      {out, "does not exist"});
  EXPECT_FALSE(fs::exists(path("no_such_dir")));
}

TEST_F(BadInput, OutputUnderRegularFile) {
  write_text(path("plain_file"), "not a directory\n");
  const std::string out = path("plain_file/out.h5");
  expect_input_error(
      {"generate", "--users", "20", "--comparisons", "10", "--answers-per-user", "5", "--out", out},
      {out, "not a directory"});
  EXPECT_EQ(read_bytes(path("plain_file")), "not a directory\n");
}

TEST_F(BadInput, ExistingOutput) {
  const std::string out = path("existing.h5");
  const std::vector<std::string> base = {
      "generate", "--users", "30", "--comparisons", "20", "--answers-per-user", "10", "--out", out};
  expect_success(base);
  const std::string before = read_bytes(out);
  auto with_seed = base;
  with_seed.insert(with_seed.end(), {"--seed", "99"});
  expect_input_error(with_seed, {out, "already exists", "--overwrite"});
  EXPECT_EQ(read_bytes(out), before) << "the existing file was modified";
  for (int np : kRankCounts) {
    auto args = with_seed;
    args.push_back("--overwrite");
    expect_success(args, np);
    EXPECT_NE(read_bytes(out), before) << "not replaced with -np " << np;
    RunResult r = expect_success({"inspect", out, "--json"});
    EXPECT_TRUE(contains(r.out, "\"seed\":99")) << r.out;
  }
  EXPECT_TRUE(partial_files().empty());
}

TEST_F(BadInput, FailedGenerateLeavesNoPartialFile) {
  // Zipf popularity so steep that 30 distinct comparisons cannot be drawn: fails while writing.
  const std::string out = path("failed.h5");
  const std::vector<std::string> args = {
      "generate", "--users",      "20",   "--comparisons",   "40", "--answers-per-user",
      "30",       "--popularity", "zipf", "--zipf-exponent", "60", "--out",
      out};
  expect_input_error(args, {"--zipf-exponent"});
  EXPECT_FALSE(fs::exists(out));
  EXPECT_TRUE(partial_files().empty()) << partial_files().front();
  // An existing file stays as it was when its replacement fails.
  const std::string kept = path("kept.h5");
  expect_success({"generate", "--users", "20", "--comparisons", "40", "--answers-per-user", "10",
                  "--out", kept});
  const std::string before = read_bytes(kept);
  auto over = args;
  over.back() = kept;
  over.push_back("--overwrite");
  expect_input_error(over, {"--zipf-exponent"});
  EXPECT_EQ(read_bytes(kept), before);
  EXPECT_TRUE(partial_files().empty());
}

TEST_F(BadInput, BadOptions) {
  const std::string out = path("options.h5");
  expect_input_error({"generate", "--users", "abc", "--comparisons", "10", "--out", out},
                     {"--users", "abc"});
  expect_input_error({"generate", "--users", "10", "--comparisons", "10", "--answers-per-user",
                      "11", "--out", out},
                     {"--answers-per-user", "11", "--comparisons"});
  expect_input_error({"generate", "--users", "1.5", "--out", out}, {"--users", "1.5"});
  EXPECT_FALSE(fs::exists(out));
  // An unknown command is bad usage, also when --help follows it.
  expect_input_error({"frobnicate"}, {"unknown command 'frobnicate'"});
  expect_input_error({"frobnicate", "--help"}, {"unknown command 'frobnicate'"});
}

}  // namespace
