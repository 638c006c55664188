// Checkpoints of `pref fit` (docs/checkpoints.md), end to end with the `pref` binary:
//  - a fit stopped by a signal (SIGUSR1 to mpirun, SIGTERM to the ranks, SIGTERM to
//    jobs/slurm/term_shield.py or to every process under it, or raised at an exact half-step by
//    the test-only build pref_test_hooks: tests/pref_test_hooks.cpp) exits with 3 after a
//    checkpoint, and `--resume`
//    finishes it into a model file byte-identical to the uninterrupted run's; resumed at 1 or 3
//    ranks instead of 2, the factors agree to 1e-8;
//  - fault test: SIGKILL of one rank at random moments (seeded), also during checkpoint writes,
//    at least 10 times in a row, each time resumed: the final model is byte-identical;
//  - a truncated, bit-flipped or incomplete checkpoint is skipped with a warning naming it;
//  - a contradicting command line (--rank, --mu-u, --prior, another data file) is refused with
//    exit 2.
#include <gtest/gtest.h>
#include <signal.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <random>
#include <thread>

#include "tests/test_util.hpp"

using namespace pref::test;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

// A problem where one sweep takes about 50 ms at 2 ranks on this machine.
constexpr int kRank = 4, kSweeps = 20;

std::vector<double> read_doubles(const std::string& path, const std::string& ds) {
  H5Id f = h5_open(path);
  return h5_read<double>(f, ds);
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return INFINITY;
  double d = 0;
  for (std::size_t k = 0; k < a.size(); ++k) d = std::max(d, std::abs(a[k] - b[k]));
  return d;
}

// ---------------------------------------------------------------------------------------------
// mpirun started in the background, so that the test can signal or kill it and its ranks.

struct Spawned {
  pid_t pid = -1;
  std::string out_path, err_path, session, command;
  std::optional<int> exit_code;  // once reaped: waitpid can report a child only once
};

// `prefix` goes before mpirun (a wrapper such as jobs/slurm/term_shield.py); ranks 0: pref runs
// as one process, without mpirun.
Spawned spawn_pref(int ranks, const std::vector<std::string>& args, const std::string& tag,
                   const std::vector<std::string>& prefix = {}) {
  static int counter = 0;
  Spawned s;
  const std::string base =
      tmp_dir() + "/spawn." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  s.out_path = base + ".out";
  s.err_path = base + ".err";
  s.session = "/tmp/pref-test-ompi." + std::to_string(::getpid()) + ".s" + std::to_string(counter);
  fs::create_directories(s.session);
  std::vector<std::string> argv = prefix;
  if (ranks > 0)
    argv.insert(argv.end(),
                {mpiexec(), "-q", "--mca", "odls_base_sigkill_timeout", "0", "--mca",
                 "orte_tmpdir_base", s.session, "-np", std::to_string(ranks), "--oversubscribe"});
  argv.push_back(pref_binary());  // ranks == 0: one process, without mpirun
  argv.insert(argv.end(), args.begin(), args.end());
  for (auto& a : argv) s.command += a + " ";
  s.command += "(" + tag + ")";
  std::vector<char*> cargs;
  for (auto& a : argv) cargs.push_back(const_cast<char*>(a.c_str()));
  cargs.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    const int in = ::open("/dev/null", O_RDONLY);
    const int out = ::open(s.out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = ::open(s.err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || out < 0 || err < 0) ::_exit(126);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    ::execvp(cargs[0], cargs.data());
    ::_exit(127);
  }
  s.pid = pid;
  return s;
}

// Whether the child has ended (reaps it and stores its exit code).
bool try_wait(Spawned& s, int* code) {
  if (!s.exit_code) {
    int status = 0;
    const pid_t r = ::waitpid(s.pid, &status, WNOHANG);
    if (r == s.pid)
      s.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    else if (r < 0 && errno == ECHILD)
      s.exit_code = -1;  // not ours to wait for any more: do not spin
  }
  if (!s.exit_code) return false;
  *code = *s.exit_code;
  return true;
}

// Waits for the child (killing it after `timeout`); returns its exit code and output.
RunResult finish(Spawned& s, std::chrono::seconds timeout = 120s) {
  RunResult r;
  r.command = s.command;
  const auto end = std::chrono::steady_clock::now() + timeout;
  int code = -1;
  while (!try_wait(s, &code)) {
    if (std::chrono::steady_clock::now() > end) {
      ::kill(s.pid, SIGKILL);
      r.timed_out = true;
    }
    std::this_thread::sleep_for(2ms);
  }
  r.exit_code = code;
  r.out = read_bytes(s.out_path);
  r.err = read_bytes(s.err_path);
  fs::remove(s.out_path);
  fs::remove(s.err_path);
  std::error_code ec;
  fs::remove_all(s.session, ec);
  return r;
}

// The pids of the processes whose parent is `parent` (the ranks of an mpirun).
std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> out;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(e.path() / "stat");
    std::string stat;
    std::getline(in, stat);
    const auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 2));
    char state = 0;
    long ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent && state != 'Z') out.push_back(static_cast<pid_t>(std::stol(name)));
  }
  return out;
}

// The command name of a process ("" when it is gone).
std::string comm_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
  std::string name;
  std::getline(in, name);
  return name;
}

