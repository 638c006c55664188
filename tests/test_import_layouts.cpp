// pref import of the response layouts (issue 25): the fixtures of tests/fixtures/import/, written
// to the documented layouts of responses (CSV and JSON lines), summarize-from-feedback (a folder
// of batch files, CNN/DM rows), PRISM (utterances.jsonl) and MultiPref, each with awkward rows,
// imported at 1 and 4 ranks into the same bytes and compared with what their field mappings
// give by hand (docs/import.md); --embeddings (variable-length ids as h5py writes them, float16,
// float64, unused ids, a response id under two prompts) compared row by row with the embeddings
// file; bad input (a field, a line, a missing embedding) ends with exit code 2 and one message
// naming the file, line and field, and no output file.
#include <fmt/core.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "tests/cli_util.hpp"
#include "tests/test_util.hpp"

namespace fs = std::filesystem;
using namespace pref::test;

namespace {

const std::string kFixtures = std::string(PREF_SOURCE_DIR) + "/tests/fixtures/import";

// A 1-D string dataset (fixed- or variable-length) as strings.
std::vector<std::string> read_strings(hid_t f, const std::string& path) {
  H5Id d(h5check(H5Dopen2(f, path.c_str(), H5P_DEFAULT), path.c_str()), H5Dclose);
  H5Id ft(H5Dget_type(d), H5Tclose);
  EXPECT_EQ(H5Tget_class(ft), H5T_STRING) << path;
  EXPECT_FALSE(H5Tis_variable_str(ft)) << path << ": pref writes fixed-length strings";
  const std::size_t width = H5Tget_size(ft);
  H5Id space(H5Dget_space(d), H5Sclose);
  const auto n = static_cast<std::size_t>(H5Sget_simple_extent_npoints(space));
  std::string buf(n * width, '\0');
  if (n) h5check(H5Dread(d, ft, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()), path.c_str());
  std::vector<std::string> out;
  for (std::size_t i = 0; i < n; ++i) {
    const char* p = buf.data() + i * width;
    out.emplace_back(p, strnlen(p, width));
  }
  return out;
}

// Ids as h5py writes a list of str: variable-length UTF-8 strings.
void write_vlen_strings(hid_t f, const std::string& path, const std::vector<std::string>& ids) {
  H5Id type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type, H5T_VARIABLE);
  H5Tset_cset(type, H5T_CSET_UTF8);
  const hsize_t n = ids.size();
  H5Id space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  H5Id d(h5check(H5Dcreate2(f, path.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                 "create ids"),
         H5Dclose);
  std::vector<const char*> p;
  for (const auto& s : ids) p.push_back(s.c_str());
  h5check(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, p.data()), "write ids");
}

// expect_usage_error at one rank only: for the checks of rank 0's parse, whose agreement across
// ranks the cases run at 1, 2 and 4 ranks already show (the suite's time is mostly mpirun's).
void expect_error_one_rank(const std::vector<std::string>& args, const std::string& needle) {
  const RunResult r = run_pref(1, args);
  SCOPED_TRACE(r.command);
  ASSERT_FALSE(r.timed_out) << r.err;
  EXPECT_EQ(r.exit_code, 2) << r.err;
  const auto lines = error_lines(r);
  ASSERT_EQ(lines.size(), 1u) << r.err;
  EXPECT_TRUE(contains(lines[0], needle)) << lines[0];
}

using Label = std::tuple<std::uint32_t, std::uint32_t, double>;  // user, comparison, value

// What an imported file holds, read with the plain HDF5 C API.
struct Imported {
  std::uint64_t users = 0, comparisons = 0, version = 0;
  std::vector<std::string> user_ids, prompt_ids, response_ids;
  std::vector<std::uint32_t> response_prompt, first, second;
  std::map<std::string, std::vector<Label>> splits;  // "train", "validation", "test"
};

