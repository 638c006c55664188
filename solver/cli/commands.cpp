#include "solver/cli/commands.hpp"

#include <fmt/core.h>

#include <cmath>
#include <cstdlib>
#include <regex>

#include "io/output_file.hpp"
#include "solver/base/error.hpp"

namespace pref::cli {

std::uint64_t parse_count(const std::string& text, const std::string& option) {
  static const std::regex kCount(R"(^\s*([0-9]+)(\.[0-9]+)?([eE]\+?[0-9]+)?\s*$)");
  std::smatch m;
  if (!std::regex_match(text, m, kCount))
    throw InputError(option + ": '" + text + "' is not a count (use e.g. 1000 or 1e6)");
  if (!m[2].matched && !m[3].matched) {
    errno = 0;
    const unsigned long long v = std::strtoull(text.c_str(), nullptr, 10);
    if (errno == ERANGE) throw InputError(option + ": '" + text + "' is too large");
    return v;
  }
  const long double v = std::strtold(text.c_str(), nullptr);
  if (!(v < 1.8e19L) || v != std::floor(v))
    throw InputError(option + ": '" + text + "' is not a whole number in range");
  return static_cast<std::uint64_t>(v);
}

const CLI::Validator& finite_number() {
  static const CLI::Validator v(
      [](std::string& text) -> std::string {
        const double x = std::strtod(text.c_str(), nullptr);
        return std::isfinite(x) ? "" : "'" + text + "' is not a finite number";
      },
      "FINITE");
  return v;
}

CLI::Validator whole_number(bool is_unsigned) {
  return CLI::Validator(
      [is_unsigned](std::string& text) -> std::string {
        std::size_t a = text.find_first_not_of(" \t");
        const bool negative = a != std::string::npos && text[a] == '-';
        if (negative && is_unsigned)
          return "'" + text + "' is negative (expected a count such as 1000 or 1e6)";
        try {
          const std::uint64_t v = parse_count(negative ? text.substr(a + 1) : text, "");
          text = (negative ? "-" : "") + std::to_string(v);
          return "";
        } catch (const InputError& e) {
          const std::string m = e.what();  // ": '...' is not a count (...)"
          return m.rfind(": ", 0) == 0 ? m.substr(2) : m;
        }
      },
      /*validator_desc=*/"", "whole number");
}

CommandLine::CommandLine()
    : app("pref: personalized reward factorization (PReF) at scale.\n"
          "Runs the same as one process, under mpirun -np N, or under srun --mpi=pmix.",
          "pref") {
  app.require_subcommand(1);
  app.option_defaults()->always_capture_default();
  app.set_version_flag("--version", "pref 0.1.0");
  gen = app.add_subcommand("generate", "Generate a synthetic population into a label file");
  insp = app.add_subcommand("inspect", "Validate a label file and summarize it");
  imp =
      app.add_subcommand("import", "Convert a CSV or JSON-lines file of labels into a label file");
  fitc = app.add_subcommand("fit", "Fit user weights and comparison factors by alternating Newton");
  eval = app.add_subcommand("evaluate", "Score a model on a split of a label file");
  adap = app.add_subcommand("adapt", "Estimate new users' weights from a few chosen answers");
  scor = app.add_subcommand("score",
                            "Personalized rewards of responses, and each user's best "
                            "response per prompt (models fit with --items)");
  typs = app.add_subcommand("types",
                            "Fit discrete user types by hard EM under the ordinal label model "
                            "(for adapt --types)");
  run_score = add_score(*scor);
  run_types = add_types(*typs);
  run_gen = add_generate(*gen);
  run_adapt = add_adapt(*adap);
  run_fit = add_fit(*fitc);
  run_eval = add_evaluate(*eval);
  run_insp = add_inspect(*insp);
  run_imp = add_import(*imp);
  // One way to read whole numbers, for every command's integer options.
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; }))
    for (CLI::Option* opt : sub->get_options()) {
      const std::string type = opt->get_type_name();
      const std::string base = type.substr(0, type.find(':'));
      if (base == "INT" || base == "UINT") opt->transform(whole_number(base == "UINT"));
    }
}

namespace {
// A message on one line (CLI11's may hold several).
std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}
}  // namespace

int run(int argc, char** argv, const mpi::Comm& comm) {
  CommandLine cl;
  // The inputs and outputs of this run, so that no output replaces an input (io/output_file.hpp).
  io::RunFiles files;
  CLI::App& app = cl.app;
  // CLI11 would print the top-level help with exit code 0 for `pref frobnicate --help`: an
  // unknown command is bad usage whatever follows it.
  if (argc > 1 && argv[1][0] != '-') {
    const std::string cmd = argv[1];
    bool known = false;
    for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; }))
      known = known || sub->get_name() == cmd;
    if (!known) {
      if (comm.rank() == 0) {
        std::fprintf(stderr,
                     "pref: error: unknown command '%s' (commands: generate, inspect, import, "
                     "fit, evaluate, adapt, score, types; see pref --help)\n",
                     cmd.c_str());
      }
      return 2;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Parsing is the same on every rank: each returns the same code, rank 0 prints.
    if (comm.rank() == 0) {
      if (e.get_exit_code() == 0) {
        app.exit(e);  // --help, --version: printed on standard output
      } else {
        // One line, like every other usage error, with where to find the options.
        std::string where = "pref";
        for (const CLI::App* sub : app.get_subcommands()) where += " " + sub->get_name();
        std::fprintf(stderr, "pref: error: %s (see %s --help)\n", one_line(e.what()).c_str(),
                     where.c_str());
      }
    }
    return e.get_exit_code() == 0 ? 0 : 2;
  }
  if (cl.gen->parsed()) return cl.run_gen(comm);
  if (cl.insp->parsed()) return cl.run_insp(comm);
  if (cl.imp->parsed()) return cl.run_imp(comm);
  if (cl.fitc->parsed()) return cl.run_fit(comm);
  if (cl.eval->parsed()) return cl.run_eval(comm);
  if (cl.adap->parsed()) return cl.run_adapt(comm);
  if (cl.scor->parsed()) return cl.run_score(comm);
  if (cl.typs->parsed()) return cl.run_types(comm);
  return 2;
}

}  // namespace pref::cli