// Whether the process is gone (or a zombie).
bool gone(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  if (!in) return true;
  std::string stat;
  std::getline(in, stat);
  const auto close = stat.rfind(')');
  return close != std::string::npos && stat.size() > close + 2 && stat[close + 2] == 'Z';
}

// Waits until `ranks` ranks of the mpirun run (or it has ended); returns them.
std::vector<pid_t> wait_for_ranks(Spawned& s, int ranks) {
  for (int i = 0; i < 5000; ++i) {
    auto kids = children_of(s.pid);
    if (static_cast<int>(kids.size()) >= ranks) return kids;
    if (::kill(s.pid, 0) != 0) break;
    std::this_thread::sleep_for(1ms);
  }
  return children_of(s.pid);
}

bool any_file(const std::string& dir, const std::string& needle) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().filename().string().find(needle) != std::string::npos) return true;
  return false;
}

class Checkpoint : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    dir_ = fresh_dir("test_checkpoint");
    for (auto [name, seed] : {std::pair{"data.h5", "11"}, std::pair{"other.h5", "12"}}) {
      const RunResult r =
          run_pref(2, {"generate", "--model", "lowrank", "--users", "20000", "--comparisons",
                       "2000", "--answers-per-user", "40", "--rank", std::to_string(kRank),
                       "--seed", seed, "--out", path(name)});
      ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
    }
    // The uninterrupted reference.
    const RunResult r = run_pref(2, fit_args(path("reference.h5")));
    ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
  }
  static void TearDownTestSuite() {
    if (!::testing::UnitTest::GetInstance()->Failed()) fs::remove_all(dir_);
  }
  static std::string path(const std::string& name) { return dir_ + "/" + name; }

  static std::vector<std::string> fit_args(const std::string& out, int sweeps = kSweeps,
                                           const std::vector<std::string>& extra = {}) {
    std::vector<std::string> a = {"fit",
                                  "--data",
                                  path("data.h5"),
                                  "--rank",
                                  std::to_string(kRank),
                                  "--init",
                                  "random",
                                  "--max-sweeps",
                                  std::to_string(sweeps),
                                  "--tol",
                                  "0",
                                  "--seed",
                                  "5",
                                  "--out",
                                  out};
    a.insert(a.end(), extra.begin(), extra.end());
    // The default stopping rule, held off to the sweep limit unless `extra` sets --patience: the
    // runs take kSweeps sweeps (best-state copies and all) and keep the best state.
    if (std::find(extra.begin(), extra.end(), "--patience") == extra.end())
      a.insert(a.end(), {"--patience", "100"});
    return a;
  }
  // fit_args with checkpoints in `ckdir` and --resume.
  static std::vector<std::string> ck_args(const std::string& out, const std::string& ckdir,
                                          int every = 5, int sweeps = kSweeps,
                                          std::vector<std::string> extra = {}) {
    extra.insert(extra.end(), {"--checkpoint-dir", ckdir, "--checkpoint-every",
                               std::to_string(every), "--resume"});
    return fit_args(out, sweeps, extra);
  }

  static void expect_identical(const std::string& a, const std::string& b) {
    ASSERT_TRUE(fs::exists(a) && fs::exists(b)) << a << " " << b;
    EXPECT_TRUE(read_bytes(a) == read_bytes(b)) << a << " and " << b << " differ";
  }

  static inline std::string dir_;
};

// The test-only build of pref (tests/pref_test_hooks.cpp; PREF_HOOKED_BINARY).
std::string hooked_binary() {
  const char* b = std::getenv("PREF_HOOKED_BINARY");
  if (!b || !*b) throw std::runtime_error("PREF_HOOKED_BINARY is not set");
  return b;
}

// Runs `pref args...` (`binary`, default the production one) with PREF_TEST_RAISE_SIGNAL_AT=poll.
RunResult run_raising_at(int poll, int ranks, const std::vector<std::string>& args,
                         const std::string& binary = hooked_binary()) {
  const std::string production = pref_binary();
  ::setenv("PREF_BINARY", binary.c_str(), 1);
  ::setenv("PREF_TEST_RAISE_SIGNAL_AT", std::to_string(poll).c_str(), 1);
  RunResult r = run_pref(ranks, args);
  ::unsetenv("PREF_TEST_RAISE_SIGNAL_AT");
  ::setenv("PREF_BINARY", production.c_str(), 1);
  return r;
}

// The seam is in the test-only binary alone: the production `pref` ignores the setting and fits
// to the end; the test-only one stops where told. (The same data and arguments.)
TEST_F(Checkpoint, ProductionBinaryHasNoTestHook) {
  const std::string ck = path("ck-nohook"), out = path("nohook.h5");
  const auto args = ck_args(out, ck);
  RunResult r = run_raising_at(15, 2, args, pref_binary());
  ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
  EXPECT_FALSE(contains(r.err, "received SIGUSR1")) << r.err;
  expect_identical(path("reference.h5"), out);
  fs::remove_all(ck);
  fs::remove(out);
  r = run_raising_at(15, 2, args);
  ASSERT_EQ(r.exit_code, 3) << r.command << "\n" << r.err;
  EXPECT_TRUE(fs::exists(ck + "/ckpt-000007.h5")) << r.err;
}

