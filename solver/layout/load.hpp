#pragma once
// Loading a split of a label file onto the ranks (the subcommands share it).
#include <optional>
#include <string>

#include "io/label_file.hpp"
#include "solver/layout/distribute.hpp"

namespace pref {

struct LoadOptions {
  Duplicates duplicates = Duplicates::kError;
  bool drop_ties = false;
  // Every value must be 0, 0.5 or 1 (pref types' ordinal model, solver/newton/ordinal.hpp): another
  // is a collective InputError naming the file, the dataset, the smallest row and the value.
  bool categorical = false;
};

// Reads, validates and distributes one split. With parts == nullopt, the partitions are balanced
// on this split's labels and returned through the matrix. Collective.
LabelMatrix load_split(const io::LabelFile& file, io::Split split, const mpi::Comm& comm,
                       const std::optional<Partitions>& parts, const LoadOptions& opt);

}  // namespace pref
