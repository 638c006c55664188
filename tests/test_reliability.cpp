// Nothing lost and nothing silently wrong (issue 22): every case of the adversarial sweep
// of adapt, types, score, evaluate --reference and the calibration, at 1 and 4 ranks (and 2 where
// the old behaviour depended on the rank count). Each failed on e5e8ac4:
//  - outputs never replace inputs, in every command, for every input option, by name, through a
//    symbolic link and through a hard link;
//  - an object of the wrong kind, a damaged file, a non-finite value where it is read (factors,
//    prior, atoms, truth, embedding head), an asymmetric covariance or an unknown attribute value
//    is bad input: exit code 2 and one line naming the file and the object, never an HDF5
//    function name, never exit code 1 or an MPI abort;
//  - the references are defined on every valid population;
//  - the calibration keeps s = 1 when the validation split cannot estimate it, and its
//    held-out log-loss is never worse than the uncalibrated one;
//  - a file derived from one model is refused with another (cross-file identity);
//  - numbers are read one way (1e3 forms, no negative seeds), usage errors are one line, and
//    suggestions name only options the command has.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <nlohmann/json.hpp>

#include "tests/test_util.hpp"

using namespace pref::test;
namespace fs = std::filesystem;

namespace {

constexpr int kRanks[] = {1, 4};

class Reliability : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    dir_ = fresh_dir("test_reliability");
    // A population with responses and embeddings (so that score runs) and new users; a model of
    // its embeddings, its types, an adapted file; a second model of the same data (another Z)
    // and one of another population (another number of comparisons).
    auto gen = [](const std::string& out, int comparisons, int seed) {
      return std::vector<std::string>{"generate",
                                      "--model",
                                      "attributes",
                                      "--users",
                                      "300",
                                      "--comparisons",
                                      std::to_string(comparisons),
                                      "--responses-per-prompt",
                                      "4",
                                      "--embedding-dim",
                                      "6",
                                      "--answers-per-user",
                                      "20",
                                      "--new-users",
                                      "12",
                                      "--new-user-answers",
                                      "24",
                                      "--seed",
                                      std::to_string(seed),
                                      "--out",
                                      out};
    };
    std::vector<std::future<RunResult>> gens;
    gens.push_back(std::async(std::launch::async, run_pref, 1, gen(path("data.h5"), 60, 3), 300));
    gens.push_back(
        std::async(std::launch::async, run_pref, 1, gen(path("other_data.h5"), 80, 4), 300));
    for (auto& g : gens) must(g.get());
    auto fit = [](const std::string& data, const std::string& out, const std::string& seed) {
      return std::vector<std::string>{"fit",          data, "--rank", "3",  "--items", "embeddings",
                                      "--max-sweeps", "4",  "--seed", seed, "--out",   out};
    };
    auto with_data = [](std::vector<std::string> a) {
      a.insert(a.begin() + 1, "--data");
      return a;
    };
    std::vector<std::future<RunResult>> fits;
    fits.push_back(std::async(std::launch::async, run_pref, 1,
                              with_data(fit(path("data.h5"), path("model.h5"), "1")), 300));
    fits.push_back(std::async(std::launch::async, run_pref, 1,
                              with_data(fit(path("data.h5"), path("model_b.h5"), "2")), 300));
    fits.push_back(std::async(std::launch::async, run_pref, 1,
                              with_data(fit(path("other_data.h5"), path("other_model.h5"), "1")),
                              300));
    for (auto& f : fits) must(f.get());
    must(run_pref(1, {"types", "--model", path("model.h5"), "--data", path("data.h5"), "--types",
                      "6", "--out", path("types.h5")}));
    must(run_pref(1, {"adapt", "--model", path("model.h5"), "--data", path("data.h5"), "--answers",
                      "5", "--out", path("adapted.h5")}));
    must(run_pref(1, {"adapt", "--model", path("other_model.h5"), "--data", path("other_data.h5"),
                      "--answers", "5", "--out", path("other_adapted.h5")}));
    must(run_pref(1, {"adapt", "--model", path("model_b.h5"), "--data", path("data.h5"),
                      "--answers", "5", "--out", path("adapted_b.h5")}));
  }
  static void TearDownTestSuite() {
    if (!::testing::UnitTest::GetInstance()->Failed()) fs::remove_all(dir_);
  }
  static void must(const RunResult& r) { ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err; }
  static std::string path(const std::string& name) { return dir_ + "/" + name; }

  // A copy of a file under a new name, changed by `edit` (the HDF5 C API, serially).
  static std::string variant(const std::string& from, const std::string& name,
                             const std::function<void(hid_t)>& edit) {
    const std::string p = path(name);
    fs::copy_file(path(from), p, fs::copy_options::overwrite_existing);
    {
      H5Id f = h5_open(p, /*writable=*/true);
      edit(f);
    }
    return p;
  }

  // Runs at each rank count at once: exit code 2, no hang, no abort banner, one line on standard
  // error naming every needle and no HDF5 function, nothing on standard output.
  static void expect_input_error(const std::vector<std::string>& args,
                                 const std::vector<std::string>& needles,
                                 std::vector<int> ranks = {1, 4}) {
    std::vector<std::future<RunResult>> runs;
    for (int np : ranks) runs.push_back(std::async(std::launch::async, run_pref, np, args, 180));
    std::vector<std::string> lines_seen;
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
      for (const char* h5 : {"H5D", "H5G", "H5F", "H5A", "H5O", "H5L", "H5S", "H5T"})
        EXPECT_FALSE(contains(lines[0], h5)) << lines[0];
      EXPECT_TRUE(r.out.empty()) << "stdout:\n" << r.out;
      lines_seen.push_back(lines[0]);
    }
    // The same message at every rank count.
    for (const auto& l : lines_seen) EXPECT_EQ(l, lines_seen[0]);
  }
  static RunResult expect_success(const std::vector<std::string>& args, int np) {
    RunResult r = run_pref(np, args, 180);
    EXPECT_EQ(r.exit_code, 0) << r.command << "\nstderr:\n" << r.err;
    return r;
  }

  static std::string dir_;
};
std::string Reliability::dir_;

