#pragma once
// What the fuzz targets do with one input, shared by the libFuzzer binaries (fuzz_*.cpp, built
// with -DPREF_FUZZ=ON and clang) and by test_fuzz_regressions (every build), which feeds them
// the seed corpus and the inputs that once failed (tests/fuzz/regressions/<target>/).
//
// An input may be rejected, as an InputError or a CLI11 parse error; anything else (another
// exception, a crash, a sanitizer report, or a result that breaks the checks below) is a bug.
// The parsers need no MPI_Init (they run before any communication); the file readers
// (files_one) initialize MPI once, as a singleton process, and read over MPI_COMM_SELF.
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "io/adapted_file.hpp"
#include "io/checkpoint_file.hpp"
#include "io/import.hpp"
#include "io/label_file.hpp"
#include "io/model_file.hpp"
#include "io/scores_file.hpp"
#include "io/types_file.hpp"
#include "solver/base/error.hpp"
#include "solver/base/mpi.hpp"
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
      PREF_FUZZ_EXPECT(kDuplicatesNames.name(cli::parse_duplicates(a)) == a);
    } catch (const InputError&) {
    }
    try {
      const io::Layout l = io::parse_layout(a, "--layout");
      PREF_FUZZ_EXPECT(io::layout_name(l) == a);
    } catch (const InputError&) {
    }
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  cli::CommandLine cl;
  try {
    cl.app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::ParseError&) {
  }
}

// The readers of pref's HDF5 files: the first byte picks the kind (model, types, adapted, scores,
// label or checkpoint file, modulo 6), the rest is the file, read as the commands read it. A
// damaged file must be refused as bad input (an InputError: exit code 2), never crash, hang, or
// end in another error (exit code 1). The seed corpus (corpus/files/) holds small valid files
// of each kind, which libFuzzer damages byte by byte.
inline void ensure_mpi() {
  static const bool once = [] {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      MPI_Init(nullptr, nullptr);
      std::atexit([] {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (!finalized) MPI_Finalize();
      });
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    io::init_io();
    return true;
  }();
  (void)once;
}

inline void read_file_as(int kind, const std::string& path, const mpi::Comm& comm) {
  switch (kind) {
    case 0: {  // model: what evaluate, adapt, types and score read
      const io::ModelHeader hd = io::read_model_header(path, comm);
      io::read_model(path, comm, Partition::uniform(hd.users, 1),
                     Partition::uniform(hd.comparisons, 1));
      io::read_model_attributes(path, comm, {"items", "residual", "data", "prior"});
      io::model_comparison_checksum(path, comm, hd);
      for (const char* d : {"response_factors", "embedding_head", "embedding_residual"}) {
        std::uint64_t rows = 0;
        if (hd.has(d)) io::read_model_matrix(path, comm, d, hd.rank, &rows);
      }
      return;
    }
    case 1:
      io::read_types(path, comm);
      return;
    case 2: {
      const io::AdaptedFile a = io::open_adapted(path, comm);
      io::read_adapted_weights(a, 0, a.users, comm);
      return;
    }
    case 3: {
      const io::ScoresFile s = io::open_scores(path, comm);
      std::vector<std::uint32_t> best;
      std::vector<float> score;
      if (s.header.best)
        io::read_best(s, 0, s.header.users, best, score, comm);
      else
        io::read_scores(s, 0, s.header.users, comm);
      return;
    }
    case 4: {
      const io::LabelFile f = io::LabelFile::open(path, comm);
      for (io::Split s : io::kAllSplits)
        if (f.has(s)) f.read(s, comm);
      f.check_embedding(comm);
      f.generator(comm);
      if (f.has_truth()) {
        std::uint64_t cols = 0;
        f.read_truth("user_weights", f.users(), 0, f.users(), &cols, comm);
        f.read_truth("comparison_factors", f.comparisons(), 0, f.comparisons(), &cols, comm);
      }
      return;
    }
    default: {
      // A checkpoint is read with the partitions of the data it is for; read its header's.
      const io::Checkpoint ck =
          io::read_checkpoint(path, comm, Partition::uniform(0, 1), Partition::uniform(0, 1));
      io::read_checkpoint(path, comm, Partition::uniform(ck.header.users, 1),
                          Partition::uniform(ck.header.comparisons, 1));
      return;
    }
  }
}

inline void files_one(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return;
  ensure_mpi();
  static const std::string path = "/tmp/pref-fuzz-files." + std::to_string(::getpid()) + ".h5";
  {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    PREF_FUZZ_EXPECT(f != nullptr);
    PREF_FUZZ_EXPECT(std::fwrite(data + 1, 1, size - 1, f) == size - 1);
    PREF_FUZZ_EXPECT(std::fclose(f) == 0);
  }
  const mpi::Comm self = mpi::Comm::self();
  try {
    read_file_as(data[0] % 6, path, self);
  } catch (const InputError&) {
  } catch (const Error& e) {
    std::fprintf(stderr, "fuzz: not an input error: %s\n", e.what());
    std::abort();
  }
  std::remove(path.c_str());
}

}  // namespace pref::fuzz