// Stopped at exact points: after sweep 0, after the user half-step of sweeps 1 and 7, after
// sweeps 7 and 19; resumed, the model file is byte-identical.
TEST_F(Checkpoint, StopAtEveryKindOfPointAndResumeBitwise) {
  struct Case {
    int poll;
    const char* file;
  };
  for (const Case& c :
       {Case{1, "ckpt-000000.h5"}, Case{2, "ckpt-000001-half.h5"}, Case{14, "ckpt-000007-half.h5"},
        Case{15, "ckpt-000007.h5"}, Case{39, "ckpt-000019.h5"}}) {
    SCOPED_TRACE(c.file);
    const std::string ck = path("ck-raise-" + std::to_string(c.poll));
    const std::string out = path("raise-" + std::to_string(c.poll) + ".h5");
    const std::string metrics = path("raise-" + std::to_string(c.poll) + ".jsonl");
    std::vector<std::string> args = ck_args(out, ck, 5, kSweeps, {"--metrics", metrics});
    RunResult r = run_raising_at(c.poll, 2, args);
    ASSERT_EQ(r.exit_code, 3) << r.command << "\n" << r.err;
    EXPECT_TRUE(contains(r.err, "received SIGUSR1")) << r.err;
    EXPECT_TRUE(fs::exists(ck + "/" + c.file)) << r.err;
    EXPECT_FALSE(fs::exists(out));
    r = run_pref(2, args);
    ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
    EXPECT_TRUE(contains(r.err, std::string("resume: ") + ck + "/" + c.file)) << r.err;
    expect_identical(path("reference.h5"), out);
    // The metrics file holds every sweep once, in order.
    const auto lines = split_lines(read_bytes(metrics));
    ASSERT_EQ(lines.size(), static_cast<std::size_t>(kSweeps + 1));
    for (int s = 0; s <= kSweeps; ++s)
      EXPECT_TRUE(contains(lines[s], "\"sweep\":" + std::to_string(s) + ",")) << lines[s];
  }
}

// The stopping rule's state (the best state, its copy) and SQUAREM's cycle (its saved states)
// are in the checkpoints: a fit stopped anywhere resumes to the uninterrupted run's model, byte
// for byte, (a) with --accelerate squarem to the sweep limit, (b) with the defaults, where the
// rule ends the fit before it and keeps an earlier state.
TEST_F(Checkpoint, StoppingRuleAndSquaremStateAreCheckpointed) {
  struct Variant {
    std::string name;
    std::vector<std::string> extra;
    std::vector<int> polls;
  };
  // With --patience 3 (not fit_args' 100) the rule stops the fit: by the patience, keeping an
  // earlier state (--no-aitken), and by Aitken's projection (its memory is the history).
  const std::vector<Variant> variants = {
      // (34: within sweep 17's stabilizing sweep, a cycle whose plain sweeps raised the
      // objective, judged by the residual: x2 and the jump's x' saved.)
      {"squarem", {"--accelerate", "squarem"}, {4, 7, 8, 9, 12, 13, 31, 34}},
      {"rule", {"--patience", "3", "--no-aitken"}, {3, 6, 20, 31, 40, 47, 51, 52}},
      {"aitken", {"--patience", "3"}, {3, 6, 20, 31, 40}}};
  constexpr int kRuleSweeps = 60;  // the rule ends the random start's fit well before
  for (const Variant& v : variants) {
    SCOPED_TRACE(v.name);
    const std::string reference = path("reference-" + v.name + ".h5");
    const int sweeps = v.name == "squarem" ? kSweeps : kRuleSweeps;
    RunResult r = run_pref(2, fit_args(reference, sweeps, v.extra));
    ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
    if (v.name == "rule") {
      EXPECT_TRUE(contains(r.err, "has not improved")) << r.err;
      EXPECT_TRUE(contains(r.err, "keeping the state of sweep")) << r.err;
    }
    if (v.name == "aitken") {
      EXPECT_TRUE(contains(r.err, "(Aitken)")) << r.err;
    }
    int resumed = 0;
    for (int poll : v.polls) {
      SCOPED_TRACE(poll);
      const std::string ck = path("ck-" + v.name + "-" + std::to_string(poll));
      const std::string out = path(v.name + "-" + std::to_string(poll) + ".h5");
      const auto args = ck_args(out, ck, 1, sweeps, v.extra);
      r = run_raising_at(poll, 2, args);
      if (r.exit_code == 0) continue;  // the fit ended before that poll
      ASSERT_EQ(r.exit_code, 3) << r.command << "\n" << r.err;
      r = run_pref(2, args);
      ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
      EXPECT_TRUE(contains(r.err, "resume: ")) << r.err;
      expect_identical(reference, out);
      ++resumed;
    }
    EXPECT_GE(resumed, 2);  // the fit did not end before the polls
  }
}