// ---------------------------------------------------------------------------------------------
// HDF5 edits of valid files

void replace_with_group(hid_t f, const std::string& obj) {
  h5check(H5Ldelete(f, obj.c_str(), H5P_DEFAULT), "delete");
  H5Id lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  H5Pset_create_intermediate_group(lcpl, 1);
  H5Id g(h5check(H5Gcreate2(f, obj.c_str(), lcpl, H5P_DEFAULT, H5P_DEFAULT), "group"), H5Gclose);
}

void replace_with_dataset(hid_t f, const std::string& obj) {
  h5check(H5Ldelete(f, obj.c_str(), H5P_DEFAULT), "delete");
  h5_write(f, obj, std::vector<double>{1, 2, 3});
}

// Sets element `index` (row-major) of a numeric dataset to v, in the dataset's own type.
void set_value(hid_t f, const std::string& ds, std::size_t index, double v) {
  std::vector<double> all = h5_read<double>(f, ds);
  all.at(index) = v;
  H5Id d(h5check(H5Dopen2(f, ds.c_str(), H5P_DEFAULT), "open"), H5Dclose);
  h5check(H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, all.data()), "write");
}

void set_string_attr(hid_t f, const std::string& name, const std::string& value) {
  if (H5Aexists(f, name.c_str()) > 0) H5Adelete(f, name.c_str());
  h5_write_string_attr(f, "/", name, value);
}

std::string bytes_of(const std::string& p) {
  return read_bytes(p);
}

// ---------------------------------------------------------------------------------------------
// Outputs never replace inputs

