#pragma once
// The discrete-types file written by `pref types` (docs/format.md, "Discrete types"):
//   /                     attrs format="pref-types", format_version=1, comparisons (M), rank (J),
//                         K (atoms), users (training users assigned), rounds, seed, r, s, a (the
//                         ordinal label model), objective (the final L), model, data (sources),
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
#include "solver/base/mpi.hpp"

namespace pref::io {

inline constexpr FileKind kTypesFile{"pref-types", "types file", 1};

struct TypesData {
  std::uint64_t comparisons = 0, users = 0;
  std::uint32_t rank = 0, K = 0, rounds = 0;
  std::uint64_t seed = 0;
  double r = 0, s = 0, a = 0, objective = 0;
  std::string model, data;
  std::vector<double> Z, atoms, atom_weights, history;
};

// Collective; every rank passes the same (replicated) data.
void write_types(const std::string& path, const mpi::Comm& comm, const TypesData& t);
// Collective: opens and validates (errors name the file and `option`), reads everything.
TypesData read_types(const std::string& path, const mpi::Comm& comm,
                     const std::string& option = "--types");

}  // namespace pref::io
