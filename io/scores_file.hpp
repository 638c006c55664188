#pragma once
// The scores file written by `pref score` (docs/format.md, "Scores"):
//   /             attrs format="pref-scores", format_version=1, users (n), first_user, responses
//                 (R), prompts (P), rank (J), items, residual_responses, model, responses_file,
//                 source ("fitted" | "adapted"), adapted (the adapted file, with source adapted)
//   /scores       n x R float32: user first_user + i's reward u . phi(r) of response r
//   or, with --best-of-N:
//   /best         n x P uint32: each user's best response of each prompt (the highest reward,
//                 the lowest id on a tie; 0xFFFFFFFF for a prompt without responses)
//   /best_score   n x P float32: its reward (NaN for a prompt without responses)
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "io/hdf5.hpp"
#include "io/pref_file.hpp"
#include "solver/base/mpi.hpp"

namespace pref::io {

inline constexpr FileKind kScoresFile{"pref-scores", "scores file", 1};
// /best of a prompt without responses.
inline constexpr std::uint32_t kNoResponse = 0xFFFFFFFFu;

struct ScoresHeader {
  std::uint64_t users = 0, first_user = 0, responses = 0, prompts = 0, residual_responses = 0;
  std::uint32_t rank = 0;
  std::string items, model, responses_file, source, adapted;  // adapted: "" unless source adapted
  bool best = false;  // /best and /best_score instead of /scores
};

// Writes a scores file collectively: the header and datasets at construction, rows by blocks
// (every rank its own rows, in rounds every rank joins), then close().
class ScoresWriter {
 public:
  ScoresWriter(const std::string& path, const mpi::Comm& comm, const ScoresHeader& header);
  // Rows [row0, row0 + rows) of /scores (rows x R values). Collective.
  void write_scores(std::uint64_t row0, std::uint64_t rows, std::span<const float> scores);
  // Rows [row0, row0 + rows) of /best and /best_score (rows x P values each). Collective.
  void write_best(std::uint64_t row0, std::uint64_t rows, std::span<const std::uint32_t> best,
                  std::span<const float> best_score);
  // Flushes and closes; a failed write is an IoError naming the file. Collective.
  void close();

 private:
  std::string path_;
  mpi::Comm comm_;
  h5::Handle file_, scores_, best_, best_score_;
};

// A scores file as read back: the header, and rows of its datasets.
struct ScoresFile {
  std::string path;
  ScoresHeader header;
  h5::Handle file;
};
// Collective: opens and validates (format, attributes, the datasets' shapes).
ScoresFile open_scores(const std::string& path, const mpi::Comm& comm,
                       const std::string& option = {});
// Collective: rows [row0, row0 + rows) of /scores, or of /best and /best_score.
std::vector<float> read_scores(const ScoresFile& f, std::uint64_t row0, std::uint64_t rows,
                               const mpi::Comm& comm);
void read_best(const ScoresFile& f, std::uint64_t row0, std::uint64_t rows,
               std::vector<std::uint32_t>& best, std::vector<float>& best_score,
               const mpi::Comm& comm);

}  // namespace pref::io