// Every command that writes, with every option naming a file it reads: --out naming that input
// (directly, through a symbolic link, through a hard link) is refused with --overwrite, and the
// input is left byte for byte as it was. The table is checked for completeness against the
// commands' help: every option whose help calls it a file, except the outputs, is listed.
TEST_F(Reliability, OutputsNeverReplaceInputs) {
  struct Case {
    std::string command;
    std::vector<std::string> args;  // a valid command line without --out
    std::vector<std::string> inputs;
  };
  const std::vector<Case> cases = {
      {"fit", {"fit", "--data", path("data.h5"), "--rank", "2", "--max-sweeps", "1"}, {"--data"}},
      {"adapt",
       {"adapt", "--model", path("model.h5"), "--data", path("data.h5"), "--answers", "2"},
       {"--model", "--data"}},
      {"adapt",
       {"adapt", "--types", path("types.h5"), "--data", path("data.h5"), "--answers", "2"},
       {"--types"}},
      {"types",
       {"types", "--model", path("model.h5"), "--data", path("data.h5"), "--types", "3", "--rounds",
        "0"},
       {"--model", "--data"}},
      {"score",
       {"score", "--model", path("model.h5"), "--responses", path("data.h5"), "--adapted",
        path("adapted.h5")},
       {"--model", "--responses", "--adapted"}},
      {"import", {"import", "--input", path("labels.csv")}, {"--input"}},
      {"import",
       {"import", "--layout", "responses", "--input", path("responses.csv"), "--embeddings",
        path("emb.h5")},
       {"--input", "--embeddings"}},
  };
  write_text(path("labels.csv"), "user,comparison,label\na,x,1\nb,x,0\na,y,0.5\n");
  write_text(path("responses.csv"),
             "user,prompt,first,second,label\na,p,r1,r2,1\nb,p,r1,r2,0\na,q,r3,r1,1\n");
  {
    // The embeddings file: /ids as variable-length strings, /embedding one row per id.
    H5Id f = h5_create(path("emb.h5"));
    H5Id type(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(type, H5T_VARIABLE);
    const std::vector<const char*> ids = {"r1", "r2", "r3"};
    const hsize_t n = ids.size();
    H5Id space(H5Screate_simple(1, &n, nullptr), H5Sclose);
    H5Id d(h5check(H5Dcreate2(f, "/ids", type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                   "create ids"),
           H5Dclose);
    h5check(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, ids.data()), "write ids");
    h5_write_matrix(f, "/embedding", std::vector<float>{1, 0, 0, 1, 1, 1}, 3);
  }
  // The help of every command: the options that name a file read are the ones above.
  for (const std::string cmd : {"generate", "fit", "adapt", "types", "score", "import"}) {
    const RunResult h = run_pref(1, {cmd, "--help"});
    ASSERT_EQ(h.exit_code, 0) << h.err;
    for (const std::string& line : split_lines(h.out)) {
      const auto dash = line.find("--");
      if (dash == std::string::npos || line.find_first_not_of(' ') + 1 < dash) continue;
      // The option's names ("--csv,--input TEXT ..."), then its help.
      const std::string names = line.substr(dash, line.find(' ', dash) - dash);
      const bool names_file = contains(line, "file") || contains(line, "File");
      bool output = false, listed = false;
      for (std::size_t a = 0; a < names.size();) {
        std::size_t b = names.find(',', a);
        if (b == std::string::npos) b = names.size();
        const std::string option = names.substr(a, b - a);
        for (const char* o : {"--out", "--overwrite", "--metrics", "--checkpoint-dir", "--residual",
                              "--items", "--help"})
          output = output || option == o;
        for (const Case& c : cases)
          if (c.command == cmd)
            for (const auto& i : c.inputs) listed = listed || i == option;
        a = b + 1;
      }
      if (names_file && !output) {
        EXPECT_TRUE(listed) << cmd << " " << names << " reads a file but is not tested: " << line;
      }
    }
  }
  std::vector<std::future<RunResult>> runs;
  std::vector<std::pair<std::string, std::string>> protected_files;  // (input, its bytes)
  int n = 0;
  for (const Case& c : cases)
    for (const std::string& option : c.inputs) {
      std::size_t at = 0;
      while (c.args[at] != option) ++at;
      const std::string input = c.args[at + 1];
      const std::string link = path("link" + std::to_string(n) + ".h5");
      const std::string hard = path("hard" + std::to_string(n) + ".h5");
      ++n;
      fs::create_symlink(input, link);
      fs::create_hard_link(input, hard);
      protected_files.emplace_back(input, bytes_of(input));
      for (const std::string& out : {input, link, hard})
        for (int np : kRanks) {
          std::vector<std::string> a = c.args;
          a.insert(a.end(), {"--out", out, "--overwrite"});
          runs.push_back(std::async(std::launch::async, run_pref, np, a, 180));
        }
    }
  for (auto& run : runs) {
    const RunResult r = run.get();
    SCOPED_TRACE(r.command);
    ASSERT_FALSE(r.timed_out);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    const auto lines = error_lines(r);
    ASSERT_EQ(lines.size(), 1u) << r.err;
    EXPECT_TRUE(contains(lines[0], "an output never replaces an input")) << lines[0];
  }
  for (const auto& [input, bytes] : protected_files)
    EXPECT_EQ(bytes_of(input), bytes) << input << " was changed";
  for (auto& e : fs::directory_iterator(dir_))
    EXPECT_FALSE(contains(e.path().filename().string(), ".partial.")) << e.path();
}

// ---------------------------------------------------------------------------------------------
// Wrong kinds of object and damaged files

TEST_F(Reliability, PriorThatIsADatasetIsBadInput) {
  // model.h5 of the default fit has a /prior group.
  const std::string m =
      variant("model.h5", "prior_dataset.h5", [](hid_t f) { replace_with_dataset(f, "/prior"); });
  expect_input_error(
      {"adapt", "--model", m, "--data", path("data.h5"), "--answers", "2", "--out", path("x.h5")},
      {m, "/prior is a dataset, expected a group"});
  expect_input_error({"evaluate", "--model", m, "--data", path("data.h5")},
                     {m, "/prior is a dataset, expected a group"});
}

TEST_F(Reliability, FactorsThatAreAGroupAreBadInput) {
  const std::string m =
      variant("model.h5", "uf_group.h5", [](hid_t f) { replace_with_group(f, "/user_factors"); });
  const std::vector<std::string> needles = {m, "/user_factors is a group, expected a dataset"};
  expect_input_error({"evaluate", "--model", m, "--data", path("data.h5")}, needles);
  expect_input_error({"types", "--model", m, "--data", path("data.h5"), "--out", path("x.h5")},
                     needles);
  expect_input_error(
      {"adapt", "--model", m, "--data", path("data.h5"), "--answers", "2", "--out", path("x.h5")},
      needles);
  expect_input_error({"score", "--model", m, "--responses", path("data.h5"), "--out", path("x.h5")},
                     needles);
}

TEST_F(Reliability, AtomsThatAreAGroupAreBadInput) {
  const std::string t =
      variant("types.h5", "atoms_group.h5", [](hid_t f) { replace_with_group(f, "/atoms"); });
  expect_input_error(
      {"adapt", "--types", t, "--data", path("data.h5"), "--answers", "2", "--out", path("x.h5")},
      {t, "/atoms is a group, expected a dataset"});
}

TEST_F(Reliability, LabelColumnThatIsAGroupIsBadInput) {
  const std::string d =
      variant("data.h5", "user_group.h5", [](hid_t f) { replace_with_group(f, "/labels/user"); });
  const std::vector<std::string> needles = {d, "/labels/user is a group, expected a dataset"};
  expect_input_error({"evaluate", "--model", path("model.h5"), "--data", d}, needles);
  expect_input_error({"types", "--model", path("model.h5"), "--data", d, "--out", path("x.h5")},
                     needles);
  expect_input_error(
      {"adapt", "--model", path("model.h5"), "--data", d, "--answers", "2", "--out", path("x.h5")},
      needles);
}

TEST_F(Reliability, NewUsersOrResponsesThatAreADatasetAreBadInput) {
  const std::string d = variant("data.h5", "new_users_dataset.h5",
                                [](hid_t f) { replace_with_dataset(f, "/new_users"); });
  expect_input_error(
      {"adapt", "--model", path("model.h5"), "--data", d, "--answers", "2", "--out", path("x.h5")},
      {d, "/new_users is a dataset, expected a group"});
  const std::string r = variant("data.h5", "responses_dataset.h5",
                                [](hid_t f) { replace_with_dataset(f, "/responses"); });
  expect_input_error(
      {"score", "--model", path("model.h5"), "--responses", r, "--out", path("x.h5")},
      {r, "/responses is a dataset, expected a group"});
}

TEST_F(Reliability, ModelWithItsSecondHalfZeroedIsBadInput) {
  const std::string m = path("half_zeroed.h5");
  std::string bytes = bytes_of(path("model.h5"));
  std::fill(bytes.begin() + static_cast<std::ptrdiff_t>(bytes.size() / 2), bytes.end(), '\0');
  write_text(m, bytes);
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"score", "--model", m, "--responses", path("data.h5"), "--best-of-N", "--out",
            path("x.h5")},
           {"evaluate", "--model", m, "--data", path("data.h5")},
           {"types", "--model", m, "--data", path("data.h5"), "--out", path("x.h5")},
           {"adapt", "--model", m, "--data", path("data.h5"), "--answers", "2", "--out",
            path("x.h5")}})
    expect_input_error(args, {m});
  EXPECT_FALSE(fs::exists(path("x.h5")));
}

