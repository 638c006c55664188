#pragma once
// The discrete-types file written by `pref types` (docs/format.md, "Discrete types"):
//   /                     attrs format="pref-types", format_version=1, comparisons (M), rank (J),
//                         K (atoms), users (training users assigned), rounds, seed, r, s, a (the
//                         ordinal label model), objective (the final L), model, data (sources),
//                         model_checksum, data_checksum (their identity, io/provenance.hpp),
//                         mpi_ranks
//   /comparison_factors   M x J float64   Z refit under the ordinal model
//   /atoms                K x J float64   the types' weights a_k
//   /atom_weights         K float64       share of the training users assigned to each atom
//   /objective            rounds + 2 float64: L at the start, after step (0), after each round
// Every rank holds all of it (it is small: (M + K) x J).
#include <cstdint>
#include <string>
#include <vector>

#include "io/pref_file.hpp"
#include "io/provenance.hpp"
#include "solver/base/mpi.hpp"

namespace pref::io {

inline constexpr FileKind kTypesFile{"pref-types", "types file", 1};
// Bounds on what a types file may declare (pref types writes far less), so that a damaged file
// cannot ask for absurd allocations.
inline constexpr std::uint32_t kMaxTypesRank = 4096, kMaxAtoms = 1u << 20;

struct TypesData {
  std::uint64_t comparisons = 0, users = 0;
  std::uint32_t rank = 0, K = 0, rounds = 0;
  std::uint64_t seed = 0;
  double r = 0, s = 0, a = 0, objective = 0;
  std::string model, data;
  // Cross-file identity (io/provenance.hpp): hex checksums of the model's comparison factors and
  // of the training labels; "" in files written before they were recorded.
  std::string model_checksum, data_checksum;
  std::vector<double> Z, atoms, atom_weights, history;

  Provenance provenance() const { return {model, model_checksum, data, data_checksum}; }
};

// Collective; every rank passes the same (replicated) data.
void write_types(const std::string& path, const mpi::Comm& comm, const TypesData& t);
// Collective: opens and validates (errors name the file and `option`), reads everything; a
// value that is not finite is an InputError naming the dataset and the row.
TypesData read_types(const std::string& path, const mpi::Comm& comm,
                     const std::string& option = "--types");

}  // namespace pref::io