// Extrapolated sweeps (the default with --prior ridge; the other tests here run the default,
// the population prior with plain sweeps): the extrapolation's state (U and Z before their last
// push, the factor's adaptation) is in the checkpoint, so a stop at any kind of point resumes
// to the uninterrupted run's model, byte for byte, and at another rank count to round-off.
// Plain sweeps (--no-extrapolate) stop and resume bitwise too, and a checkpoint of one kind is
// not continued by the other.
TEST_F(Checkpoint, ExtrapolationStateIsCheckpointed) {
  const std::vector<std::string> ex = {"--extrapolate"};
  const std::string reference = path("reference-extrapolated.h5");
  const std::string plain_reference = path("reference-plain.h5");
  RunResult r = run_pref(2, fit_args(reference, kSweeps, ex));
  ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
  r = run_pref(2, fit_args(plain_reference, kSweeps, {"--no-extrapolate"}));
  ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
  // Extrapolation changes the run (else this test would not test it).
  EXPECT_GT(max_abs_diff(read_doubles(plain_reference, "/user_factors"),
                         read_doubles(reference, "/user_factors")),
            1e-6);
  for (const int poll : {2, 15}) {
    const std::string tag = "plain-" + std::to_string(poll);
    const std::string ck = path("ck-" + tag), out = path(tag + ".h5");
    const auto args = ck_args(out, ck, 5, kSweeps, {"--no-extrapolate"});
    r = run_raising_at(poll, 2, args);
    ASSERT_EQ(r.exit_code, 3) << r.command << "\n" << r.err;
    r = run_pref(2, args);
    ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
    expect_identical(plain_reference, out);
  }
  struct Case {
    int poll;
    const char* file;
    bool previous_users, previous_comparisons;
  };
  for (const Case& c :
       {Case{1, "ckpt-000000.h5", false, false}, Case{2, "ckpt-000001-half.h5", true, true},
        Case{14, "ckpt-000007-half.h5", true, true}, Case{15, "ckpt-000007.h5", true, true}}) {
    SCOPED_TRACE(c.file);
    const std::string tag = "ex-" + std::to_string(c.poll);
    const std::string ck = path("ck-" + tag), out = path(tag + ".h5");
    const auto args = ck_args(out, ck, 5, kSweeps, ex);
    r = run_raising_at(c.poll, 2, args);
    ASSERT_EQ(r.exit_code, 3) << r.command << "\n" << r.err;
    const std::string file = ck + "/" + c.file;
    ASSERT_TRUE(fs::exists(file)) << r.err;
    {
      H5Id f = h5_open(file);
      EXPECT_EQ(H5Lexists(f.get(), "previous_user_factors", H5P_DEFAULT) > 0, c.previous_users);
      EXPECT_EQ(H5Lexists(f.get(), "previous_comparison_factors", H5P_DEFAULT) > 0,
                c.previous_comparisons);
    }
    if (c.previous_users) {
      EXPECT_EQ(read_doubles(file, "/previous_user_factors").size(), 20000u * kRank);
    }
    if (c.previous_comparisons) {
      EXPECT_EQ(read_doubles(file, "/previous_comparison_factors").size(), 2000u * kRank);
    }
    r = run_pref(2, args);
    ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
    EXPECT_TRUE(contains(r.err, "resume: " + file)) << r.err;
    expect_identical(reference, out);
  }
  // At another rank count.
  for (const int ranks : {1, 3}) {
    const std::string tag = "ex-ranks-" + std::to_string(ranks);
    const std::string ck = path("ck-" + tag), out = path(tag + ".h5");
    const auto args = ck_args(out, ck, 5, kSweeps, ex);
    r = run_raising_at(14, 2, args);
    ASSERT_EQ(r.exit_code, 3) << r.command << "\n" << r.err;
    r = run_pref(ranks, args);
    ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
    EXPECT_LT(
        max_abs_diff(read_doubles(reference, "/user_factors"), read_doubles(out, "/user_factors")),
        1e-8);
    EXPECT_LT(max_abs_diff(read_doubles(reference, "/comparison_factors"),
                           read_doubles(out, "/comparison_factors")),
              1e-8);
  }
  // A checkpoint written with --no-extrapolate is not continued with extrapolation, and the
  // other way.
  const std::string ck = path("ck-ex-refuse");
  r = run_raising_at(15, 2, ck_args(path("ex-refuse.h5"), ck, 5, kSweeps, {"--no-extrapolate"}));
  ASSERT_EQ(r.exit_code, 3) << r.command << "\n" << r.err;
  r = run_pref(2, ck_args(path("ex-refuse.h5"), ck, 5, kSweeps, ex));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(contains(r.err, "--extrapolate: on contradicts the checkpoint " + ck +
                                  "/ckpt-000007.h5, written with --extrapolate off"))
      << r.err;
  const std::string ck2 = path("ck-ex-refuse-2");
  r = run_raising_at(15, 2, ck_args(path("ex-refuse-2.h5"), ck2, 5, kSweeps, ex));
  ASSERT_EQ(r.exit_code, 3) << r.command << "\n" << r.err;
  r = run_pref(2, ck_args(path("ex-refuse-2.h5"), ck2, 5, kSweeps, {"--no-extrapolate"}));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(contains(r.err, "--extrapolate: off contradicts the checkpoint")) << r.err;
}

