#pragma once
// Importing labels with arbitrary string ids (CSV or JSON lines) into a label file
// (docs/import.md).
//
// Rank 0 reads and checks the whole input: ids become dense ints in order of first appearance,
// so the same input always gives the same file. The other ranks only take part in the
// collective writes. The id maps are stored as /ids/users and /ids/comparisons.
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

// An input file read into memory and checked.
struct LabelTable {
  IdTable users, comparisons;
  std::array<LabelColumns, 3> splits;  // kImportSplits order, rows in input order
  std::uint64_t lines = 0;             // lines read, including a header and blank lines
  std::uint64_t merged = 0;            // labels folded into an earlier one (--duplicates mean)
};

// Reads and checks `path` serially. Every problem is an InputError naming the file, the
// 1-based line and the offending value. progress(lines) is called every few million lines.
LabelTable read_label_table(const std::string& path, InputFormat format, Duplicates duplicates,
                            const std::function<void(std::uint64_t)>& progress = {});

struct ImportSummary {
  std::uint64_t users = 0, comparisons = 0, lines = 0, merged = 0;
  std::array<std::uint64_t, 3> labels{};  // kImportSplits order
};

// Collective. Reads `input` on rank 0 and writes the label file `out` (atomically: an existing
// file is replaced only with overwrite, and only once the new one is complete). Input errors
// are collective InputErrors, so every rank fails the same way.
ImportSummary import_labels(const std::string& input, InputFormat format, Duplicates duplicates,
                            const std::string& out, bool overwrite, const mpi::Comm& comm);

}  // namespace pref::io
