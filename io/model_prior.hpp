#pragma once
// What `pref adapt` reads from a model file beyond its header (io/model_file.hpp): the stored
// population prior and any rows of the factor datasets.
//   /prior             group, attribute kind = "population"
//   /prior/mean        J float64
//   /prior/covariance  J x J float64, row-major
// (the contract of the fit's population prior; models without it are ridge fits.)
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "solver/base/mpi.hpp"

namespace pref::io {

struct StoredPrior {
  std::vector<double> mean;        // J
  std::vector<double> covariance;  // J x J row-major
};

// Collective. nullopt when the model has no /prior group; InputError naming the file when it
// has one of another kind or of the wrong shapes.
std::optional<StoredPrior> read_model_prior(const std::string& path, const mpi::Comm& comm,
                                            std::uint32_t J);

// Collective. Rows [row0, row0 + rows) of /user_factors or /comparison_factors (J columns);
// ranks may ask for overlapping ranges (e.g. all of them for Z).
std::vector<double> read_model_rows(const std::string& path, const mpi::Comm& comm,
                                    const std::string& dataset, std::uint64_t row0,
                                    std::uint64_t rows, std::uint32_t J);

}  // namespace pref::io