// SIGUSR1 sent to mpirun while the fit runs (forwarded to the ranks), and SIGTERM sent to the
// ranks themselves (as Slurm does at the time limit).
TEST_F(Checkpoint, SignalledRunResumesBitwise) {
  for (const int sig : {SIGUSR1, SIGTERM}) {
    const std::string name = sig == SIGUSR1 ? "usr1" : "term";
    SCOPED_TRACE(name);
    const std::string ck = path("ck-" + name), out = path(name + ".h5");
    const auto args = ck_args(out, ck, 5);
    Spawned s = spawn_pref(2, args, name);
    const auto ranks = wait_for_ranks(s, 2);
    // Mid-way: once the checkpoint after sweep 5 is there.
    for (int i = 0; i < 20000 && !fs::exists(ck + "/ckpt-000005.h5") && ::kill(s.pid, 0) == 0; ++i)
      std::this_thread::sleep_for(1ms);
    if (sig == SIGUSR1) {
      ::kill(s.pid, SIGUSR1);
    } else {
      for (pid_t p : ranks) ::kill(p, SIGTERM);
    }
    RunResult r = finish(s);
    ASSERT_EQ(r.exit_code, 3) << r.command << "\n" << r.err;
    EXPECT_TRUE(contains(r.err, sig == SIGUSR1 ? "received SIGUSR1" : "received SIGTERM")) << r.err;
    EXPECT_FALSE(fs::exists(out));
    r = run_pref(2, args);
    ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
    EXPECT_TRUE(contains(r.err, "resume: " + ck + "/ckpt-0000")) << r.err;
    expect_identical(path("reference.h5"), out);
  }
}

// SIGTERM with mpirun under jobs/slurm/term_shield.py (the launcher of jobs/slurm/fit.sbatch with
// LAUNCHER=mpirun): sent to the shield alone, and sent to every process (shield, mpirun, ranks)
// as Slurm does at a time limit, on scancel and on preemption; and to one process (no mpirun)
// started under the shield. mpirun by itself aborts the job
// on SIGTERM and exits with 1 (docs/checkpoints.md); under the shield the ranks checkpoint and
// the run exits with 3, and the resumed run ends in the uninterrupted run's model.
TEST_F(Checkpoint, SigtermUnderTermShieldResumesBitwise) {
  const char* shield = std::getenv("PREF_TERM_SHIELD");
  ASSERT_TRUE(shield && fs::exists(shield)) << "PREF_TERM_SHIELD is not set to term_shield.py";
  for (const bool everyone : {false, true}) {
    const std::string name = everyone ? "term-all" : "term-shield";
    SCOPED_TRACE(name);
    const std::string ck = path("ck-" + name), out = path(name + ".h5");
    const auto args = ck_args(out, ck, 5);
    Spawned s = spawn_pref(2, args, name, {"python3", shield});
    // The shield's child is mpirun (Python may start short-lived children of its own before it:
    // pick it by name, as /proc/PID/comm has it); mpirun's children are the ranks.
    const std::string launcher_name = fs::path(mpiexec()).filename().string().substr(0, 15);
    std::vector<pid_t> launcher, ranks;
    for (int i = 0; i < 10000 && ranks.size() < 2 && ::kill(s.pid, 0) == 0; ++i) {
      launcher.clear();
      for (pid_t p : children_of(s.pid))
        if (comm_of(p) == launcher_name) launcher.push_back(p);
      if (launcher.size() == 1) ranks = children_of(launcher[0]);
      std::this_thread::sleep_for(1ms);
    }
    ASSERT_EQ(launcher.size(), 1u);
    ASSERT_EQ(ranks.size(), 2u);
    for (int i = 0; i < 20000 && !fs::exists(ck + "/ckpt-000005.h5") && ::kill(s.pid, 0) == 0; ++i)
      std::this_thread::sleep_for(1ms);
    ASSERT_TRUE(fs::exists(ck + "/ckpt-000005.h5"));
    ::kill(s.pid, SIGTERM);
    if (everyone) {
      ::kill(launcher[0], SIGTERM);
      for (pid_t p : ranks) ::kill(p, SIGTERM);
    }
    RunResult r = finish(s);
    ASSERT_EQ(r.exit_code, 3) << r.command << "\n" << r.err;
    EXPECT_TRUE(contains(r.err, "term_shield: received SIGTERM: sending SIGUSR1 to")) << r.err;
    EXPECT_TRUE(contains(r.err, "after a checkpoint: exit code 3")) << r.err;
    if (!everyone) {
      EXPECT_TRUE(contains(r.err, "received SIGUSR1: finishing the half-step")) << r.err;
    }
    EXPECT_FALSE(fs::exists(out));
    r = run_pref(2, args);
    ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
    EXPECT_TRUE(contains(r.err, "resume: " + ck + "/ckpt-0000")) << r.err;
    expect_identical(path("reference.h5"), out);
  }
  // One process under the shield (no mpirun to unblock it): it starts with SIGTERM blocked and
  // must unblock it itself, or a SIGTERM sent to it would stay pending and the fit would finish.
  const std::string ck = path("ck-term-one"), out = path("term-one.h5");
  Spawned s = spawn_pref(0, ck_args(out, ck, 5), "one process", {"python3", shield});
  for (int i = 0; i < 20000 && !fs::exists(ck + "/ckpt-000005.h5") && ::kill(s.pid, 0) == 0; ++i)
    std::this_thread::sleep_for(1ms);
  // (Python may start short-lived children of its own before the command: pick pref by name.)
  std::vector<pid_t> fit;
  for (pid_t p : children_of(s.pid))
    if (comm_of(p) == "pref") fit.push_back(p);
  ASSERT_EQ(fit.size(), 1u);
  ::kill(fit[0], SIGTERM);
  const RunResult r = finish(s);
  ASSERT_EQ(r.exit_code, 3) << r.command << "\n" << r.err;
  EXPECT_TRUE(contains(r.err, "received SIGTERM: finishing the half-step")) << r.err;
  EXPECT_FALSE(fs::exists(out));
}