// The root group's header continued at a damaged address (what jobs/corrupt.sh's random bytes
// did to 2 of 100 models): HDF5 1.10.8 reads the root group collectively while opening a file,
// rank 0 failed to read the continuation and every other rank waited for its broadcast for ever
// (evaluate and types hung at 2 and 4 ranks).
TEST_F(Reliability, DamagedRootGroupIsBadInputAtEveryRankCount) {
  const std::string m = path("bad_root.h5");
  fs::copy_file(path("model.h5"), m, fs::copy_options::overwrite_existing);
  haddr_t root = 0;
  {
    H5Id f = h5_open(m);
    H5O_info_t info{};
    h5check(H5Oget_info_by_name2(f, "/", &info, H5O_INFO_BASIC, H5P_DEFAULT), "info");
    root = info.addr;
  }
  std::string bytes = bytes_of(m);
  // A version-1 object header: 16 bytes of prefix, then its first message: type (2 bytes), size
  // (2), flags and reserved (4), data. pref's files start the root's with a continuation
  // message (type 0x10: the address and length of the rest of the header).
  ASSERT_LT(root + 32, bytes.size());
  if (bytes[root] != 1 || bytes[root + 16] != 0x10 || bytes[root + 17] != 0)
    GTEST_SKIP() << "the root group's header does not start with a continuation message";
  bytes[root + 27] = '\xd6';  // the continuation's address, far beyond the end of the file
  write_text(m, bytes);
  expect_input_error({"evaluate", "--model", m, "--data", path("data.h5")}, {m, "cannot open"},
                     {1, 2, 4});
  expect_input_error({"types", "--model", m, "--data", path("data.h5"), "--out", path("x.h5")},
                     {m, "cannot open"}, {1, 2, 4});
  EXPECT_FALSE(fs::exists(path("x.h5")));
}

