// Nothing is lost under faults (issue 10; docs/design.md, "Errors" and "Outputs are atomic"):
// - a write that fails on any rank (a full disk) ends every rank with exit code 4 and one line
//   naming the file and the cause, never hangs, leaves the previous output byte-identical and no
//   temporary file: fit output, checkpoints, generate, import and metrics, at 1, 2 and 4 ranks,
//   through the MPI-IO seam of the test-only binary pref_test_hooks (tests/pref_test_hooks.cpp)
//   and, when this process may mount a tmpfs (root), on a real full file system at 1 to 4 ranks;
// - inputs and special files are never outputs; --metrics refuses an existing file without
//   --overwrite;
// - non-finite numbers: AUC with NaN scores ends, NaN/inf options are refused at parse time, a
//   fit whose objective is not finite writes nothing;
// - resume refuses checkpoints of data of another shape and recognizes finished work;
// - the crashes of the issue are exit code 2 with one line.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <future>
#include <limits>

#include "tests/test_util.hpp"

using namespace pref::test;
namespace fs = std::filesystem;

namespace {

constexpr int kExitIo = 4;

std::string hooked_binary() {
  const char* b = std::getenv("PREF_HOOKED_BINARY");
  if (!b || !*b) throw std::runtime_error("PREF_HOOKED_BINARY is not set");
  return b;
}

std::vector<std::string> files_containing(const std::string& dir, const std::string& needle) {
  std::vector<std::string> out;
  for (auto& e : fs::recursive_directory_iterator(dir))
    if (contains(e.path().filename().string(), needle)) out.push_back(e.path().string());
  return out;
}

// Exit code `code` and exactly one error line, "pref: error: ...", holding every needle.
void expect_one_error(const RunResult& r, int code, const std::vector<std::string>& needles) {
  SCOPED_TRACE(r.command);
  ASSERT_FALSE(r.timed_out) << "hung; stderr:\n" << r.err;
  EXPECT_EQ(r.exit_code, code) << "stderr:\n" << r.err;
  // Open MPI's posix I/O layer prints its own line for a write that hit a full disk.
  auto lines = error_lines(r);
  // A command-line parse error (CLI11) adds a hint line.
  std::erase_if(lines, [](const std::string& l) {
    return l.rfind("mca_fbtl_posix_pwritev", 0) == 0 ||
           l == "Run with --help for more information." ||
           l.rfind("pref: warning: ", 0) == 0;  // e.g. a short fit's over-fitting warning
  });
  ASSERT_EQ(lines.size(), 1u) << "stderr:\n" << r.err;
  EXPECT_EQ(lines[0].rfind("pref: error: ", 0), 0u) << lines[0];
  for (const auto& n : needles)
    EXPECT_TRUE(contains(lines[0], n)) << "no '" << n << "' in: " << lines[0];
}

class Faults : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    dir_ = fresh_dir("test_faults");
    data_ = path("data.h5");
    const RunResult r = run_pref(
        2, {"generate", "--model", "lowrank", "--rank", "3", "--users", "400", "--comparisons",
            "60", "--answers-per-user", "12", "--seed", "5", "--out", data_});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static void TearDownTestSuite() {
    if (!::testing::UnitTest::GetInstance()->Failed()) fs::remove_all(dir_);
  }
  static std::string path(const std::string& name) { return dir_ + "/" + name; }
  static std::vector<std::string> fit_args(const std::string& out) {
    return {"fit", "--data", data_, "--rank", "3", "--max-sweeps", "3", "--out", out};
  }
  static void expect_ok(const RunResult& r) {
    ASSERT_FALSE(r.timed_out) << r.command << "\nhung; stderr:\n" << r.err;
    ASSERT_EQ(r.exit_code, 0) << r.command << "\nstderr:\n" << r.err;
  }

  static std::string dir_, data_;
};
std::string Faults::dir_, Faults::data_;

// ---------------------------------------------------------------------------------------------
// 1, 2: a failed write on one rank (or on all) at any point ends every rank with exit code 4.

