#pragma once
// The `pref` command line: one executable, one subcommand per task (../shared/CLI.md).
#include <CLI/CLI.hpp>

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <utility>

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

// The one way whole numbers are read: every integer option of every command (CLI11's INT and
// UINT options; the CommandLine constructor adds it to all of them) takes the forms of
// parse_count ("1000", "1e6", "2.5e3"); an unsigned option refuses a negative value instead of
// wrapping it (--seed -1 was 2^64 - 1); a signed one passes "-" + the count to its own checks.
CLI::Validator whole_number(bool is_unsigned);

// The CLI's choices of an enum: the names of its table (solver/base/enum_names.hpp), but those
// of `excluded`.
template <class Table, class E = decltype(std::declval<Table>().entries[0].value)>
CLI::IsMember one_of(const Table& table, std::initializer_list<E> excluded = {}) {
  return CLI::IsMember(table.names(excluded));
}

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
