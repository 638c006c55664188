#pragma once
// The layout of a generated population file (docs/format.md, "Ground truth", "New users" and
// "Responses"): a label file (io/label_file.hpp) with /generator, /truth and /new_users/truth.
// This writer knows every dataset of that layout and nothing of how a population is drawn:
// solver/synthetic/population_file.cpp draws the rows batch by batch and hands them here.
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "io/hdf5.hpp"
#include "io/label_file.hpp"
#include "solver/base/labels.hpp"
#include "solver/base/mpi.hpp"

namespace pref::io {

// What a population file holds, in counts.
struct PopulationLayout {
  std::uint64_t users = 0, comparisons = 0;
  std::uint32_t rank = 0;  // columns of the true factors
  // Labels per training user in each split (a split with 0 is not created).
  std::uint64_t train_answers = 0, validation_answers = 0, test_answers = 0;
  std::uint64_t new_users = 0, new_user_answers = 0;
  bool typed = false;  // users have a type: /truth/user_type, /new_users/truth/user_type
  // The response structure (a version-2 file) when responses > 0.
  std::uint64_t responses = 0, prompts = 0, embedding_dim = 0;
  std::uint32_t response_attributes = 0;  // columns of /truth/response_attributes
};

// /generator's attributes, in the order given, each with its HDF5 type (uint32, uint64,
// float64 or a string): the documented types of docs/format.md.
using GeneratorValue = std::variant<std::uint32_t, std::uint64_t, double, std::string>;
using GeneratorAttributes = std::vector<std::pair<std::string, GeneratorValue>>;

class PopulationWriter {
 public:
  // Creates the file at `path` (normally AtomicOutput::temp_path()) with every dataset of the
  // layout and /generator's attributes. Collective.
  PopulationWriter(const std::string& path, const mpi::Comm& comm, const PopulationLayout& layout,
                   const GeneratorAttributes& generator);

  // Every call below is collective: each rank passes its own rows, possibly none.
  // Rows [p0, p0 + z.size() / rank) of /truth/comparison_factors (row-major).
  void write_comparison_factors(std::uint64_t p0, std::span<const float> z);
  // Rows [r0, r0 + prompt.size()) of /responses (prompt, embedding: rows x embedding_dim) and of
  // /truth/response_attributes (rows x response_attributes).
  void write_responses(std::uint64_t r0, std::span<const std::uint32_t> prompt,
                       std::span<const float> embedding, std::span<const float> attributes);
  // Rows [p0, p0 + first.size()) of /comparisons/{first,second}.
  void write_pairs(std::uint64_t p0, std::span<const std::uint32_t> first,
                   std::span<const std::uint32_t> second);
  // Rows [k0, k0 + m.size() / embedding_dim) of /truth/embedding_map.
  void write_embedding_map(std::uint64_t k0, std::span<const float> m);
  // Users [u0, u0 + n) of the training population (new_users false) or of the new users: their
  // labels, user-major with a fixed count per user (splits[0..2]: train, validation, test; for
  // new users splits[0] only), true weights (n x rank) and, when typed, types. Returns the
  // labels this rank wrote.
  std::uint64_t write_users(bool new_users, std::uint64_t u0, std::uint64_t n,
                            std::span<const LabelColumns> splits, std::span<const float> weights,
                            std::span<const std::int16_t> types);
  // Flushes and closes; errors (e.g. a full disk) are reported here, on every rank.
  void close();

  const std::string& path() const { return labels_.path(); }

 private:
  struct Truth {
    h5::Handle weights, types;
  };
  PopulationLayout layout_;
  mpi::Comm comm_;
  LabelFileWriter labels_;
  h5::Handle truth_, new_truth_;
  h5::Handle comparison_factors_, response_attributes_, embedding_map_;
  Truth users_, new_users_;
};

}  // namespace pref::io