// The failing ranks of a run at np ranks: the first, the last, every one.
std::vector<std::string> failing_ranks(int np) {
  std::vector<std::string> out = {"0"};
  if (np > 1) out.push_back(std::to_string(np - 1));
  out.push_back("all");
  return out;
}

TEST_F(Faults, FailedModelWriteKeepsThePreviousModel) {
  const std::string out = path("model.h5");
  expect_ok(run_pref(1, fit_args(out)));
  const std::string before = read_bytes(out);
  auto args = fit_args(out);
  args.push_back("--overwrite");
  // The seam is not vacuous: without a fault the hooked binary replaces the model.
  {
    const std::string other = path("model_other.h5");
    expect_ok(
        run_pref_with(hooked_binary(), {"PREF_TEST_FAIL_WRITE=0:1000000000"}, 1, fit_args(other)));
    EXPECT_TRUE(h5_differences(out, other).empty());
  }
  // Budgets: nothing at all (the first metadata write), and part of the factors.
  for (int np : {1, 2, 4})
    for (const std::string& who : failing_ranks(np))
      for (const char* budget : {"0", "3000"}) {
        const RunResult r = run_pref_with(
            hooked_binary(), {std::string("PREF_TEST_FAIL_WRITE=") + who + ":" + budget}, np, args);
        expect_one_error(r, kExitIo, {out, "no space left on device"});
        EXPECT_EQ(read_bytes(out), before) << r.command;
        EXPECT_TRUE(files_containing(dir_, ".partial.").empty()) << r.command;
      }
}

TEST_F(Faults, FailedCheckpointLeavesOnlyValidCheckpoints) {
  for (int np : {1, 2, 4})
    for (const std::string& who : failing_ranks(np))
      for (const char* budget : {"0", "10000"}) {
        const std::string ck = path("ck_" + std::to_string(np) + "_" + who + "_" + budget);
        const std::string out = ck + ".model.h5";
        auto args = fit_args(out);
        args.insert(args.end(), {"--checkpoint-dir", ck, "--checkpoint-every", "1",
                                 "--keep-checkpoints", "10"});
        const RunResult r = run_pref_with(
            hooked_binary(), {std::string("PREF_TEST_FAIL_WRITE=") + who + ":" + budget}, np, args);
        expect_one_error(r, kExitIo, {ck + "/ckpt-", "no space left on device"});
        EXPECT_FALSE(fs::exists(out));
        EXPECT_TRUE(files_containing(ck, ".partial.").empty()) << r.command;
        // Whatever checkpoints were written are valid: a resume uses the newest and finishes.
        args.push_back("--resume");
        const RunResult again = run_pref(np, args);
        expect_ok(again);
        EXPECT_FALSE(contains(again.err, "skipping checkpoint")) << again.err;
        EXPECT_TRUE(fs::exists(out));
      }
}

TEST_F(Faults, FailedGenerateKeepsThePreviousFile) {
  const std::string out = path("gen.h5");
  const std::vector<std::string> base = {
      "generate", "--users",     "300", "--comparisons",      "40", "--answers-per-user",
      "8",        "--new-users", "5",   "--new-user-answers", "10", "--out",
      out};
  expect_ok(run_pref(1, base));
  const std::string before = read_bytes(out);
  auto args = base;
  args.insert(args.end(), {"--seed", "7", "--overwrite"});
  for (int np : {1, 2, 4})
    for (const std::string& who : failing_ranks(np))
      for (const char* budget : {"0", "5000"}) {
        const RunResult r = run_pref_with(
            hooked_binary(), {std::string("PREF_TEST_FAIL_WRITE=") + who + ":" + budget}, np, args);
        expect_one_error(r, kExitIo, {out, "no space left on device"});
        EXPECT_EQ(read_bytes(out), before) << r.command;
        EXPECT_TRUE(files_containing(dir_, ".partial.").empty()) << r.command;
      }
}