// ---------------------------------------------------------------------------------------------
// Non-finite values are refused where they are read

TEST_F(Reliability, NonFiniteModelFactorsAreRefusedWhereRead) {
  // Row 7 of Z (J = 3: element 7 * 3 + 1).
  const std::string m = variant("model.h5", "nan_z.h5", [](hid_t f) {
    set_value(f, "/comparison_factors", 7 * 3 + 1, std::nan(""));
  });
  const std::vector<std::string> needles = {m, "/comparison_factors", "row 7", "not finite"};
  // Before: types wrote s = nan, objective nan; adapt wrote NaN covariances; both exit 0.
  expect_input_error({"types", "--model", m, "--data", path("data.h5"), "--out", path("x.h5")},
                     needles);
  expect_input_error(
      {"adapt", "--model", m, "--data", path("data.h5"), "--answers", "2", "--out", path("x.h5")},
      needles);
  expect_input_error({"evaluate", "--model", m, "--data", path("data.h5")}, needles);
  const std::string u = variant("model.h5", "inf_u.h5",
                                [](hid_t f) { set_value(f, "/user_factors", 250 * 3, INFINITY); });
  expect_input_error({"adapt", "--model", u, "--data", path("data.h5"), "--answers", "2", "--prior",
                      "mixture", "--select", "info", "--out", path("x.h5")},
                     {u, "/user_factors", "row 250", "not finite"});
  EXPECT_FALSE(fs::exists(path("x.h5")));
}

TEST_F(Reliability, NonFiniteEmbeddingHeadIsRefused) {
  const std::string m = variant("model.h5", "nan_head.h5", [](hid_t f) {
    set_value(f, "/embedding_head", 4 * 3 + 2, std::nan(""));
  });
  // Before: all-NaN best scores, "best" the first response, exit 0.
  expect_input_error(
      {"score", "--model", m, "--responses", path("data.h5"), "--best-of-N", "--out", path("x.h5")},
      {m, "/embedding_head", "row 4", "not finite"});
}

TEST_F(Reliability, NonFiniteAtomsAreRefusedNamingTheRow) {
  const std::string t =
      variant("types.h5", "nan_atom.h5", [](hid_t f) { set_value(f, "/atoms", 2 * 3, NAN); });
  expect_input_error(
      {"adapt", "--types", t, "--data", path("data.h5"), "--answers", "2", "--out", path("x.h5")},
      {t, "/atoms", "row 2", "not finite"});
}

TEST_F(Reliability, PriorMeanAndCovarianceAreChecked) {
  const std::string nan_mean =
      variant("model.h5", "nan_mean.h5", [](hid_t f) { set_value(f, "/prior/mean", 1, NAN); });
  // Before: "the prior covariance is not positive definite".
  expect_input_error({"adapt", "--model", nan_mean, "--data", path("data.h5"), "--answers", "2",
                      "--out", path("x.h5")},
                     {nan_mean, "/prior/mean", "row 1", "not finite"});
  // Before: accepted, one triangle used and the other ignored.
  const std::string asym = variant("model.h5", "asymmetric.h5", [](hid_t f) {
    std::vector<double> c = h5_read<double>(f, "/prior/covariance");
    set_value(f, "/prior/covariance", 1, c[1] + 0.25);  // entry (0, 1)
  });
  expect_input_error({"adapt", "--model", asym, "--data", path("data.h5"), "--answers", "2",
                      "--out", path("x.h5")},
                     {asym, "/prior/covariance", "not symmetric", "(0, 1)"});
}

TEST_F(Reliability, UnknownItemsAttributeIsBadInput) {
  const std::string m =
      variant("model.h5", "bogus_items.h5", [](hid_t f) { set_string_attr(f, "items", "bogus"); });
  // Before: accepted by score.
  expect_input_error({"score", "--model", m, "--responses", path("data.h5"), "--out", path("x.h5")},
                     {m, "attribute 'items'", "'bogus'", "comparisons, responses or embeddings"});
}

// ---------------------------------------------------------------------------------------------
// The references on every valid population

