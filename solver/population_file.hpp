#pragma once
// The generator's output: a Population (solver/population.hpp) written as a label file with its
// ground truth and new users (docs/format.md) through io::LabelFileWriter. Kept apart from the
// generation itself, which knows no files; it stays in solver/ because it draws the labels
// batch by batch from the Population while writing (io/ sits below the solver and knows no
// model).
#include <cstdint>
#include <string>

#include "solver/base/mpi.hpp"
#include "solver/population.hpp"

namespace pref {

// Generates the population and writes it as a label file (with truth and new users) to `path`,
// collectively. Progress on rank 0.
struct GenerateStats {
  std::uint64_t labels = 0;  // all splits, including new users
  double seconds = 0;
};
GenerateStats write_population(const Population& pop, const std::string& path,
                               const mpi::Comm& comm);

}  // namespace pref
