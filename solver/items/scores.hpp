#pragma once
// `pref score` (docs/format.md, "Scores"): the base rewards phi of a label file's responses under
// a model fit with --items responses (phi_r = the fit's factor of response r) or --items
// embeddings (phi_r = W^T e_r over the file's /responses/embedding, plus the fit's residual d_r
// for the fit's own responses with `residual`), and personalized rewards u . phi_r for the
// model's fitted users or for the new users of a `pref adapt` output: every score, or each
// prompt's best response (best-of-N). Scoring is the item model's map from parameters to base
// rewards applied to responses, which is why it lives beside the item models.
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "io/adapted_file.hpp"
#include "io/label_file.hpp"
#include "io/model_file.hpp"
#include "solver/base/mpi.hpp"
#include "solver/items/items.hpp"

namespace pref {

struct ScoreJob {
  std::string model, responses, adapted;  // adapted: "" scores the model's fitted users
  // The fitted users [first, end) (end = UINT64_MAX: to the last); nullopt: all of them.
  std::optional<std::pair<std::uint64_t, std::uint64_t>> users;
  bool best = false;      // each prompt's best response instead of every score
  bool residual = false;  // add the fit's residuals (fit --items embeddings --residual)
};

// The job's files, opened and checked against each other: the model's item parameters (finite),
// the responses' structure and embedding dimension, the adapted file's rank and its identity (it
// must come from this model: io/provenance.hpp), the users' range. Every failure is a collective
// InputError naming the files and options. Collective.
struct ScoreInputs {
  io::ModelHeader header;
  Items items = Items::kComparisons;
  std::uint64_t param_rows = 0, residual_rows = 0;
  std::vector<double> params, residual;  // W (d x J) or Phi (R x J); D (residual_rows x J)
  std::optional<io::LabelFile> responses;
  std::optional<io::AdaptedFile> adapted;
  std::uint64_t first_user = 0, users = 0;  // the rows of the weights scored
};
ScoreInputs open_score_inputs(const mpi::Comm& comm, const ScoreJob& job);

// Computes phi, then the users' rewards in blocks of about 2^22 scores per rank, and writes the
// scores file at `path` (io/scores_file.hpp). Bitwise the same for the same rank count; the
// best response is the highest reward, the lowest id on a tie, and NaN never wins. Collective.
void write_scores(const mpi::Comm& comm, const ScoreInputs& in, const ScoreJob& job,
                  const std::string& path);

}  // namespace pref