// The label file of the item-model tests (responses with embeddings), made once.
std::string items_data(const std::string& data) {
  if (!fs::exists(data)) {
    const RunResult r =
        run_pref(2, {"generate", "--users", "3000", "--comparisons", "600", "--answers-per-user",
                     "30", "--responses-per-prompt", "4", "--embedding-dim", "12",
                     "--embedding-noise", "0.05", "--seed", "13", "--out", data});
    EXPECT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
  }
  return data;
}

// The item models of the checkpoint tests: --items and what else.
const std::vector<std::vector<std::string>> kItemModels = {
    {"--items", "responses"},
    {"--items", "embeddings"},
    {"--items", "embeddings", "--residual", "--mu-residual", "2"}};

std::string item_tag(const std::vector<std::string>& m) {
  return m.size() > 2 ? m[1] + "-residual" : m[1];
}

// The item-model fit of the checkpoint tests (8 sweeps of `model` on `data` into `out`), and
// with a checkpoint directory `ck` every 3 sweeps, resumed from it.
std::vector<std::string> item_fit_args(const std::string& data,
                                       const std::vector<std::string>& model,
                                       const std::string& out, const std::string& ck) {
  std::vector<std::string> a = {"fit",    "--data",       data, "--rank", "4", "--init",
                                "random", "--max-sweeps", "8",  "--tol",  "0", "--seed",
                                "5",      "--out",        out};
  a.insert(a.end(), model.begin(), model.end());
  if (!ck.empty())
    a.insert(a.end(), {"--checkpoint-dir", ck, "--checkpoint-every", "3", "--resume"});
  return a;
}

// With an item model (--items responses: Phi by Newton-CG, distributed by response;
// --items embeddings: the replicated head W; with --residual also the residuals, distributed by
// response), the checkpoint holds theta (/state/item_params): stopped after sweep 0, after a
// user half-step and after a sweep, the resumed fit's model is the uninterrupted run's, byte for
// byte.
TEST_F(Checkpoint, ItemParametersAreCheckpointed) {
  const std::string data = items_data(path("items.h5"));
  for (const auto& model : kItemModels) {
    const std::string items = item_tag(model);
    SCOPED_TRACE(items);
    auto args = [&](const std::string& out, const std::string& ck) {
      return item_fit_args(data, model, out, ck);
    };
    const std::string ref = path("items-ref-" + items + ".h5");
    RunResult r = run_pref(2, args(ref, ""));
    ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
    for (const int poll : {1, 4, 7}) {
      SCOPED_TRACE(poll);
      const std::string tag = items + "-" + std::to_string(poll);
      const std::string ck = path("ck-items-" + tag), out = path("items-" + tag + ".h5");
      r = run_raising_at(poll, 2, args(out, ck));
      ASSERT_EQ(r.exit_code, 3) << r.command << "\n" << r.err;
      EXPECT_FALSE(fs::exists(out));
      bool has_theta = false;
      for (const auto& e : fs::directory_iterator(ck)) {
        H5Id f = h5_open(e.path().string());
        has_theta = h5_read<double>(f, "/state/item_params").size() > 0;
      }
      EXPECT_TRUE(has_theta);
      r = run_pref(2, args(out, ck));
      ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
      EXPECT_TRUE(contains(r.err, "resume: " + ck + "/")) << r.err;
      expect_identical(ref, out);
    }
  }
}

// An item model's checkpoint written at 2 ranks and resumed at 1 and at 3 (theta is
// checkpointed whole, /state/item_params, and split again by the resuming run's ranks): the
// model of the uninterrupted 2-rank run to round-off (users, comparisons and item parameters).
TEST_F(Checkpoint, ItemParametersResumeAtAnotherRankCount) {
  const std::string data = items_data(path("items.h5"));
  for (const auto& model : kItemModels) {
    const std::string items = item_tag(model);
    auto args = [&](const std::string& out, const std::string& ck) {
      return item_fit_args(data, model, out, ck);
    };
    const std::string ref = path("items-ranks-ref-" + items + ".h5");
    RunResult r = run_pref(2, args(ref, ""));
    ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
    std::vector<std::string> sets = {
        "/user_factors", "/comparison_factors",
        model[1] == "responses" ? "/response_factors" : "/embedding_head"};
    if (model.size() > 2) sets.push_back("/embedding_residual");
    for (const int poll : {4, 7}) {
      for (const int ranks : {1, 3}) {
        const std::string tag = items + "-" + std::to_string(poll) + "-" + std::to_string(ranks);
        SCOPED_TRACE(tag);
        const std::string ck = path("ck-items-ranks-" + tag),
                          out = path("items-ranks-" + tag + ".h5");
        r = run_raising_at(poll, 2, args(out, ck));
        ASSERT_EQ(r.exit_code, 3) << r.command << "\n" << r.err;
        r = run_pref(ranks, args(out, ck));
        ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
        EXPECT_TRUE(contains(r.err, "written at 2 ranks, resumed at " + std::to_string(ranks)))
            << r.err;
        double worst = 0;
        for (const std::string& set : sets) {
          const double d = max_abs_diff(read_doubles(ref, set), read_doubles(out, set));
          EXPECT_LT(d, 1e-8) << set;
          worst = std::max(worst, d);
        }
        std::printf("%s: largest difference from the 2-rank run %.3g\n", tag.c_str(), worst);
      }
    }
  }
}