TEST_F(Reliability, ReferencesWorkOnTinyPopulations) {
  const std::string tiny = path("tiny.h5"), low = path("tiny_low.h5");
  must(run_pref(1, {"generate", "--users", "3", "--comparisons", "40", "--answers-per-user", "30",
                    "--new-users", "2", "--new-user-answers", "30", "--out", tiny}));
  must(run_pref(1, {"generate", "--model", "lowrank", "--users", "4", "--comparisons", "40",
                    "--answers-per-user", "30", "--out", low}));
  for (const std::string& d : {tiny, low})
    for (const std::string ref : {"truth", "bayes", "known-users"})
      for (int np : kRanks) {
        // Before: exit 1 ("population prior: the covariance is not positive definite") and an
        // MPI abort banner on every rank.
        const RunResult r =
            expect_success({"evaluate", "--reference", ref, "--data", d, "--json"}, np);
        const auto j = nlohmann::json::parse(r.out);
        EXPECT_GT(j["labels"].get<double>(), 0);
        EXPECT_TRUE(j["logloss"].is_number()) << r.out;
        EXPECT_TRUE(std::isfinite(j["logloss"].get<double>())) << r.out;
        if (ref != "truth") {
          EXPECT_TRUE(contains(r.err, "is singular")) << r.err;
        }
      }
}

TEST_F(Reliability, NonFiniteTruthIsRefusedNamingTheRow) {
  const std::string u = variant("data.h5", "nan_truth.h5", [](hid_t f) {
    const auto dims = h5_dims(f, "/truth/user_weights");
    set_value(f, "/truth/user_weights", 123 * dims[1], NAN);
  });
  const std::string z = variant("data.h5", "inf_truth.h5", [](hid_t f) {
    const auto dims = h5_dims(f, "/truth/comparison_factors");
    set_value(f, "/truth/comparison_factors", 17 * dims[1] + 1, INFINITY);
  });
  for (const std::string ref : {"truth", "bayes", "known-users"}) {
    // Before: truth printed logloss -nan (JSON null); bayes and known-users exit 1.
    expect_input_error({"evaluate", "--reference", ref, "--data", u},
                       {u, "/truth/user_weights", "row 123", "not finite"});
    expect_input_error({"evaluate", "--reference", ref, "--data", z},
                       {z, "/truth/comparison_factors", "row 17", "not finite"});
  }
}

TEST_F(Reliability, ExtremeTruthHasADefinedReference) {
  // A row of 1e30 (finite): before, exit 1 from the prior's Cholesky.
  const std::string d = variant("data.h5", "huge_truth.h5", [](hid_t f) {
    const auto dims = h5_dims(f, "/truth/user_weights");
    for (hsize_t c = 0; c < dims[1]; ++c)
      set_value(f, "/truth/user_weights", 5 * dims[1] + c, 1e30);
  });
  for (const std::string ref : {"truth", "bayes", "known-users"})
    for (int np : kRanks) {
      const RunResult r = run_pref(np, {"evaluate", "--reference", ref, "--data", d, "--json"});
      ASSERT_FALSE(r.timed_out);
      EXPECT_EQ(r.exit_code, 0) << r.err;
      EXPECT_FALSE(contains(r.err, "MPI_ABORT")) << r.err;
    }
}

TEST_F(Reliability, ShortTruthNamesTheSameRowCountAtEveryRankCount) {
  const std::string d = variant("data.h5", "short_truth.h5", [](hid_t f) {
    std::vector<float> z = h5_read<float>(f, "/truth/comparison_factors");
    const auto dims = h5_dims(f, "/truth/comparison_factors");
    z.resize((dims[0] - 5) * dims[1]);
    h5check(H5Ldelete(f, "/truth/comparison_factors", H5P_DEFAULT), "delete");
    h5_write_matrix(f, "/truth/comparison_factors", z, dims[0] - 5);
  });
  // Before: a different expected row count at 1 rank and at 2-4 ranks.
  expect_input_error({"evaluate", "--reference", "truth", "--data", d},
                     {d, "/truth/comparison_factors", "55 x 7", "expected 60 rows"}, {1, 2, 4});
}

// ---------------------------------------------------------------------------------------------
// A safe calibration

