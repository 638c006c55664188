#pragma once
// The mean and covariance of a model's fitted user weights: the population prior of `pref adapt`
// for models that store none (ridge fits). Computed distributed, in a summation order that does
// not depend on the rank count: the users are cut into fixed blocks (their size depends only on
// the number of users), each block is summed in row order by the rank that reads it, and every
// rank adds the block sums in block order. So the prior, and everything adapted under it, is
// bitwise the same at any number of ranks.
#include <Eigen/Core>
#include <cstdint>
#include <string>

#include "solver/base/mpi.hpp"

namespace pref {

struct Moments {
  Eigen::VectorXd mean;
  Eigen::MatrixXd covariance;  // divided by the number of users (maximum likelihood)
};

// Collective. Reads /user_factors (users x J) of the model at `path` once, in blocks.
Moments population_moments(const mpi::Comm& comm, const std::string& path, std::uint64_t users,
                           int J);

}  // namespace pref