Imported read_imported(const std::string& path) {
  Imported m;
  H5Id f = h5_open(path);
  auto attr = [&](const char* name) {
    std::uint64_t v = 0;
    H5Id a(h5check(H5Aopen(f, name, H5P_DEFAULT), name), H5Aclose);
    h5check(H5Aread(a, H5T_NATIVE_UINT64, &v), name);
    return v;
  };
  m.users = attr("users");
  m.comparisons = attr("comparisons");
  m.version = attr("format_version");
  m.user_ids = read_strings(f, "/ids/users");
  m.prompt_ids = read_strings(f, "/ids/prompts");
  m.response_ids = read_strings(f, "/ids/responses");
  m.response_prompt = h5_read<std::uint32_t>(f, "/responses/prompt");
  m.first = h5_read<std::uint32_t>(f, "/comparisons/first");
  m.second = h5_read<std::uint32_t>(f, "/comparisons/second");
  for (auto [name, group] : {std::pair<const char*, const char*>{"train", "/labels"},
                             {"validation", "/validation"},
                             {"test", "/test"}}) {
    if (!h5_exists(f, group)) continue;
    const auto u = h5_read<std::uint32_t>(f, std::string(group) + "/user");
    const auto c = h5_read<std::uint32_t>(f, std::string(group) + "/comparison");
    auto v = h5_read<double>(f, std::string(group) + "/value");
    H5Id d(H5Dopen2(f, (std::string(group) + "/value").c_str(), H5P_DEFAULT), H5Dclose);
    if (H5Aexists(d, "denominator") > 0) {
      H5Id a(H5Aopen(d, "denominator", H5P_DEFAULT), H5Aclose);
      std::uint32_t den = 0;
      H5Aread(a, H5T_NATIVE_UINT32, &den);
      for (double& x : v) x /= den;
    }
    for (std::size_t i = 0; i < u.size(); ++i) m.splits[name].emplace_back(u[i], c[i], v[i]);
  }
  return m;
}

// A label as the ids it names, independent of the numbering.
using Named = std::tuple<std::string, std::string, std::string, std::string, double, std::string>;
std::multiset<Named> named_labels(const Imported& m) {
  std::multiset<Named> out;
  for (const auto& [split, labels] : m.splits)
    for (const auto& [u, c, v] : labels)
      out.emplace(m.user_ids.at(u), m.prompt_ids.at(m.response_prompt.at(m.first.at(c))),
                  m.response_ids.at(m.first.at(c)), m.response_ids.at(m.second.at(c)), v, split);
  return out;
}

// Imports at 1 and 4 ranks: exit code 0, the same bytes (but for the run's own attributes:
// none differ in a label file). Returns the 1-rank file.
std::string import_both(const std::string& dir, const std::vector<std::string>& args) {
  const std::string one = dir + "/one.h5", four = dir + "/four.h5";
  for (auto [np, out] : {std::pair<int, std::string>{1, one}, {4, four}}) {
    std::vector<std::string> a = {"import"};
    a.insert(a.end(), args.begin(), args.end());
    a.insert(a.end(), {"--out", out});
    const RunResult r = run_pref(np, a);
    EXPECT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
  }
  EXPECT_EQ(h5_differences(one, four), std::vector<std::string>{});
  return one;
}

// The responses fixtures (responses.csv, responses.jsonl): the mapping of docs/import.md done
// by hand. Users, prompts and responses by first appearance (r1 of p3 is another response than
// r1 of p1); the pair (r2, r1) is comparison (r1, r2) with 1 - label; alice's second label of it
// (line 6, 1 -> 0) is averaged into her first (1): 0.5.
void expect_responses_fixture(const Imported& m) {
  EXPECT_EQ(m.version, 2u);
  EXPECT_EQ(m.user_ids, (std::vector<std::string>{"alice", "Smith, J.", "bob", "名前", "carol"}));
  EXPECT_EQ(m.prompt_ids, (std::vector<std::string>{"p1", "p2", "p3"}));
  EXPECT_EQ(m.response_ids,
            (std::vector<std::string>{"r1", "r2", "r3", "say \"hi\"", "r4", "r1", "r2"}));
  EXPECT_EQ(m.response_prompt, (std::vector<std::uint32_t>{0, 0, 0, 1, 1, 2, 2}));
  EXPECT_EQ(m.first, (std::vector<std::uint32_t>{0, 0, 3, 5}));
  EXPECT_EQ(m.second, (std::vector<std::uint32_t>{1, 2, 4, 6}));
  EXPECT_EQ(m.splits.at("train"),
            (std::vector<Label>{{0, 0, 0.5}, {1, 0, 1.0}, {2, 2, 0.75}, {4, 3, 1.0}}));
  EXPECT_EQ(m.splits.at("validation"), (std::vector<Label>{{2, 1, 0.5}}));
  EXPECT_EQ(m.splits.at("test"), (std::vector<Label>{{3, 2, 1.0}}));
}