TEST_F(Faults, FailedImportKeepsThePreviousFile) {
  const std::string csv = path("labels.csv");
  std::string text = "user,comparison,label\n";
  for (int i = 0; i < 500; ++i)
    text += "user" + std::to_string(i % 50) + ",cmp" + std::to_string(i / 50) + "," +
            (i % 3 ? "1" : "0") + "\n";
  write_text(csv, text);
  const std::string out = path("imported.h5");
  expect_ok(run_pref(1, {"import", "--csv", csv, "--out", out}));
  const std::string before = read_bytes(out);
  for (int np : {1, 2, 4})
    for (const std::string& who : failing_ranks(np))
      for (const char* budget : {"0", "2000"}) {
        const RunResult r = run_pref_with(
            hooked_binary(), {std::string("PREF_TEST_FAIL_WRITE=") + who + ":" + budget}, np,
            {"import", "--csv", csv, "--out", out, "--overwrite"});
        // Only rank 0 writes an import's rows: a fault on another rank may find nothing to fail.
        if (r.exit_code == 0 && who != "0" && who != "all") continue;
        expect_one_error(r, kExitIo, {out, "no space left on device"});
        EXPECT_EQ(read_bytes(out), before) << r.command;
        EXPECT_TRUE(files_containing(dir_, ".partial.").empty()) << r.command;
      }
}

// ---------------------------------------------------------------------------------------------
// A real full file system: a tmpfs mounted for the test (root only; skipped otherwise).

class TinyFilesystem : public Faults {
 protected:
  void SetUp() override {
    mnt_ = path("tmpfs");
    fs::create_directories(mnt_);
    if (::geteuid() != 0 || ::mount("tmpfs", mnt_.c_str(), "tmpfs", 0, "size=1536k") != 0)
      GTEST_SKIP() << "cannot mount a tmpfs here (needs root and permission to mount)";
    mounted_ = true;
  }
  void TearDown() override {
    if (mounted_) ::umount2(mnt_.c_str(), MNT_DETACH);
  }
  // Fills the file system with a file of zeros until at most `leave` bytes are free (0: until a
  // write fails).
  void fill(std::uint64_t leave) {
    std::ofstream f(mnt_ + "/filler", std::ios::binary | std::ios::app);
    const std::string block(4096, '\0');
    std::error_code ec;
    while ((leave == 0 || fs::space(mnt_, ec).available > leave) &&
           f.write(block.data(), block.size()).flush()) {
    }
  }
  std::string mnt_;
  bool mounted_ = false;
};

TEST_F(TinyFilesystem, FullDiskNeverExitsZeroNorHangsNorDamagesTheOldOutput) {
  // A model of 3000 users x 6 factors (about 150 KB) in place; room for less than a second one.
  const std::string big = path("big.h5");
  expect_ok(run_pref(2, {"generate", "--model", "lowrank", "--rank", "6", "--users", "3000",
                         "--comparisons", "200", "--answers-per-user", "10", "--out", big}));
  const std::string out = mnt_ + "/model.h5";
  const std::vector<std::string> args = {"fit", "--data", big, "--rank",     "6", "--max-sweeps",
                                         "2",   "--out",  out, "--overwrite"};
  expect_ok(run_pref(2, args));
  const std::string before = read_bytes(out);
  fill(before.size() / 2);
  for (int np : {1, 2, 3, 4}) {
    const RunResult r = run_pref(np, args);
    expect_one_error(r, kExitIo, {out, "no space left on device"});
    EXPECT_EQ(read_bytes(out), before) << r.command;
    EXPECT_TRUE(files_containing(mnt_, ".partial.").empty()) << r.command;
  }
  // Generate, import, checkpoints and metrics on the same full disk.
  for (int np : {1, 2, 4}) {
    const std::string gen = mnt_ + "/gen.h5";
    expect_one_error(run_pref(np, {"generate", "--users", "3000", "--comparisons", "200",
                                   "--answers-per-user", "20", "--out", gen}),
                     kExitIo, {gen, "no space left on device"});
    EXPECT_FALSE(fs::exists(gen));
    const std::string ck = mnt_ + "/ck";
    const std::vector<std::string> with_ck = {"fit",
                                              "--data",
                                              big,
                                              "--rank",
                                              "6",
                                              "--max-sweeps",
                                              "2",
                                              "--out",
                                              path("unused_model.h5"),
                                              "--checkpoint-dir",
                                              ck,
                                              "--checkpoint-every",
                                              "1"};
    expect_one_error(run_pref(np, with_ck), kExitIo, {ck + "/ckpt-", "no space left on device"});
    EXPECT_TRUE(files_containing(ck, ".partial.").empty());
    fs::remove_all(ck);
  }
  fs::remove(mnt_ + "/filler");
  fill(0);
  for (int np : {1, 2, 4}) {
    const std::string metrics = mnt_ + "/run.jsonl";
    auto m = args;
    m[m.size() - 2] = path("metrics_model.h5");
    m.insert(m.end(), {"--metrics", metrics});
    expect_one_error(run_pref(np, m), kExitIo, {metrics, "No space left on device"});
    EXPECT_FALSE(fs::exists(path("metrics_model.h5")));
  }
}

