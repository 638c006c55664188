#pragma once
// The generator's output: a Population (solver/synthetic/population.hpp) drawn batch by batch and
// handed to io::PopulationWriter (io/population_writer.hpp), which knows the file's layout
// (docs/format.md). The generation knows no files and the writer knows no model.
#include <cstdint>
#include <string>

#include "solver/base/mpi.hpp"
#include "solver/synthetic/population.hpp"

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
