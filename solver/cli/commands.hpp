#pragma once
// The `pref` command line: one executable, one subcommand per task (../shared/CLI.md).
#include <CLI/CLI.hpp>

#include <cstdint>
#include <functional>
#include <string>

#include "solver/base/mpi.hpp"

namespace pref::cli {

// A subcommand: registers its options on `sub` and returns what runs it after parsing.
using Runner = std::function<int(const mpi::Comm&)>;
Runner add_generate(CLI::App& app);
Runner add_inspect(CLI::App& app);
Runner add_import(CLI::App& app);
Runner add_fit(CLI::App& app);
Runner add_evaluate(CLI::App& app);
Runner add_adapt(CLI::App& app);
Runner add_score(CLI::App& app);
Runner add_types(CLI::App& app);

// Parses a count such as "1000", "1e6" or "2.5e3" (it must be a whole number); throws
// InputError naming the option.
std::uint64_t parse_count(const std::string& text, const std::string& option);

// A CLI11 check that a number option is finite: NaN and infinities are refused at parse time
// (exit code 2) with the option named.
const CLI::Validator& finite_number();

// The `pref` command line: every subcommand with its options, and what runs each once parsed.
// run() uses it; the option fuzzer (tests/fuzz) parses with it and runs nothing.
struct CommandLine {
  CommandLine();
  CommandLine(const CommandLine&) = delete;
  CommandLine& operator=(const CommandLine&) = delete;
  CLI::App app;
  CLI::App *gen, *insp, *imp, *fitc, *eval, *adap, *scor, *typs;
  Runner run_gen, run_insp, run_imp, run_fit, run_eval, run_adapt, run_score, run_types;
};

// Runs the command line; returns the exit code.
int run(int argc, char** argv, const mpi::Comm& comm);

}  // namespace pref::cli
