#pragma once
// The mean and covariance of a population's rows (users' weights, comparison factors): the
// population prior of `pref adapt` for models that store none (ridge fits), and the true
// populations' priors of the references (solver/synthetic/reference.cpp). Computed distributed, in
// a summation order fixed by the blocks: the rows are cut into blocks, each block is summed in row
// order, and every rank adds the block sums in block order. When the block size depends only on the
// number of rows and every rank holds whole blocks (population_moments reads them so) the moments,
// and everything adapted under them, are bitwise the same at any number of ranks.
#include <Eigen/Core>
#include <cstdint>
#include <span>
#include <string>

#include "solver/base/mpi.hpp"

namespace pref {

struct Moments {
  Eigen::VectorXd mean;
  Eigen::MatrixXd covariance;  // divided by the number of rows (maximum likelihood)
};

// Collective. `rows` holds this rank's rows [first, first + rows.size() / J) of the n rows
// (row-major, J columns); the ranks' ranges together cover every row once. `block` rows make a
// block (population_moment_block(n) for the rank-independent order). A block split between
// ranks is the sum of its parts, so rows not in whole blocks (the balanced partitions of the
// references) take one block: each rank's rows summed in order, then the sum over ranks.
Moments row_moments(const mpi::Comm& comm, std::span<const double> rows, std::uint64_t first,
                    std::uint64_t n, int J, std::uint64_t block);

// The block size of population_moments: at most about 1024 blocks, so the block sums exchanged
// stay small (1024 J^2 doubles).
std::uint64_t population_moment_block(std::uint64_t users);

// Collective. Reads /user_factors (users x J) of the model at `path` once, whole blocks per
// rank, and returns their row_moments.
Moments population_moments(const mpi::Comm& comm, const std::string& path, std::uint64_t users,
                           int J);

}  // namespace pref
