#pragma once
// The mean and covariance of users' weights: the population prior of `pref adapt` for models
// that store none (ridge fits), and the true population's prior of the Bayes reference
// (solver/reference.cpp). Computed distributed, in a summation order fixed by the blocks: the
// users are cut into blocks of rows, each block is summed in row order, and every rank adds
// the block sums in block order. When the block size depends only on the number of users and
// every rank holds whole blocks (population_moments reads them so) the moments, and everything
// adapted under them, are bitwise the same at any number of ranks.
#include <Eigen/Core>
#include <cstdint>
#include <span>
#include <string>

#include "solver/base/mpi.hpp"

namespace pref {

struct Moments {
  Eigen::VectorXd mean;
  Eigen::MatrixXd covariance;  // divided by the number of users (maximum likelihood)
};

// Collective. U holds this rank's rows [first, first + U.size() / J) of the `users` rows (row-
// major, J columns); the ranks' ranges together cover every row once. `block` rows make a
// block (population_moment_block(users) for the rank-independent order). A block split between
// ranks is the sum of its parts, so rows not in whole blocks (the balanced partitions of the
// reference) take one block: each rank's rows summed in order, then the sum over ranks.
Moments user_moments(const mpi::Comm& comm, std::span<const double> U, std::uint64_t first,
                     std::uint64_t users, int J, std::uint64_t block);

// The block size of population_moments: at most about 1024 blocks, so the block sums exchanged
// stay small (1024 J^2 doubles).
std::uint64_t population_moment_block(std::uint64_t users);

// Collective. Reads /user_factors (users x J) of the model at `path` once, whole blocks per
// rank, and returns their user_moments.
Moments population_moments(const mpi::Comm& comm, const std::string& path, std::uint64_t users,
                           int J);

}  // namespace pref