// The same data with its validation split cut to its first k labels.
std::string with_validation_labels(const std::string& dir, const std::string& from, std::size_t k) {
  const std::string p = dir + "/val" + std::to_string(k) + ".h5";
  fs::copy_file(from, p, fs::copy_options::overwrite_existing);
  H5Id f = h5_open(p, true);
  for (const char* col : {"user", "comparison", "value"}) {
    const std::string ds = std::string("/validation/") + col;
    std::vector<double> v = h5_read<double>(f, ds);
    v.resize(k);
    H5Id d(H5Dopen2(f, ds.c_str(), H5P_DEFAULT), H5Dclose);
    H5Id type(H5Dget_type(d), H5Tclose);
    H5Id t(H5Tcopy(type), H5Tclose);
    d = H5Id();
    h5check(H5Ldelete(f, ds.c_str(), H5P_DEFAULT), "delete");
    const hsize_t n = k;
    H5Id space(H5Screate_simple(1, &n, nullptr), H5Sclose);
    H5Id nd(h5check(H5Dcreate2(f, ds.c_str(), t, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                    "create"),
            H5Dclose);
    if (std::string(col) == "value" && H5Tget_class(t) == H5T_INTEGER) {
      // Quantized values keep their denominator.
      h5_write_attr<std::uint32_t>(f, ds, "denominator", 200);
      for (double& x : v) x = std::round(x);
    }
    if (k) h5check(H5Dwrite(nd, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), "w");
  }
  return p;
}

TEST_F(Reliability, CalibrationIsSafeOnSmallValidationSplits) {
  // An over-fitted model (few labels per user, no prior): its margins are too large, which is
  // what a calibration on too few labels gets wrong.
  const std::string data = path("cal_data.h5");
  must(run_pref(1, {"generate", "--users", "400", "--comparisons", "200", "--answers-per-user",
                    "30", "--validation-fraction", "0.3", "--seed", "9", "--out", data}));
  for (std::size_t k : {1, 10, 100}) {
    SCOPED_TRACE(k);
    const std::string d = with_validation_labels(dir_, data, k);
    for (int np : kRanks) {
      const std::string m =
          path("cal_model_" + std::to_string(k) + "_" + std::to_string(np) + ".h5");
      const RunResult fit =
          expect_success({"fit", "--data", d, "--rank", "7", "--prior", "ridge", "--mu-u", "0.01",
                          "--mu-z", "0.01", "--max-sweeps", "15", "--out", m},
                         np);
      if (k < 50) {
        // Before: s = 66 from one label (test log-loss 12 against 0.67), with no warning.
        int warnings = 0;
        for (const auto& l : split_lines(fit.err)) warnings += contains(l, "warning: calibration:");
        EXPECT_EQ(warnings, 1) << fit.err;
        H5Id f = h5_open(m);
        double s = 0;
        H5Id a(H5Aopen(f, "calibration_scale", H5P_DEFAULT), H5Aclose);
        H5Aread(a, H5T_NATIVE_DOUBLE, &s);
        EXPECT_EQ(s, 1.0);
      }
      const RunResult ev = expect_success({"evaluate", "--model", m, "--data", d, "--json"}, np);
      const auto j = nlohmann::json::parse(ev.out);
      // The calibrated held-out log-loss is never worse than the uncalibrated one.
      EXPECT_LE(j["logloss"].get<double>(), j["logloss_uncalibrated"].get<double>() + 1e-12)
          << ev.out;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Cross-file identity

TEST_F(Reliability, AdaptedFileOfAnotherModelIsRefused) {
  // Another population (80 comparisons against 60): before, only J was checked.
  expect_input_error({"score", "--model", path("model.h5"), "--responses", path("data.h5"),
                      "--adapted", path("other_adapted.h5"), "--out", path("x.h5")},
                     {path("other_adapted.h5"), path("model.h5"), "--adapted", "--model"});
  // The same data and shapes, another fit: only the checksum tells them apart.
  expect_input_error({"score", "--model", path("model.h5"), "--responses", path("data.h5"),
                      "--adapted", path("adapted_b.h5"), "--out", path("x.h5")},
                     {path("adapted_b.h5"), path("model_b.h5"), path("model.h5"), "checksum",
                      "--adapted", "--model"});
  // Its own model is accepted.
  for (int np : kRanks)
    expect_success({"score", "--model", path("model_b.h5"), "--responses", path("data.h5"),
                    "--adapted", path("adapted_b.h5"), "--out", path("ok.h5"), "--overwrite"},
                   np);
}

TEST_F(Reliability, TypesFileOfAnotherModelIsRefusedByAdapt) {
  // adapt --model with --types (issue 24): the types file of model.h5 with model_b.h5, a fit of
  // the same data with the same shapes; only the checksum tells them apart.
  expect_input_error(
      {"adapt", "--model", path("model_b.h5"), "--types", path("types.h5"), "--data",
       path("data.h5"), "--answers", "2", "--out", path("x.h5")},
      {path("types.h5"), path("model.h5"), path("model_b.h5"), "checksum", "--types", "--model"});
  // With its own model it runs, and the adapted file records that model's checksum.
  for (int np : kRanks)
    expect_success({"adapt", "--model", path("model.h5"), "--types", path("types.h5"), "--data",
                    path("data.h5"), "--answers", "2", "--out", path("mt.h5"), "--overwrite"},
                   np);
}

TEST_F(Reliability, TypesAndAdaptedFilesRecordTheirSources) {
  H5Id t = h5_open(path("types.h5"));
  H5Id a = h5_open(path("adapted.h5"));
  H5Id b = h5_open(path("adapted_b.h5"));
  auto attr = [](hid_t f, const char* name) {
    H5Id at(h5check(H5Aopen(f, name, H5P_DEFAULT), name), H5Aclose);
    H5Id type(H5Aget_type(at), H5Tclose);
    std::string s(H5Tget_size(type), '\0');
    H5Aread(at, type, s.data());
    return std::string(s.c_str());
  };
  for (hid_t f : {t.get(), a.get(), b.get()}) {
    EXPECT_EQ(attr(f, "model_checksum").size(), 16u);
    EXPECT_EQ(attr(f, "data_checksum").size(), 16u);
  }
  // The same model, the same checksum; another fit of the same data, another one.
  EXPECT_EQ(attr(t, "model_checksum"), attr(a, "model_checksum"));
  EXPECT_NE(attr(a, "model_checksum"), attr(b, "model_checksum"));
}

// ---------------------------------------------------------------------------------------------
// One way to read numbers, one-line usage errors, suggestions of the command's own options

TEST_F(Reliability, CountsTakeTheExponentForms) {
  // Before: CLI11's two-line "Could not convert" for each.
  for (int np : kRanks) {
    expect_success({"adapt", "--model", path("model.h5"), "--data", path("data.h5"), "--answers",
                    "1e1", "--components", "1e1", "--prior", "mixture", "--select", "info",
                    "--seed", "1e3", "--out", path("e_adapt.h5"), "--overwrite"},
                   np);
    expect_success(
        {"types", "--model", path("model.h5"), "--data", path("data.h5"), "--types", "1e1",
         "--rounds", "1e0", "--seed", "1e3", "--out", path("e_types.h5"), "--overwrite"},
        np);
  }
}

TEST_F(Reliability, UnsignedOptionsRefuseNegatives) {
  // Before: --seed -1 wrapped to 2^64 - 1.
  expect_input_error({"types", "--model", path("model.h5"), "--data", path("data.h5"), "--seed",
                      "-1", "--out", path("x.h5")},
                     {"--seed", "'-1' is negative"});
  expect_input_error({"adapt", "--model", path("model.h5"), "--data", path("data.h5"), "--seed",
                      "-1", "--out", path("x.h5")},
                     {"--seed", "'-1' is negative"});
}

TEST_F(Reliability, UsageErrorsAreOneLine) {
  expect_input_error({"adapt", "--model", path("model.h5"), "--answers", "ten"},
                     {"--answers", "'ten'", "adapt --help"});
  expect_input_error(
      {"fit", "--data", path("data.h5"), "--rank", "2", "--bogus", "--out", path("x.h5")},
      {"--bogus"});
  expect_input_error({"score", "--model", path("model.h5")}, {"--responses"});
}

TEST_F(Reliability, MuResidualHasOneBound) {
  // Before: -1 "must be >= 0", then 0 "must be > 0".
  for (const std::string v : {"-1", "0"})
    expect_input_error({"fit", "--data", path("data.h5"), "--rank", "2", "--items", "embeddings",
                        "--residual", "--mu-residual", v, "--out", path("x.h5")},
                       {"--mu-residual", "must be > 0"});
}

TEST_F(Reliability, DuplicatesSuggestOnlyTheCommandsOptions) {
  // /new_users row 1 repeated as row 0.
  const std::string d = variant("data.h5", "dup.h5", [](hid_t f) {
    for (const char* col : {"user", "comparison"}) {
      const std::string ds = std::string("/new_users/") + col;
      std::vector<double> v = h5_read<double>(f, ds);
      set_value(f, ds, 1, v[0]);
    }
    for (const char* col : {"user", "comparison"}) {
      const std::string ds = std::string("/labels/") + col;
      std::vector<double> v = h5_read<double>(f, ds);
      set_value(f, ds, 1, v[0]);
    }
  });
  // Before: "pass --duplicates mean", an option adapt and types do not have.
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"adapt", "--model", path("model.h5"), "--data", d, "--answers", "2", "--out",
            path("x.h5")},
           {"types", "--model", path("model.h5"), "--data", d, "--out", path("x.h5")}}) {
    for (int np : kRanks) {
      const RunResult r = run_pref(np, args);
      EXPECT_EQ(r.exit_code, 2) << r.err;
      const auto lines = error_lines(r);
      ASSERT_EQ(lines.size(), 1u) << r.err;
      EXPECT_TRUE(contains(lines[0], "duplicate label")) << lines[0];
      EXPECT_FALSE(contains(lines[0], "--duplicates")) << lines[0];
    }
  }
  // evaluate has the option and says so.
  expect_input_error({"evaluate", "--model", path("model.h5"), "--data", d, "--split", "train"},
                     {"duplicate label", "--duplicates mean"});
}

}  // namespace
