// pref import: a CSV or JSON-lines file of labels into a label file. (Being written.)
#include "solver/cli/commands.hpp"

namespace pref::cli {
Runner add_import(CLI::App& app) {
  auto csv = std::make_shared<std::string>();
  app.add_option("--csv", *csv, "Input file");
  return [](const mpi::Comm&) -> int { throw InputError("import: not implemented yet", InputError::kNoOrder, true); };
}
}  // namespace pref::cli
