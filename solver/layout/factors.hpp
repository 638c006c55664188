#pragma once
// The model's factors as every rank holds them: its rows of U (users x J) and of Z
// (comparisons x J), and the random initialization (docs/design.md, "Initialization").
#include <cstdint>
#include <vector>

#include "solver/base/mpi.hpp"
#include "solver/layout/distribute.hpp"

namespace pref {

// Factors of this rank's rows (row-major, J columns).
struct Factors {
  int J = 0;
  std::vector<double> U;  // rows: parts.users range of this rank
  std::vector<double> Z;  // rows: parts.comparisons range of this rank
};

// The random initial factors: entries N(0, scale^2), each row drawn from its own stream of the
// seed (Stream::kInit, users by id, comparisons after them), so the result is a pure function of
// seed and global ids, whatever the rank count. unit_users: every u_i = 1 instead (the shared
// model, J = 1).
struct RandomInit {
  int J = 8;
  std::uint64_t seed = 1;
  double scale = 0.1;
  bool unit_users = false;
};
Factors random_factors(const mpi::Comm& comm, const Partitions& parts, const RandomInit& init);

}  // namespace pref