// Stopped at 2 ranks, resumed at 1 and at 3: the same model to round-off.
TEST_F(Checkpoint, ResumeAtAnotherRankCount) {
  const auto refU = read_doubles(path("reference.h5"), "/user_factors");
  const auto refZ = read_doubles(path("reference.h5"), "/comparison_factors");
  for (const int poll : {14, 15}) {
    for (const int ranks : {1, 3}) {
      SCOPED_TRACE(std::to_string(poll) + " at " + std::to_string(ranks));
      const std::string tag = std::to_string(poll) + "-" + std::to_string(ranks);
      const std::string ck = path("ck-ranks-" + tag), out = path("ranks-" + tag + ".h5");
      const auto args = ck_args(out, ck, 5);
      RunResult r = run_raising_at(poll, 2, args);
      ASSERT_EQ(r.exit_code, 3) << r.command << "\n" << r.err;
      r = run_pref(ranks, args);
      ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
      EXPECT_TRUE(contains(r.err, "written at 2 ranks, resumed at " + std::to_string(ranks)))
          << r.err;
      EXPECT_LT(max_abs_diff(refU, read_doubles(out, "/user_factors")), 1e-8);
      EXPECT_LT(max_abs_diff(refZ, read_doubles(out, "/comparison_factors")), 1e-8);
    }
  }
}

// SIGKILL of one rank (mpirun then ends the other) at random moments: after a random delay,
// during the k-th checkpoint write, or while the model file is written; resumed each time.
TEST_F(Checkpoint, FaultTestKillAndResumeUntilDone) {
  constexpr int kFaultSweeps = 60, kKills = 12;
  const std::string ref = path("fault-reference.h5");
  const auto t0 = std::chrono::steady_clock::now();
  RunResult r = run_pref(2, fit_args(ref, kFaultSweeps));
  ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
  // Random delays up to a fifth of an uninterrupted run, so that 12 kills leave work to do on
  // faster and slower machines alike.
  const int max_delay_ms =
      std::max<int>(100, static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                              std::chrono::steady_clock::now() - t0)
                                              .count() /
                                          5));
  const std::string ck = path("ck-fault"), out = path("fault.h5");
  const auto args = ck_args(out, ck, 1, kFaultSweeps, {"--keep-checkpoints", "2"});
  std::mt19937 rng(20240611);
  int kills = 0, during_write = 0;
  std::string log;
  for (int attempt = 0; attempt < 40; ++attempt) {
    Spawned s = spawn_pref(2, args, "attempt " + std::to_string(attempt));
    if (kills >= kKills) {
      r = finish(s);
      ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
      break;
    }
    const auto ranks = wait_for_ranks(s, 2);
    const int mode = static_cast<int>(rng() % 3);
    std::string how;
    if (mode == 0) {
      // A random moment.
      const int ms = 20 + static_cast<int>(rng() % max_delay_ms);
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      how = "after " + std::to_string(ms) + " ms";
    } else {
      // During the k-th checkpoint write (a temporary file is open), plus 0-3 ms.
      const int k = 1 + static_cast<int>(rng() % 4);
      const int extra_us = static_cast<int>(rng() % 3000);
      int seen = 0;
      bool was = false;
      for (int i = 0; i < 200000 && ::kill(s.pid, 0) == 0; ++i) {
        const bool now = any_file(ck, ".partial.");
        if (now && !was && ++seen == k) break;
        was = now;
        std::this_thread::sleep_for(50us);
      }
      std::this_thread::sleep_for(std::chrono::microseconds(extra_us));
      how = "in checkpoint write " + std::to_string(k) + " + " + std::to_string(extra_us) + " us";
    }
    const pid_t victim = ranks.empty() ? -1 : ranks[rng() % ranks.size()];
    const bool writing = any_file(ck, ".partial.");
    int code = -1;
    if (victim > 0 && !try_wait(s, &code) && !gone(victim)) {
      ::kill(victim, SIGKILL);
      ++kills;
      during_write += writing;
      log += "kill " + std::to_string(kills) + ": " + how + (writing ? " (writing)" : "") + "\n";
    }
    r = finish(s, 60s);
    ASSERT_FALSE(r.timed_out) << r.command << "\n" << r.err;
    for (pid_t p : ranks)
      for (int i = 0; i < 5000 && !gone(p); ++i) std::this_thread::sleep_for(1ms);
    if (r.exit_code == 0) {
      // The run finished before the kill (a fast moment of a noisy machine). Its result must
      // still be the reference; then start over so that the test still reaches its kills.
      log += "attempt " + std::to_string(attempt) + " completed before the kill\n";
      expect_identical(ref, out);
      if (kills >= kKills) break;
      std::error_code ec;
      fs::remove(out, ec);
      fs::remove_all(ck, ec);
    }
  }
  std::printf("%s", log.c_str());
  EXPECT_GE(kills, 10) << log;
  EXPECT_GE(during_write, 1) << log;
  expect_identical(ref, out);
}

