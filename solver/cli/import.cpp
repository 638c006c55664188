// pref import: labels with string ids, or a preference set in one of the public layouts, with
// optional response embeddings, into a label file (docs/import.md).
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
  std::string layout = "labels";
  std::string format = "auto";
  std::string duplicates;  // empty: the layout's default
  std::string embeddings;
  std::string pairs = "chosen";
  double tie_band = 5;
  double validation_fraction = 0, test_fraction = 0;
  std::uint64_t seed = 1;
  bool overwrite = false;
  std::string out;
  CLI::Option *format_opt = nullptr, *pairs_opt = nullptr, *tie_opt = nullptr;
  CLI::Option *validation_opt = nullptr, *test_opt = nullptr;
};
}  // namespace

Runner add_import(CLI::App& app) {
  auto o = std::make_shared<ImportOptions>();
  app.add_option("--input,--csv", o->input,
                 "Input: a file (labels, responses, prism, multipref), or for "
                 "summarize-from-feedback a file or a folder of its comparisons/*.json")
      ->required();
  app.add_option("--layout", o->layout,
                 "labels: rows user,comparison,label[,split]; responses: rows "
                 "user,prompt,first,second,label[,split]; summarize-from-feedback, prism "
                 "(utterances.jsonl), multipref: the public sets' own files (docs/import.md)")
      ->check(one_of(io::kLayoutNames));
  o->format_opt =
      app.add_option("--format", o->format,
                     "labels and responses layouts: auto (JSON lines for names ending in .jsonl "
                     "or .ndjson, else CSV), csv or jsonl")
          ->check(one_of(io::kInputFormatNames));
  app.add_option("--embeddings", o->embeddings,
                 "HDF5 file with /ids (response ids, strings) and /embedding (one row per id, "
                 "float16/32/64): every response's row becomes /responses/embedding");
  app.add_option("--duplicates", o->duplicates,
                 "Two labels of one (user, comparison) in one split: an error, or averaged; "
                 "default error for --layout labels, mean for the response layouts")
      ->check(one_of(kDuplicatesNames));
  o->pairs_opt = app.add_option("--pairs", o->pairs,
                                "prism: chosen (the chosen response against each other of its "
                                "interaction) or scores (every two rated responses by score)")
                     ->check(one_of(io::kPrismPairsNames));
  o->tie_opt = app.add_option("--tie-band", o->tie_band,
                              "prism --pairs scores: scores that differ by at most this are a "
                              "tie (label 0.5)")
                   ->check(finite_number())
                   ->check(CLI::NonNegativeNumber);
  o->validation_opt =
      app.add_option("--validation-fraction", o->validation_fraction,
                     "Response layouts: the share of labels without a split of their own (prism, "
                     "multipref, responses rows without one) held out for validation, by user "
                     "and prompt")
          ->check(finite_number())
          ->check(CLI::Range(0.0, 1.0));
  o->test_opt = app.add_option("--test-fraction", o->test_fraction,
                               "Response layouts: the same for the test split")
                    ->check(finite_number())
                    ->check(CLI::Range(0.0, 1.0));
  app.add_option("--seed", o->seed,
                 "Seed of the held-out labels' hash (--validation-fraction, --test-fraction)");
  app.add_flag("--overwrite", o->overwrite, "Replace an existing output file");
  app.add_option("--out", o->out, "Output label file (HDF5)")->required();
  return [o](const mpi::Comm& comm) {
    io::ImportOptions io_options;
    // Options are checked identically on every rank; agree() makes the error collective.
    mpi::agree(comm, [&] {
      io::ImportOptions& x = io_options;
      x.input = o->input;
      x.layout = io::parse_layout(o->layout, "--layout");
      const bool rows = x.layout == io::Layout::kLabels || x.layout == io::Layout::kResponses;
      if (o->format_opt->count() && !rows)
        throw InputError(
            fmt::format("--format: only for --layout labels or responses (--layout "
                        "{} reads JSON lines)",
                        o->layout));
      if ((o->pairs_opt->count() || o->tie_opt->count()) && x.layout != io::Layout::kPrism)
        throw InputError(fmt::format("{}: only for --layout prism",
                                     o->pairs_opt->count() ? "--pairs" : "--tie-band"));
      if (o->tie_opt->count() && o->pairs != "scores")
        throw InputError("--tie-band: only with --pairs scores");
      x.read.format =
          rows ? io::resolve_input_format(o->input, io::parse_input_format(o->format, "--format"))
               : io::InputFormat::kJsonLines;
      x.read.pairs = io::parse_prism_pairs(o->pairs, "--pairs");
      x.read.tie_band = o->tie_band;
      const bool holdout = o->validation_opt->count() || o->test_opt->count();
      if (holdout && x.layout == io::Layout::kLabels)
        throw InputError(
            fmt::format("{}: only for the response layouts (--layout labels keeps "
                        "the split column)",
                        o->validation_opt->count() ? "--validation-fraction" : "--test-fraction"));
      if (holdout && x.layout == io::Layout::kSummarizeFromFeedback)
        throw InputError(
            fmt::format("{}: summarize-from-feedback gives every label its split "
                        "(train, valid1, valid2)",
                        o->validation_opt->count() ? "--validation-fraction" : "--test-fraction"));
      if (o->validation_fraction + o->test_fraction >= 1)
        throw InputError(
            fmt::format("--test-fraction: {} with --validation-fraction {} leaves "
                        "no training labels",
                        o->test_fraction, o->validation_fraction));
      x.read.validation_fraction = o->validation_fraction;
      x.read.test_fraction = o->test_fraction;
      x.read.seed = o->seed;
      x.duplicates = o->duplicates.empty() ? io::default_duplicates(x.layout)
                                           : parse_duplicates(o->duplicates);
      x.embeddings = o->embeddings;
      x.out = o->out;
      x.overwrite = o->overwrite;
    });
    log::info(
        comm, "importing {} (layout {}{}) into {}, {} MPI ranks", o->input, o->layout,
        io_options.layout == io::Layout::kLabels || io_options.layout == io::Layout::kResponses
            ? io_options.read.format == io::InputFormat::kCsv ? ", CSV" : ", JSON lines"
            : "",
        o->out, comm.size());
    const double t0 = log::seconds_since_start();
    const io::ImportSummary s = io::import_file(io_options, comm);
    const double seconds = log::seconds_since_start() - t0;
    if (s.merged)
      log::info(comm, "averaged {} repeated labels into earlier ones (--duplicates mean)",
                s.merged);
    if (s.flipped)
      log::info(comm, "{} labels were of a pair given in the other order (stored as 1 - label)",
                s.flipped);
    if (s.skipped) log::info(comm, "left out {}: {}", s.skipped, s.skipped_what);
    if (s.embedding_dim)
      log::info(comm, "embeddings: dimension {}, {}; {} rows of {} belong to no response (ignored)",
                s.embedding_dim, s.embedding_type, s.embeddings_unused, o->embeddings);
    if (io_options.layout == io::Layout::kLabels)
      log::info(comm,
                "wrote {} users, {} comparisons, {} train / {} validation / {} test labels "
                "from {} lines to {} in {:.2f} s",
                s.users, s.comparisons, s.labels[0], s.labels[1], s.labels[2], s.lines, o->out,
                seconds);
    else
      log::info(comm,
                "wrote {} users, {} prompts, {} responses, {} comparisons, {} train / {} "
                "validation / {} test labels from {} lines of {} file{} to {} in {:.2f} s",
                s.users, s.prompts, s.responses, s.comparisons, s.labels[0], s.labels[1],
                s.labels[2], s.lines, s.files, s.files == 1 ? "" : "s", o->out, seconds);
    return 0;
  };
}

}  // namespace pref::cli
