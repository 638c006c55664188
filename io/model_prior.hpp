#pragma once
// What `pref adapt` reads from a model file beyond its header (io/model_file.hpp, which reads
// and checks the stored population prior): any rows of the factor datasets.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "solver/base/mpi.hpp"

namespace pref::io {

// Collective. Rows [row0, row0 + rows) of /user_factors or /comparison_factors (J columns);
// ranks may ask for overlapping ranges (e.g. all of them for Z). A value that is not finite is an
// InputError naming the file, the dataset and the row.
std::vector<double> read_model_rows(const std::string& path, const mpi::Comm& comm,
                                    const std::string& dataset, std::uint64_t row0,
                                    std::uint64_t rows, std::uint32_t J);

}  // namespace pref::io