// A truncated, a bit-flipped and an incomplete checkpoint are skipped with a warning naming
// each, and renamed aside; the next older valid one is used.
TEST_F(Checkpoint, CorruptCheckpointsAreSkipped) {
  const std::string ck = path("ck-corrupt"), out = path("corrupt.h5");
  auto args = ck_args(out, ck, 5, kSweeps, {"--keep-checkpoints", "4"});
  RunResult r = run_pref(2, args);
  ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
  fs::remove(out);
  for (const char* n : {"ckpt-000005.h5", "ckpt-000010.h5", "ckpt-000015.h5", "ckpt-000020.h5"})
    ASSERT_TRUE(fs::exists(ck + "/" + n)) << n;
  // 20: truncated to half.
  fs::resize_file(ck + "/ckpt-000020.h5", fs::file_size(ck + "/ckpt-000020.h5") / 2);
  // 15: one byte of the user factors flipped.
  {
    haddr_t offset;
    {
      H5Id f = h5_open(ck + "/ckpt-000015.h5");
      H5Id d(H5Dopen2(f, "/user_factors", H5P_DEFAULT), H5Dclose);
      offset = H5Dget_offset(d);
      ASSERT_NE(offset, HADDR_UNDEF);
    }
    std::fstream io(ck + "/ckpt-000015.h5", std::ios::in | std::ios::out | std::ios::binary);
    io.seekg(static_cast<std::streamoff>(offset + 1000));
    char b = 0;
    io.read(&b, 1);
    b = static_cast<char>(b ^ 0x10);
    io.seekp(static_cast<std::streamoff>(offset + 1000));
    io.write(&b, 1);
  }
  // 10: an attribute removed.
  {
    H5Id f = h5_open(ck + "/ckpt-000010.h5", true);
    ASSERT_GE(H5Adelete(f, "seed"), 0);
  }
  r = run_pref(2, args);
  ASSERT_EQ(r.exit_code, 0) << r.command << "\n" << r.err;
  for (const char* n : {"ckpt-000020.h5", "ckpt-000015.h5", "ckpt-000010.h5"}) {
    EXPECT_TRUE(contains(r.err, std::string("pref: warning: skipping checkpoint ") + ck + "/" + n))
        << r.err;
    EXPECT_TRUE(fs::exists(ck + "/" + n + ".invalid")) << n;
  }
  EXPECT_TRUE(contains(r.err, "checksum mismatch")) << r.err;
  EXPECT_TRUE(contains(r.err, "resume: " + ck + "/ckpt-000005.h5")) << r.err;
  expect_identical(path("reference.h5"), out);
}

// A checkpoint of another configuration or other data is refused, naming the option and both
// values; a fresh start over old checkpoints needs --overwrite.
TEST_F(Checkpoint, ContradictingConfigurationIsRefused) {
  const std::string ck = path("ck-refuse");
  RunResult r = run_raising_at(15, 2, ck_args(path("refuse.h5"), ck));
  ASSERT_EQ(r.exit_code, 3) << r.command << "\n" << r.err;
  struct Case {
    std::vector<std::string> args;
    std::string expect;
  };
  auto with = [&](const std::string& opt, const std::string& value) {
    auto a = ck_args(path("refuse.h5"), ck);
    for (std::size_t i = 0; i + 1 < a.size(); ++i)
      if (a[i] == opt) {
        a[i + 1] = value;
        return a;
      }
    a.insert(a.end(), {opt, value});
    return a;
  };
  for (const Case& c :
       {Case{with("--rank", "3"), "--rank: 3 contradicts the checkpoint " + ck +
                                      "/ckpt-000007.h5, written with --rank 4"},
        Case{with("--mu-u", "0.5"), "--mu-u: 0.5 contradicts the checkpoint"},
        Case{with("--seed", "6"), "--seed: 6 contradicts the checkpoint"},
        Case{with("--prior", "ridge"), "--prior: ridge contradicts the checkpoint " + ck +
                                           "/ckpt-000007.h5, written with --prior population"},
        Case{with("--data", path("other.h5")), "--data: " + path("other.h5")}}) {
    for (const int ranks : {1, 2}) {
      r = run_pref(ranks, c.args);
      EXPECT_EQ(r.exit_code, 2) << r.command << "\n" << r.err;
      const auto lines = error_lines(r);
      ASSERT_EQ(lines.size(), 1u) << r.err;
      EXPECT_TRUE(contains(lines[0], c.expect)) << lines[0];
    }
  }
  // The refused runs changed nothing: the checkpoint still resumes.
  EXPECT_TRUE(fs::exists(ck + "/ckpt-000007.h5"));
  // Without --resume: refused unless --overwrite.
  auto fresh = fit_args(path("fresh.h5"), 3, {"--checkpoint-dir", ck});
  r = run_pref(2, fresh);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(contains(r.err, "pass --resume to continue from them or --overwrite")) << r.err;
  // Bad usage.
  r = run_pref(1, fit_args(path("x.h5"), 3, {"--resume"}));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "--resume: needs --checkpoint-dir")) << r.err;
  r = run_pref(1, fit_args(path("x.h5"), 3, {"--checkpoint-dir", ck, "--checkpoint-every", "0"}));
  EXPECT_EQ(r.exit_code, 2);
  fresh.push_back("--overwrite");
  r = run_pref(2, fresh);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(fs::exists(ck + "/ckpt-000007.h5"));
}

}  // namespace
