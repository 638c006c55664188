// pref import: a CSV or JSON-lines file of labels with string ids into a label file
// (docs/import.md).
#include <fmt/core.h>

#include <memory>

#include "io/import.hpp"
#include "solver/base/log.hpp"
#include "solver/cli/commands.hpp"
#include "solver/cli/data.hpp"

namespace pref::cli {

namespace {
struct ImportOptions {
  std::string input;
  std::string format = "auto";
  std::string duplicates = "error";
  bool overwrite = false;
  std::string out;
};
}  // namespace

Runner add_import(CLI::App& app) {
  auto o = std::make_shared<ImportOptions>();
  app.add_option("--csv,--input", o->input,
                 "Input labels: CSV rows user,comparison,label[,split] (an optional header), "
                 "or JSON lines {\"user\", \"comparison\", \"label\"[, \"split\"]}")
      ->required();
  app.add_option("--format", o->format,
                 "Input format; auto: JSON lines for names ending in .jsonl or .ndjson, else CSV")
      ->check(one_of(io::kInputFormatNames));
  app.add_option("--duplicates", o->duplicates,
                 "Two labels of one (user, comparison) in one split: an error, or averaged")
      ->check(one_of(kDuplicatesNames));
  app.add_flag("--overwrite", o->overwrite, "Replace an existing output file");
  app.add_option("--out", o->out, "Output label file (HDF5)")->required();
  return [o](const mpi::Comm& comm) {
    io::InputFormat format = io::InputFormat::kAuto;
    // Options are checked identically on every rank; agree() makes the error collective.
    mpi::agree(comm, [&] {
      format = io::resolve_input_format(o->input, io::parse_input_format(o->format, "--format"));
    });
    const Duplicates dups = parse_duplicates(o->duplicates);
    log::info(comm, "importing {} ({}) into {}, {} MPI ranks", o->input,
              format == io::InputFormat::kCsv ? "CSV" : "JSON lines", o->out, comm.size());
    const double t0 = log::seconds_since_start();
    const io::ImportSummary s =
        io::import_labels(o->input, format, dups, o->out, o->overwrite, comm);
    const double seconds = log::seconds_since_start() - t0;
    if (s.merged)
      log::info(comm, "averaged {} repeated labels into earlier ones (--duplicates mean)",
                s.merged);
    log::info(comm,
              "wrote {} users, {} comparisons, {} train / {} validation / {} test labels "
              "from {} lines to {} in {:.2f} s",
              s.users, s.comparisons, s.labels[0], s.labels[1], s.labels[2], s.lines, o->out,
              seconds);
    return 0;
  };
}

}  // namespace pref::cli
