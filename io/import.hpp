#pragma once
// Importing labels with arbitrary string ids into a label file (docs/import.md).
//
// Layouts (--layout):
//   labels                   CSV or JSON lines of (user, comparison, label[, split]): a version-1
//                            file with /ids/users and /ids/comparisons;
//   responses                CSV or JSON lines of (user, prompt, first, second, label[, split]):
//                            a version-2 file (/responses, /comparisons) whose comparisons are
//                            pairs of responses of one prompt, with /ids/users, /ids/prompts and
//                            /ids/responses;
//   summarize-from-feedback, prism, multipref
//                            the public sets' own files, read into the same response structure.
// With --embeddings EMB.h5 (/ids, /embedding) every response gets its row of EMB.h5 as
// /responses/embedding, copied in a streaming pass by all ranks.
//
// Rank 0 reads and checks the whole text input: ids become dense ints in order of first
// appearance, so the same input always gives the same file. Every rank takes part in the
// collective writes (and in copying embeddings).
#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "io/label_file.hpp"
#include "solver/base/enum_names.hpp"
#include "solver/base/labels.hpp"
#include "solver/base/mpi.hpp"

namespace pref::io {

enum class InputFormat { kAuto, kCsv, kJsonLines };
inline constexpr EnumNames<InputFormat, 3> kInputFormatNames{
    {{{InputFormat::kAuto, "auto"},
      {InputFormat::kCsv, "csv"},
      {InputFormat::kJsonLines, "jsonl"}}}};
// "auto" | "csv" | "jsonl" (kInputFormatNames); throws InputError naming `option`.
InputFormat parse_input_format(const std::string& name, const std::string& option);
// kAuto becomes kJsonLines for a name ending in .jsonl or .ndjson, else kCsv.
InputFormat resolve_input_format(const std::string& path, InputFormat format);

enum class Layout { kLabels, kResponses, kSummarizeFromFeedback, kPrism, kMultiPref };
// The names of --layout, in Layout order.
inline constexpr EnumNames<Layout, 5> kLayoutNames{
    {{{Layout::kLabels, "labels"},
      {Layout::kResponses, "responses"},
      {Layout::kSummarizeFromFeedback, "summarize-from-feedback"},
      {Layout::kPrism, "prism"},
      {Layout::kMultiPref, "multipref"}}}};
// One of kLayoutNames; throws InputError naming `option`.
Layout parse_layout(const std::string& name, const std::string& option);
const char* layout_name(Layout l);

// PRISM's pairs (--pairs): the chosen response against each other response of its interaction,
// or every two rated responses of an interaction by their scores.
enum class PrismPairs { kChosen, kScores };
inline constexpr EnumNames<PrismPairs, 2> kPrismPairsNames{
    {{{PrismPairs::kChosen, "chosen"}, {PrismPairs::kScores, "scores"}}}};
PrismPairs parse_prism_pairs(const std::string& name, const std::string& option);

// The splits an import can fill, in file order of the output.
inline constexpr std::array<Split, 3> kImportSplits = {Split::kTrain, Split::kValidation,
                                                       Split::kTest};

// One id map: id k is the string at [k * width, (k + 1) * width) of `chars`, NUL-padded
// (the layout of a fixed-length HDF5 string dataset).
struct IdTable {
  std::uint64_t size = 0;
  std::size_t width = 1;
  std::vector<char> chars;
  std::string id(std::uint64_t k) const;
};

// An input file of the labels layout read into memory and checked.
struct LabelTable {
  IdTable users, comparisons;
  std::array<LabelColumns, 3> splits;  // kImportSplits order, rows in input order
  std::uint64_t lines = 0;             // lines read, including a header and blank lines
  std::uint64_t merged = 0;            // labels folded into an earlier one (--duplicates mean)
};

// Reads and checks `path` (the labels layout) serially. Every problem is an InputError naming the
// file, the 1-based line and the offending value. progress(lines) is called every few million
// lines.
LabelTable read_label_table(const std::string& path, InputFormat format, Duplicates duplicates,
                            const std::function<void(std::uint64_t)>& progress = {});

// What the response layouts read besides the layout itself.
struct ResponseOptions {
  InputFormat format = InputFormat::kAuto;  // the responses layout: CSV or JSON lines
  Duplicates duplicates = Duplicates::kMean;
  PrismPairs pairs = PrismPairs::kChosen;
  double tie_band = 5;  // --pairs scores: scores that differ by at most this are a tie
  // Labels whose input gives no split (prism, multipref, responses rows without one) go to
  // validation and test with these probabilities, by a hash of (seed, user, prompt).
  double validation_fraction = 0, test_fraction = 0;
  std::uint64_t seed = 1;
};

// An input of a response layout read into memory and checked: comparison p pairs responses
// first[p] and second[p] of one prompt (a label of 1 prefers first[p]); responses are numbered
// in order of first appearance, each with its prompt. A response is named by its id within its
// prompt: the same id under two prompts is two responses (both named by that id).
struct ResponseLabelTable {
  IdTable users, prompts, responses;
  std::vector<std::uint32_t> response_prompt;  // R
  std::vector<std::uint64_t> response_where;   // R: where the response first appears (messages)
  std::vector<std::uint32_t> first, second;    // M
  std::array<LabelColumns, 3> splits;          // kImportSplits order, rows in input order
  std::vector<std::string> files;              // the files read, in order
  std::uint64_t lines = 0;                     // lines read in all files
  std::uint64_t merged = 0;                    // labels folded into an earlier one
  std::uint64_t flipped = 0;  // labels of a pair given in the other order (label 1 - y)
  // What the layout left out on purpose, e.g. PRISM interactions with one response: a count and
  // what it counts (empty when nothing).
  std::uint64_t skipped = 0;
  std::string skipped_what;
  // Where response r first appears, for messages ("FILE: line N").
  std::string where(std::uint64_t r) const;
};

// Reads and checks the input of a response layout serially: `path` is a file, or for
// summarize-from-feedback a folder whose *.json and *.jsonl files are read in name order.
// Every problem is an InputError naming the file, the line and the field or value.
ResponseLabelTable read_response_labels(const std::string& path, Layout layout,
                                        const ResponseOptions& options,
                                        const std::function<void(std::uint64_t)>& progress = {});

struct ImportOptions {
  std::string input;
  Layout layout = Layout::kLabels;
  ResponseOptions read;  // format, pairs, tie band (and duplicates: see below)
  Duplicates duplicates = Duplicates::kError;
  std::string embeddings;  // --embeddings EMB.h5 (response layouts only); empty: none
  std::string out;
  bool overwrite = false;
};

// The default --duplicates of a layout: error for labels (a repeated row is a mistake there),
// mean for the response layouts (the public sets have workers who labelled a pair twice, and
// a pair in the other order is the same comparison).
Duplicates default_duplicates(Layout l);

struct ImportSummary {
  std::uint64_t users = 0, comparisons = 0, lines = 0, merged = 0;
  std::array<std::uint64_t, 3> labels{};  // kImportSplits order
  std::uint64_t files = 1;
  // Response layouts.
  std::uint64_t prompts = 0, responses = 0, flipped = 0, skipped = 0;
  std::string skipped_what;
  // --embeddings: the dimension, the embeddings' type ("float16", ...) and the rows of EMB.h5
  // that no response uses (ignored).
  std::uint64_t embedding_dim = 0, embeddings_unused = 0;
  std::string embedding_type;
};

// Collective. Reads `o.input` on rank 0 and writes the label file `o.out` (atomically: an
// existing file is replaced only with o.overwrite, and only once the new one is complete).
// Input errors are collective InputErrors, so every rank fails the same way and nothing is
// written.
ImportSummary import_file(const ImportOptions& o, const mpi::Comm& comm);

// The labels layout (kept for callers of the first importer).
ImportSummary import_labels(const std::string& input, InputFormat format, Duplicates duplicates,
                            const std::string& out, bool overwrite, const mpi::Comm& comm);

}  // namespace pref::io
