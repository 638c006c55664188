#pragma once
// What the fuzz targets do with one input, shared by the libFuzzer binaries (fuzz_*.cpp, built
// with -DPREF_FUZZ=ON and clang) and by test_fuzz_regressions (every build), which feeds them
// the seed corpus and the inputs that once failed (tests/fuzz/regressions/<target>/).
//
// An input may be rejected, as an InputError or a CLI11 parse error; anything else (another
// exception, a crash, a sanitizer report, or a result that breaks the checks below) is a bug.
// None of it needs MPI_Init: the parsers run before any communication.
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "io/import.hpp"
#include "io/label_file.hpp"
#include "solver/base/error.hpp"
#include "solver/cli/commands.hpp"
#include "solver/cli/data.hpp"

namespace pref::fuzz {

// A broken promise of a parser's result: report it and crash, so libFuzzer keeps the input.
#define PREF_FUZZ_EXPECT(cond)                                                           \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)

// The response layouts' parser (io/import_responses.cpp) on the file at `path`: what the label
// file writer relies on.
inline void import_responses_one(const std::string& path, io::Layout layout,
                                 const io::ResponseOptions& o) {
  io::ResponseLabelTable t;
  try {
    t = io::read_response_labels(path, layout, o);
  } catch (const InputError&) {
    return;
  }
  PREF_FUZZ_EXPECT(t.users.size >= 1 && t.prompts.size >= 1 && t.responses.size >= 2);
  for (const io::IdTable* ids : {&t.users, &t.prompts, &t.responses}) {
    PREF_FUZZ_EXPECT(ids->width >= 1);
    PREF_FUZZ_EXPECT(ids->chars.size() == ids->size * ids->width);
    for (std::uint64_t k = 0; k < ids->size; ++k) PREF_FUZZ_EXPECT(!ids->id(k).empty());
  }
  PREF_FUZZ_EXPECT(t.response_prompt.size() == t.responses.size);
  PREF_FUZZ_EXPECT(t.response_where.size() == t.responses.size);
  for (std::uint32_t q : t.response_prompt) PREF_FUZZ_EXPECT(q < t.prompts.size);
  PREF_FUZZ_EXPECT(t.first.size() == t.second.size() && !t.first.empty());
  for (std::size_t p = 0; p < t.first.size(); ++p) {
    PREF_FUZZ_EXPECT(t.first[p] < t.responses.size && t.second[p] < t.responses.size);
    PREF_FUZZ_EXPECT(t.first[p] != t.second[p]);
    PREF_FUZZ_EXPECT(t.response_prompt[t.first[p]] == t.response_prompt[t.second[p]]);
  }
  PREF_FUZZ_EXPECT(t.splits[0].size() >= 1);
  for (const LabelColumns& s : t.splits)
    for (std::size_t i = 0; i < s.size(); ++i) {
      PREF_FUZZ_EXPECT(s.user[i] < t.users.size);
      PREF_FUZZ_EXPECT(s.comparison[i] < t.first.size());
      PREF_FUZZ_EXPECT(std::isfinite(s.value[i]) && s.value[i] >= 0.0f && s.value[i] <= 1.0f);
    }
  if (o.duplicates == Duplicates::kError) PREF_FUZZ_EXPECT(t.merged == 0);
}

// The import parsers (io/import.cpp, io/import_responses.cpp). The first byte picks the format
// (bit 0: JSON lines, else CSV), the duplicate policy (bit 1: mean, else error) and the layout
// (bits 2-4: 1 responses, 2 summarize-from-feedback, 3 prism, 4 prism --pairs scores,
// 5 multipref, else labels); the rest is the file.
inline void import_one(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return;
  const std::uint8_t mode = data[0];
  static const std::string path = "/tmp/pref-fuzz-import." + std::to_string(::getpid());
  {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    PREF_FUZZ_EXPECT(f != nullptr);
    PREF_FUZZ_EXPECT(std::fwrite(data + 1, 1, size - 1, f) == size - 1);
    PREF_FUZZ_EXPECT(std::fclose(f) == 0);
  }
  const auto format = mode & 1 ? io::InputFormat::kJsonLines : io::InputFormat::kCsv;
  const auto duplicates = mode & 2 ? Duplicates::kMean : Duplicates::kError;
  const int layout = (mode >> 2) & 7;
  if (layout >= 1 && layout <= 5) {
    io::ResponseOptions o;
    o.format = format;
    o.duplicates = duplicates;
    o.pairs = layout == 4 ? io::PrismPairs::kScores : io::PrismPairs::kChosen;
    const io::Layout l = layout == 1   ? io::Layout::kResponses
                         : layout == 2 ? io::Layout::kSummarizeFromFeedback
                         : layout == 5 ? io::Layout::kMultiPref
                                       : io::Layout::kPrism;
    import_responses_one(path, l, o);
    return;
  }
  io::LabelTable t;
  try {
    t = io::read_label_table(path, format, duplicates);
  } catch (const InputError&) {
    return;
  }
  // What the label file writer relies on.
  PREF_FUZZ_EXPECT(t.users.size >= 1 && t.comparisons.size >= 1);
  for (const io::IdTable* ids : {&t.users, &t.comparisons}) {
    PREF_FUZZ_EXPECT(ids->width >= 1);
    PREF_FUZZ_EXPECT(ids->chars.size() == ids->size * ids->width);
    for (std::uint64_t k = 0; k < ids->size; ++k) PREF_FUZZ_EXPECT(!ids->id(k).empty());
  }
  PREF_FUZZ_EXPECT(t.splits[0].size() >= 1);  // a train label
  std::uint64_t labels = 0;
  for (const LabelColumns& s : t.splits) {
    PREF_FUZZ_EXPECT(s.user.size() == s.size() && s.comparison.size() == s.size() &&
                     s.value.size() == s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
      PREF_FUZZ_EXPECT(s.user[i] < t.users.size);
      PREF_FUZZ_EXPECT(s.comparison[i] < t.comparisons.size);
      PREF_FUZZ_EXPECT(std::isfinite(s.value[i]) && s.value[i] >= 0.0f && s.value[i] <= 1.0f);
    }
    labels += s.size();
  }
  PREF_FUZZ_EXPECT(labels + t.merged <= t.lines);  // one label per line at most
  if (duplicates == Duplicates::kError) PREF_FUZZ_EXPECT(t.merged == 0);
}

// The option parsers: each line of the input is one command-line argument of `pref`, parsed by
// the real command line (CLI11 with every subcommand's options; nothing runs), and each is also
// given to pref's own text parsers (counts, split names, formats, duplicate policies).
inline void options_one(const std::uint8_t* data, std::size_t size) {
  std::vector<std::string> args = {"pref"};
  std::string cur;
  for (std::size_t i = 0; i < size; ++i) {
    if (data[i] == '\n') {
      args.push_back(cur);
      cur.clear();
    } else {
      cur += static_cast<char>(data[i]);
    }
  }
  if (!cur.empty()) args.push_back(cur);
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    try {
      const std::uint64_t v = cli::parse_count(a, "--count");
      // A count reads back as itself when written out plainly.
      PREF_FUZZ_EXPECT(cli::parse_count(std::to_string(v), "--count") == v);
    } catch (const InputError&) {
    }
    try {
      const io::Split s = io::parse_split(a, "--split");
      PREF_FUZZ_EXPECT(io::split_name(s) == a);
    } catch (const InputError&) {
    }
    try {
      io::parse_input_format(a, "--format");
    } catch (const InputError&) {
    }
    try {
      const io::Layout l = io::parse_layout(a, "--layout");
      PREF_FUZZ_EXPECT(io::layout_name(l) == a);
    } catch (const InputError&) {
    }
    cli::parse_duplicates(a);
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  cli::CommandLine cl;
  try {
    cl.app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::ParseError&) {
  }
}

}  // namespace pref::fuzz