// ---------------------------------------------------------------------------------------------
// 3, 4: inputs and special files are never outputs.

TEST_F(Faults, MetricsNeverTruncatesAnExistingFileWithoutOverwrite) {
  const std::string before = read_bytes(data_);
  const std::string out = path("m_model.h5");
  for (int np : {1, 4}) {
    auto a = fit_args(out);
    a.insert(a.end(), {"--metrics", data_});
    expect_one_error(run_pref(np, a), 2, {data_, "--metrics"});
    a.push_back("--overwrite");
    expect_one_error(run_pref(np, a), 2, {data_, "is the input", "--metrics"});
    EXPECT_EQ(read_bytes(data_), before);
    const std::string existing = path("old.jsonl");
    write_text(existing, "keep me\n");
    auto b = fit_args(out);
    b.insert(b.end(), {"--metrics", existing});
    expect_one_error(run_pref(np, b), 2, {existing, "already exists", "--overwrite"});
    EXPECT_EQ(read_bytes(existing), "keep me\n");
    b.push_back("--overwrite");
    expect_ok(run_pref(np, b));
    EXPECT_EQ(split_lines(read_bytes(existing)).size(), 4u);  // sweeps 0 to 3
    fs::remove(out);
  }
}

TEST_F(Faults, InputsAndSpecialFilesAreNeverReplaced) {
  const std::string before = read_bytes(data_);
  const std::string link = path("data_link.h5");
  fs::create_symlink(data_, link);
  const std::string csv = path("in.csv");
  write_text(csv, "u,c,label\na,x,1\nb,x,0\n");
  const std::string fifo = path("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  // A device node of our own like /dev/null (root only): a regression must not replace the
  // machine's /dev/null, as `--out /dev/null --overwrite` used to.
  std::vector<std::string> specials = {fifo};
  const std::string device = path("null_device");
  if (::mknod(device.c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0) specials.push_back(device);
  for (int np : {1, 4}) {
    auto a = fit_args(data_);
    a.push_back("--overwrite");
    expect_one_error(run_pref(np, a), 2, {data_, "is the input", "--out"});
    auto b = fit_args(link);  // another name of the same file
    b.push_back("--overwrite");
    expect_one_error(run_pref(np, b), 2, {link, "is the input", "--out"});
    EXPECT_EQ(read_bytes(data_), before);
    EXPECT_TRUE(fs::is_symlink(link));
    expect_one_error(run_pref(np, {"import", "--csv", csv, "--out", csv, "--overwrite"}), 2,
                     {csv, "is the input"});
    EXPECT_EQ(read_bytes(csv), "u,c,label\na,x,1\nb,x,0\n");
    for (const std::string& special : specials) {
      expect_one_error(run_pref(np, {"generate", "--users", "10", "--comparisons", "10",
                                     "--answers-per-user", "3", "--out", special, "--overwrite"}),
                       2, {special, "not a regular file"});
    }
    if (specials.size() > 1) {
      EXPECT_TRUE(fs::is_character_file(device));
    }
    EXPECT_TRUE(fs::is_fifo(fifo));
  }
}

// ---------------------------------------------------------------------------------------------
// 5: non-finite numbers.

// A copy of a model file with one entry of /user_factors (row-major) changed.
std::string model_with(const std::string& model, const std::string& copy, std::size_t entry,
                       double value, bool all = false) {
  fs::copy_file(model, copy, fs::copy_options::overwrite_existing);
  H5Id f = h5_open(copy, true);
  for (const char* ds : {"/user_factors", "/comparison_factors"}) {
    std::vector<double> u = h5_read<double>(f, ds);
    if (all) {
      for (std::size_t i = 0; i < u.size(); ++i) u[i] = (i % 2 ? -1 : 1) * value;
    } else if (std::string(ds) == "/user_factors") {
      u.at(entry) = value;
    }
    H5Id d(H5Dopen2(f, ds, H5P_DEFAULT), H5Dclose);
    h5check(H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, u.data()), "write");
  }
  return copy;
}

TEST_F(Faults, NonFiniteScoresDoNotHangTheAuc) {
  const std::string model = path("auc_model.h5");
  expect_ok(run_pref(1, fit_args(model)));
  const std::string nan_model =
      model_with(model, path("nan_model.h5"), 5, std::numeric_limits<double>::quiet_NaN());
  const std::string huge_model = model_with(model, path("huge_model.h5"), 0, 1.7e308, true);
  for (int np : {1, 2, 4})
    for (const std::string& m : {nan_model, huge_model}) {
      const RunResult r = run_pref(np, {"evaluate", "--model", m, "--data", data_, "--json"}, 60);
      ASSERT_FALSE(r.timed_out) << r.command << " hung";
      EXPECT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
      EXPECT_TRUE(contains(r.out, "\"auc\"")) << r.out;
    }
}

TEST_F(Faults, NonFiniteOptionsAndObjectivesAreRefused) {
  const std::string out = path("nf_model.h5");
  for (int np : {1, 4}) {
    for (const char* v : {"nan", "inf", "-inf", "1e999"})
      for (const char* opt : {"--init-scale", "--mu-u", "--mu-z", "--tol", "--net-bandwidth"}) {
        auto a = fit_args(out);
        a.insert(a.end(), {"--init", "random", opt, v});
        expect_one_error(run_pref(np, a, 60), 2, {opt, v});
      }
    // Finite but so large that the objective overflows: stops before writing anything.
    auto a = fit_args(out);
    a.insert(a.end(), {"--init", "random", "--init-scale", "1e200"});
    expect_one_error(run_pref(np, a, 60), 2, {"diverged", "sweep 0"});
    EXPECT_FALSE(fs::exists(out));
  }
}

TEST_F(Faults, RankAboveUsersOrComparisonsIsRefused) {
  for (int np : {1, 4}) {
    std::vector<std::string> a = {
        "fit", "--data", data_, "--rank", "61", "--out", path("rank_model.h5")};
    expect_one_error(run_pref(np, a, 60), 2, {"--rank", "61", "comparisons (60)"});
    a[4] = "60";  // the largest accepted (not vacuous)
    a.insert(a.end(), {"--init", "random", "--max-sweeps", "1"});
    expect_ok(run_pref(np, a, 120));
    fs::remove(path("rank_model.h5"));
  }
}

// ---------------------------------------------------------------------------------------------
// 6, 8: resume.

TEST_F(Faults, ResumeWithDataOfAnotherShapeIsRefused) {
  const std::string ck = path("ck_shape");
  const std::string out = path("shape_model.h5");
  std::vector<std::string> args = {"fit", "--data", data_, "--rank",           "3", "--max-sweeps",
                                   "1",   "--out",  out,   "--checkpoint-dir", ck,  "--resume"};
  expect_ok(run_pref(2, args));
  fs::remove(out);
  const auto before = files_containing(ck, "ckpt-");
  ASSERT_FALSE(before.empty());
  const std::string other = path("other_shape.h5");
  expect_ok(run_pref(1, {"generate", "--model", "lowrank", "--rank", "3", "--users", "500",
                         "--comparisons", "60", "--answers-per-user", "12", "--out", other}));
  for (int np : {1, 4}) {
    auto a = args;
    a[2] = other;
    expect_one_error(run_pref(np, a), 2, {"--data", "500 users", "400 users", ck});
    EXPECT_EQ(files_containing(ck, "ckpt-"), before);
    EXPECT_TRUE(files_containing(ck, ".invalid").empty());
    EXPECT_FALSE(fs::exists(out));
  }
}

TEST_F(Faults, RequeuedFinishedResumeExitsZero) {
  const std::string ck = path("ck_done");
  const std::string out = path("done_model.h5");
  auto args = fit_args(out);
  args.insert(args.end(), {"--checkpoint-dir", ck, "--resume"});
  expect_ok(run_pref(2, args));
  const std::string before = read_bytes(out);
  for (int np : {1, 4}) {
    const RunResult r = run_pref(np, args);
    expect_ok(r);
    EXPECT_TRUE(contains(r.err, "nothing to do")) << r.err;
    EXPECT_EQ(read_bytes(out), before);
  }
  // Another command line's output is still refused.
  auto other = args;
  other.insert(other.end(), {"--mu-u", "0.5"});
  expect_one_error(run_pref(1, other), 2, {out, "already exists"});
}

// ---------------------------------------------------------------------------------------------
// 7: crashes that are bad input.

TEST_F(Faults, NewUsersWithoutAnswersIsBadUsage) {
  const std::string out = path("nu.h5");
  for (int np : {1, 4})
    expect_one_error(
        run_pref(np, {"generate", "--users", "20", "--comparisons", "10", "--answers-per-user", "4",
                      "--new-users", "5", "--new-user-answers", "0", "--out", out}),
        2, {"--new-user-answers"});
  EXPECT_FALSE(fs::exists(out));
  EXPECT_TRUE(files_containing(dir_, ".partial.").empty());
}

TEST_F(Faults, HugeDeclaredUserCountIsRefused) {
  const std::string p = path("huge_users.h5");
  {
    H5Id f = h5_create(p);
    h5_write_string_attr(f, "/", "format", "pref-labels");
    h5_write_attr<std::uint32_t>(f, "/", "format_version", 1);
    h5_write_attr<std::uint64_t>(f, "/", "users", 4294967295ull);
    h5_write_attr<std::uint64_t>(f, "/", "comparisons", 4);
    h5_write(f, "/labels/user", std::vector<std::uint32_t>{0, 7, 4294967294u});
    h5_write(f, "/labels/comparison", std::vector<std::uint32_t>{0, 1, 2});
    h5_write(f, "/labels/value", std::vector<float>{1, 0, 1});
  }
  for (int np : {1, 4}) {
    expect_one_error(run_pref(np, {"inspect", p}, 60), 2, {p, "4294967295 users", "available"});
    expect_one_error(
        run_pref(np, {"fit", "--data", p, "--rank", "2", "--out", path("declared_model.h5")}, 60),
        2, {p, "available"});
  }
}

TEST_F(Faults, LinksToNothingAreMissingColumns) {
  const std::string soft = path("dangling_soft.h5");
  const std::string ext = path("dangling_external.h5");
  for (const std::string& p : {soft, ext}) {
    H5Id f = h5_create(p);
    h5_write_string_attr(f, "/", "format", "pref-labels");
    h5_write_attr<std::uint32_t>(f, "/", "format_version", 1);
    h5_write_attr<std::uint64_t>(f, "/", "users", 4);
    h5_write_attr<std::uint64_t>(f, "/", "comparisons", 4);
    h5_write(f, "/labels/comparison", std::vector<std::uint32_t>{0, 1, 2});
    h5_write(f, "/labels/value", std::vector<float>{1, 0, 1});
    if (p == soft)
      h5check(H5Lcreate_soft("/nowhere/user", f, "/labels/user", H5P_DEFAULT, H5P_DEFAULT), "soft");
    else
      h5check(H5Lcreate_external(path("missing_file.h5").c_str(), "/user", f, "/labels/user",
                                 H5P_DEFAULT, H5P_DEFAULT),
              "external");
  }
  for (int np : {1, 4})
    for (const std::string& p : {soft, ext})
      expect_one_error(run_pref(np, {"inspect", p}, 60), 2,
                       {p, "/labels/user", "resolves to nothing"});
}

}  // namespace