// summarize-from-feedback (sff/batch3.json then sff/cnndm0.json): worker -> user, info.id ->
// prompt, summaries[k].text -> response (its text is its id), label 1 when choice is 0; train,
// valid1, valid2 -> train, validation, test. " short one" of t3_a and of t3_c are two responses.
const std::vector<std::string> kSffResponses = {" short one",
                                                " café ☕",
                                                "tl;dr: \"quoted\", with\nnewline",
                                                "\xF0\x9F\x98\x80 emoji",
                                                " short one",
                                                " b",
                                                "Sissoko was sent off.",
                                                "Newcastle lost."};

void expect_sff_fixture(const Imported& m) {
  EXPECT_EQ(m.user_ids, (std::vector<std::string>{"w1", "w2", "w3", "w4"}));
  EXPECT_EQ(m.prompt_ids, (std::vector<std::string>{"t3_a", "t3_b", "t3_c", "0123abcd"}));
  EXPECT_EQ(m.response_ids, kSffResponses);
  EXPECT_EQ(m.response_prompt, (std::vector<std::uint32_t>{0, 0, 1, 1, 2, 2, 3, 3}));
  EXPECT_EQ(m.first, (std::vector<std::uint32_t>{0, 2, 4, 6}));
  EXPECT_EQ(m.second, (std::vector<std::uint32_t>{1, 3, 5, 7}));
  // w1 labelled (short, café) twice, once in each order, both times preferring café: 0.
  EXPECT_EQ(m.splits.at("train"), (std::vector<Label>{{0, 0, 0.0}, {1, 0, 1.0}}));
  EXPECT_EQ(m.splits.at("validation"), (std::vector<Label>{{2, 1, 1.0}}));
  EXPECT_EQ(m.splits.at("test"), (std::vector<Label>{{0, 2, 0.0}, {3, 3, 1.0}, {1, 3, 0.0}}));
}

}  // namespace

