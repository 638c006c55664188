#include "solver/layout/factors.hpp"

#include "solver/base/rng.hpp"

namespace pref {

Factors random_factors(const mpi::Comm& comm, const Partitions& parts, const RandomInit& init) {
  const int J = init.J;
  Factors f;
  f.J = J;
  const int me = comm.rank();
  const std::uint64_t u0 = parts.users.begin(me), nu = parts.users.count(me);
  const std::uint64_t c0 = parts.comparisons.begin(me), nc = parts.comparisons.count(me);
  f.U.resize(nu * J);
  f.Z.resize(nc * J);
  for (std::uint64_t i = 0; i < nu; ++i) {
    Rng rng(init.seed, Stream::kInit, u0 + i);
    for (int j = 0; j < J; ++j) f.U[i * J + j] = init.unit_users ? 1.0 : init.scale * rng.normal();
  }
  for (std::uint64_t p = 0; p < nc; ++p) {
    Rng rng(init.seed, Stream::kInit, parts.users.size() + c0 + p);
    for (int j = 0; j < J; ++j) f.Z[p * J + j] = init.scale * rng.normal();
  }
  return f;
}

}  // namespace pref