TEST(ImportLayouts, ResponsesCsvAndJsonLinesAtOneAndFourRanks) {
  const std::string dir = fresh_dir("import-layouts-responses");
  const std::string csv =
      import_both(dir, {"--layout", "responses", "--input", kFixtures + "/responses.csv"});
  expect_responses_fixture(read_imported(csv));
  fs::create_directories(dir + "/j");
  const std::string jsonl =
      import_both(dir + "/j", {"--layout", "responses", "--input", kFixtures + "/responses.jsonl"});
  expect_responses_fixture(read_imported(jsonl));
  // The default --duplicates of the response layouts is mean; error names both lines.
  const RunResult r =
      run_pref(1, {"import", "--layout", "responses", "--input", kFixtures + "/responses.csv",
                   "--duplicates", "error", "--out", dir + "/dup.h5"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  ASSERT_EQ(error_lines(r).size(), 1u) << r.err;
  EXPECT_TRUE(contains(error_lines(r)[0],
                       "responses.csv: line 6: user 'alice' and responses 'r1' and 'r2' of prompt "
                       "'p1' were already labelled on line 2"))
      << error_lines(r)[0];
  EXPECT_FALSE(fs::exists(dir + "/dup.h5"));
}

TEST(ImportLayouts, SummarizeFromFeedbackFolderAtOneAndFourRanks) {
  const std::string dir = fresh_dir("import-layouts-sff");
  const std::string out =
      import_both(dir, {"--layout", "summarize-from-feedback", "--input", kFixtures + "/sff"});
  expect_sff_fixture(read_imported(out));
  // One file of the folder alone.
  const RunResult r = run_pref(1, {"import", "--layout", "summarize-from-feedback", "--input",
                                   kFixtures + "/sff/cnndm0.json", "--out", dir + "/cnndm.h5"});
  // Both its labels are of valid2 posts: without a train label there is no file to fit.
  EXPECT_EQ(r.exit_code, 2) << r.err;
  ASSERT_EQ(error_lines(r).size(), 1u) << r.err;
  EXPECT_TRUE(contains(error_lines(r)[0], "cnndm0.json: no train labels (0 validation, 2 test)"))
      << error_lines(r)[0];
  EXPECT_FALSE(fs::exists(dir + "/cnndm.h5"));
}

TEST(ImportLayouts, PrismChosenAndScoresAtOneAndFourRanks) {
  const std::string dir = fresh_dir("import-layouts-prism");
  const std::string in = kFixtures + "/prism_utterances.jsonl";
  // The chosen response of each interaction against each other one (int1's two responses are
  // apart in the file; int3 has one response and gives no pair).
  const Imported c = read_imported(import_both(dir, {"--layout", "prism", "--input", in}));
  EXPECT_EQ(c.user_ids, (std::vector<std::string>{"user0", "user1"}));
  EXPECT_EQ(c.prompt_ids, (std::vector<std::string>{"int0", "int1", "int2"}));
  EXPECT_EQ(c.response_ids,
            (std::vector<std::string>{"ut1", "ut0", "ut2", "ut3", "ut4", "ut7", "ut6", "ut5"}));
  EXPECT_EQ(c.first, (std::vector<std::uint32_t>{0, 0, 0, 4, 6}));
  EXPECT_EQ(c.second, (std::vector<std::uint32_t>{1, 2, 3, 5, 7}));
  EXPECT_EQ(c.splits.at("train"),
            (std::vector<Label>{{0, 0, 1.0}, {0, 1, 1.0}, {0, 2, 1.0}, {0, 3, 1.0}, {1, 4, 1.0}}));
  EXPECT_EQ(c.splits.size(), 1u);
  // Every two rated responses by score, a tie when they differ by at most 5 (92 vs 90); ut3 has
  // no score.
  fs::create_directories(dir + "/s");
  const Imported s = read_imported(
      import_both(dir + "/s", {"--layout", "prism", "--input", in, "--pairs", "scores"}));
  EXPECT_EQ(s.response_ids,
            (std::vector<std::string>{"ut0", "ut1", "ut2", "ut4", "ut7", "ut5", "ut6"}));
  EXPECT_EQ(s.first, (std::vector<std::uint32_t>{0, 0, 1, 3, 5}));
  EXPECT_EQ(s.second, (std::vector<std::uint32_t>{1, 2, 2, 4, 6}));
  EXPECT_EQ(s.splits.at("train"),
            (std::vector<Label>{{0, 0, 0.0}, {0, 1, 0.0}, {0, 2, 0.5}, {0, 3, 1.0}, {1, 4, 0.0}}));
  // A narrower band: 92 against 90 is a preference.
  const RunResult r = run_pref(2, {"import", "--layout", "prism", "--input", in, "--pairs",
                                   "scores", "--tie-band", "1", "--out", dir + "/band.h5"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(std::get<2>(read_imported(dir + "/band.h5").splits.at("train")[2]), 1.0);
}

TEST(ImportLayouts, HeldOutLabelsStayTogetherByUserAndPrompt) {
  const std::string dir = fresh_dir("import-layouts-holdout");
  const std::string in = kFixtures + "/prism_utterances.jsonl";
  const Imported all = read_imported(import_both(dir, {"--layout", "prism", "--input", in}));
  fs::create_directories(dir + "/h");
  const Imported h = read_imported(
      import_both(dir + "/h", {"--layout", "prism", "--input", in, "--validation-fraction", "0.3",
                               "--test-fraction", "0.3", "--seed", "3"}));
  // The same labels, only some of them held out; the pairs of one interaction in one split.
  auto strip = [](const std::multiset<Named>& named) {
    std::multiset<Named> out;
    for (Named n : named) {
      std::get<5>(n) = "";
      out.insert(n);
    }
    return out;
  };
  EXPECT_EQ(strip(named_labels(h)), strip(named_labels(all)));
  std::map<std::pair<std::string, std::string>, std::set<std::string>> splits_of;
  for (const Named& n : named_labels(h))
    splits_of[{std::get<0>(n), std::get<1>(n)}].insert(std::get<5>(n));
  for (const auto& [key, splits] : splits_of) EXPECT_EQ(splits.size(), 1u) << key.second;
  EXPECT_GE(h.splits.count("train"), 1u);
  // Over many (user, prompt) groups the shares are near the fractions.
  std::string text;
  for (int k = 0; k < 3000; ++k) text += fmt::format("u{},p{},a,b,1\n", k % 97, k);
  write_text(dir + "/many.csv", text);
  const RunResult r = run_pref(
      1, {"import", "--layout", "responses", "--input", dir + "/many.csv", "--validation-fraction",
          "0.1", "--test-fraction", "0.2", "--out", dir + "/many.h5"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Imported m = read_imported(dir + "/many.h5");
  EXPECT_NEAR(m.splits.at("validation").size() / 3000.0, 0.1, 0.02);
  EXPECT_NEAR(m.splits.at("test").size() / 3000.0, 0.2, 0.025);
  expect_error_one_rank({"import", "--layout", "summarize-from-feedback", "--input",
                         kFixtures + "/sff", "--test-fraction", "0.1", "--out", dir + "/x.h5"},
                        "--test-fraction: summarize-from-feedback gives every label its split");
  expect_error_one_rank({"import", "--input", kFixtures + "/responses.csv", "--validation-fraction",
                         "0.1", "--out", dir + "/x.h5"},
                        "--validation-fraction: only for the response layouts");
  expect_error_one_rank({"import", "--layout", "prism", "--input", in, "--validation-fraction",
                         "0.5", "--test-fraction", "0.5", "--out", dir + "/x.h5"},
                        "leaves no training labels");
}

TEST(ImportLayouts, MultiPrefAtOneAndFourRanks) {
  const std::string dir = fresh_dir("import-layouts-multipref");
  const Imported m = read_imported(
      import_both(dir, {"--layout", "multipref", "--input", kFixtures + "/multipref.jsonl"}));
  // One label per annotation: evaluator -> user, overall_pref -> 1 (A better), 0.5 (Tie), 0 (B
  // better); the annotation without overall_pref is left out.
  EXPECT_EQ(m.user_ids, (std::vector<std::string>{"n1", "n2", "e1"}));
  EXPECT_EQ(m.prompt_ids, (std::vector<std::string>{"p1", "7"}));
  EXPECT_EQ(m.response_ids,
            (std::vector<std::string>{"cmp1:a", "cmp1:b", "cmp2:a", "cmp2:b", "3:a", "3:b"}));
  EXPECT_EQ(m.response_prompt, (std::vector<std::uint32_t>{0, 0, 0, 0, 1, 1}));
  EXPECT_EQ(m.splits.at("train"),
            (std::vector<Label>{{0, 0, 1.0}, {1, 0, 0.5}, {2, 0, 0.0}, {0, 1, 0.0}, {1, 2, 1.0}}));
}

TEST(ImportLayouts, EmbeddingsAreCopiedRowByRow) {
  const std::string dir = fresh_dir("import-layouts-embeddings");
  // The summaries' texts in another order, two ids no response uses, and one row for " short
  // one", which two prompts' responses share.
  const std::vector<std::string> ids = {"Newcastle lost.",
                                        "unused one",
                                        " b",
                                        "\xF0\x9F\x98\x80 emoji",
                                        " short one",
                                        "tl;dr: \"quoted\", with\nnewline",
                                        " café ☕",
                                        "unused two",
                                        "Sissoko was sent off."};
  const hsize_t n = ids.size();
  std::vector<double> emb(n * 5);
  for (hsize_t r = 0; r < n; ++r)
    for (hsize_t c = 0; c < 5; ++c) emb[r * 5 + c] = 0.25 * static_cast<double>(r) - 0.5 * c + 1;
  const std::string f16 = dir + "/emb16.h5", f64 = dir + "/emb64.h5";
  {
    H5Id f = h5_create(f16);
    write_vlen_strings(f, "/ids", ids);
    H5Id half = h5_float16_type();
    h5_write_matrix(f, "/embedding", emb, n, half);  // multiples of 1/4: exact in float16
  }
  {
    H5Id f = h5_create(f64);
    h5_write_strings(f, "/ids", ids);  // fixed-length this time
    std::vector<double> fine(emb);
    for (double& x : fine) x += 1e-9;  // not a float32
    h5_write_matrix(f, "/embedding", fine, n);
  }
  // And the widest embeddings the issue names: d = 4096 (float32).
  const std::string f32 = dir + "/emb4096.h5";
  const hsize_t wide = 4096;
  std::vector<float> emb32(n * wide);
  for (hsize_t k = 0; k < emb32.size(); ++k) emb32[k] = static_cast<float>(k % 977) - 400.0f;
  {
    H5Id f = h5_create(f32);
    write_vlen_strings(f, "/ids", ids);
    h5_write_matrix(f, "/embedding", emb32, n);
  }
  for (const std::string& e : {f16, f64, f32}) {
    SCOPED_TRACE(e);
    const hsize_t d = e == f32 ? wide : 5;
    const std::string sub = dir + (e == f16 ? "/a" : e == f64 ? "/b" : "/c");
    fs::create_directories(sub);
    const std::string out = import_both(sub, {"--layout", "summarize-from-feedback", "--input",
                                              kFixtures + "/sff", "--embeddings", e});
    const Imported m = read_imported(out);
    // The same labels as without embeddings, by name.
    fs::create_directories(sub + "/plain");
    const RunResult r = run_pref(1, {"import", "--layout", "summarize-from-feedback", "--input",
                                     kFixtures + "/sff", "--out", sub + "/plain/p.h5"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(named_labels(m), named_labels(read_imported(sub + "/plain/p.h5")));
    // Responses in the order of the embeddings' rows; each row that of its id.
    H5Id f = h5_open(out);
    ASSERT_EQ(h5_dims(f, "/responses/embedding"), (std::vector<hsize_t>{8, d}));
    {
      H5Id ds(H5Dopen2(f, "/responses/embedding", H5P_DEFAULT), H5Dclose);
      H5Id t(H5Dget_type(ds), H5Tclose);
      EXPECT_EQ(H5Tget_size(t), e == f16   ? 2u
                                : e == f64 ? 8u
                                           : 4u)
          << "the input's precision is kept";
    }
    const auto got = h5_read<double>(f, "/responses/embedding");
    std::vector<std::size_t> rows;
    for (std::size_t k = 0; k < m.response_ids.size(); ++k) {
      const auto it = std::find(ids.begin(), ids.end(), m.response_ids[k]);
      ASSERT_NE(it, ids.end()) << m.response_ids[k];
      rows.push_back(static_cast<std::size_t>(it - ids.begin()));
      for (hsize_t c = 0; c < d; ++c) {
        const double want = e == f16   ? emb[rows.back() * d + c]
                            : e == f64 ? emb[rows.back() * d + c] + 1e-9
                                       : emb32[rows.back() * d + c];
        ASSERT_EQ(got[k * d + c], want) << m.response_ids[k] << " column " << c;
      }
    }
    EXPECT_TRUE(std::is_sorted(rows.begin(), rows.end()));
  }
  // The log counts the unused ids.
  const RunResult r =
      run_pref(1, {"import", "--layout", "summarize-from-feedback", "--input", kFixtures + "/sff",
                   "--embeddings", f16, "--out", dir + "/log.h5"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "2 rows of " + f16 + " belong to no response (ignored)")) << r.err;
  EXPECT_TRUE(contains(r.err, "dimension 5, float16")) << r.err;
}

TEST(ImportLayouts, MissingEmbeddingNamesTheResponseAndWritesNothing) {
  const std::string dir = fresh_dir("import-layouts-missing");
  const std::string e = dir + "/emb.h5";
  {
    H5Id f = h5_create(e);
    write_vlen_strings(f, "/ids", {" short one", " café ☕", "Newcastle lost."});
    h5_write_matrix(f, "/embedding", std::vector<float>(6, 1.0f), 3);
  }
  for (int np : {1, 2, 4}) {
    const RunResult r =
        run_pref(np, {"import", "--layout", "summarize-from-feedback", "--input",
                      kFixtures + "/sff", "--embeddings", e, "--out", dir + "/out.h5"});
    SCOPED_TRACE(r.command);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    const auto lines = error_lines(r);
    ASSERT_EQ(lines.size(), 1u) << r.err;
    EXPECT_TRUE(contains(lines[0], e + ": no embedding for response 'tl;dr: \"quoted\", "
                                       "with\\x0anewline' (prompt 't3_b', first used at "))
        << lines[0];
    EXPECT_TRUE(contains(lines[0], "batch3.json: line 5)")) << lines[0];
    EXPECT_FALSE(fs::exists(dir + "/out.h5"));
    for (const auto& entry : fs::directory_iterator(dir))
      EXPECT_EQ(entry.path().filename().string().rfind("out.h5", 0), std::string::npos)
          << "left behind: " << entry.path();
  }
}

TEST(ImportLayouts, BadEmbeddingFiles) {
  const std::string dir = fresh_dir("import-layouts-bad-embeddings");
  const std::vector<std::string> ids = {" short one",
                                        " café ☕",
                                        "tl;dr: \"quoted\", with\nnewline",
                                        "\xF0\x9F\x98\x80 emoji",
                                        " b",
                                        "Sissoko was sent off.",
                                        "Newcastle lost."};
  auto file = [&](const std::string& name, const std::vector<std::string>& id,
                  const std::vector<float>& values, hsize_t rows) {
    const std::string p = dir + "/" + name;
    H5Id f = h5_create(p);
    write_vlen_strings(f, "/ids", id);
    h5_write_matrix(f, "/embedding", values, rows);
    return p;
  };
  std::vector<float> ok(ids.size() * 2, 0.5f);
  std::vector<float> nan = ok;
  nan[2 * 4 + 1] = std::nanf("");
  std::vector<std::string> dup = ids;
  dup.push_back(" b");
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {file("nan.h5", ids, nan, ids.size()), {"nan.h5: /embedding: row 4, column 1: value nan"}},
      {file("dup.h5", dup, std::vector<float>(dup.size() * 2, 1.0f), dup.size()),
       {"dup.h5: /ids: row 7 repeats the id ' b' of row 4"}},
      {file("short.h5", ids, std::vector<float>(6 * 2, 1.0f), 6),
       {"short.h5: /embedding: 6 rows, expected one per id of /ids (7)"}},
      {dir + "/none.h5", {"none.h5: no such file"}},
  };
  // The non-finite value (the first case) is found by whichever rank copies its row: it runs
  // at 1, 2 and 4 ranks; the others are checks of rank 0's, at one.
  for (std::size_t k = 0; k < cases.size(); ++k) {
    const std::vector<std::string> args = {"import",
                                           "--layout",
                                           "summarize-from-feedback",
                                           "--input",
                                           kFixtures + "/sff",
                                           "--embeddings",
                                           cases[k].first,
                                           "--out",
                                           dir + "/out.h5"};
    if (k == 0)
      expect_usage_error(args, cases[k].second);
    else
      expect_error_one_rank(args, cases[k].second[0]);
  }
  EXPECT_FALSE(fs::exists(dir + "/out.h5"));
  {
    H5Id f = h5_create(dir + "/ints.h5");
    write_vlen_strings(f, "/ids", ids);
    h5_write_matrix(f, "/embedding", std::vector<std::int32_t>(ids.size() * 2, 1), ids.size());
  }
  expect_error_one_rank(
      {"import", "--layout", "summarize-from-feedback", "--input", kFixtures + "/sff",
       "--embeddings", dir + "/ints.h5", "--out", dir + "/out.h5"},
      "ints.h5: /embedding: element type int32, expected float16, float32 or "
      "float64");
  // Options of other layouts.
  expect_usage_error({"import", "--input", kFixtures + "/responses.csv", "--embeddings",
                      dir + "/nan.h5", "--out", dir + "/out.h5"},
                     {"--embeddings: needs a layout with responses"});
  expect_error_one_rank({"import", "--layout", "summarize-from-feedback", "--input",
                         kFixtures + "/sff", "--pairs", "scores", "--out", dir + "/out.h5"},
                        "--pairs: only for --layout prism");
}

TEST(ImportLayouts, BadRowsNameFileLineAndField) {
  const std::string dir = fresh_dir("import-layouts-bad-rows");
  const std::string good_sff =
      R"({"info": {"id": "t3_a"}, "summaries": [{"text": "x"}, {"text": "y"}], "choice": 0, "worker": "w", "split": "train"})";
  struct Case {
    std::string layout, name, text;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {"summarize-from-feedback", "c.json",
       good_sff + "\n" +
           R"({"info": {"id": "t3_a"}, "summaries": [{"text": "x"}, {"text": "y"}], "choice": 2, "worker": "w", "split": "train"})",
       "c.json: line 2: choice '2' is not 0 or 1"},
      {"summarize-from-feedback", "w.json",
       R"({"info": {"id": "t3_a"}, "summaries": [{"text": "x"}, {"text": "y"}], "choice": 0, "split": "train"})",
       "w.json: line 1: missing key 'worker'"},
      {"summarize-from-feedback", "s.json",
       R"({"info": {"id": "t3_a"}, "summaries": [{"text": "x"}, {"text": "y"}], "choice": 0, "worker": "w", "split": "valid3"})",
       "s.json: line 1: unknown split 'valid3' (expected train, valid1 or valid2)"},
      {"summarize-from-feedback", "t.json",
       R"({"info": {"id": "t3_a"}, "summaries": [{"text": "x"}, {"text": 7}], "choice": 0, "worker": "w", "split": "train"})",
       "t.json: line 1: summaries[1].text '7' is not a string"},
      {"summarize-from-feedback", "e.json",
       R"({"info": {"id": "t3_a"}, "summaries": [{"text": "x"}, {"text": ""}], "choice": 0, "worker": "w", "split": "train"})",
       "e.json: line 1: empty response id (summaries[1].text)"},
      {"summarize-from-feedback", "same.json",
       R"({"info": {"id": "t3_a"}, "summaries": [{"text": "x"}, {"text": "x"}], "choice": 0, "worker": "w", "split": "train"})",
       "same.json: line 1: summaries[0].text and summaries[1].text are the same response 'x'"},
      {"summarize-from-feedback", "j.json",
       good_sff + "\n{\"info\": ", "j.json: line 2: not valid JSON"},
      {"responses", "f.csv", "u,p,a,b,1\nu,p,a,b\n",
       "f.csv: line 2: expected 5 fields (user,prompt,first,second,label) as on line 1, found 4"},
      {"responses", "l.csv", "u,p,a,b,yes\n", "l.csv: line 1: label 'yes' is not a number"},
      {"responses", "r.csv", "u,p,a,b,1.5\n", "r.csv: line 1: label '1.5' is outside [0, 1]"},
      {"prism", "p.jsonl",
       "{\"user_id\": \"u1\", \"interaction_id\": \"i\", \"utterance_id\": \"a\", \"if_chosen\": "
       "true}\n{\"user_id\": \"u2\", \"interaction_id\": \"i\", \"utterance_id\": \"b\", "
       "\"if_chosen\": false}\n",
       "p.jsonl: line 2: interaction 'i' is of user 'u1' on line 1, here of user 'u2'"},
      {"prism", "q.jsonl",
       "{\"user_id\": \"u1\", \"interaction_id\": \"i\", \"utterance_id\": \"a\", \"if_chosen\": "
       "\"yes\"}\n",
       "q.jsonl: line 1: if_chosen '\"yes\"' is not true or false"},
      {"multipref", "m.jsonl",
       R"({"comparison_id": "c", "prompt_id": "p", "normal_worker_annotations": [{"evaluator": "e", "overall_pref": "Maybe"}]})",
       "m.jsonl: line 1: normal_worker_annotations[0].overall_pref 'Maybe' is not one of"},
      {"multipref", "n.jsonl",
       R"({"comparison_id": "c", "prompt_id": "p", "normal_worker_annotations": [{"overall_pref": "Tie"}]})",
       "n.jsonl: line 1: missing key 'normal_worker_annotations[0].evaluator'"},
  };
  for (std::size_t k = 0; k < cases.size(); ++k) {
    const Case& c = cases[k];
    SCOPED_TRACE(c.name);
    write_text(dir + "/" + c.name, c.text + "\n");
    const std::vector<std::string> args = {
        "import", "--layout", c.layout, "--input", dir + "/" + c.name, "--out", dir + "/out.h5"};
    // One case of each layout at 1, 2 and 4 ranks, the others at one.
    if (k == 0 || k == 7 || k == 10 || k == 12)
      expect_usage_error(args, {c.needle});
    else
      expect_error_one_rank(args, c.needle);
    EXPECT_FALSE(fs::exists(dir + "/out.h5"));
  }
}
