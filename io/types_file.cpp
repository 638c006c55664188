#include "io/types_file.hpp"

#include <fmt/core.h>

#include <array>
#include <cmath>

#include "io/hdf5.hpp"

namespace pref::io {

void write_types(const std::string& path, const mpi::Comm& comm, const TypesData& t) {
  h5::Handle f;
  mpi::agree(comm, [&] { f = h5::create_file(path, comm); });
  const std::string what = path;
  const hid_t h = f.get();
  write_format(h, kTypesFile, what);
  h5::write_attribute<std::uint64_t>(h, "comparisons", t.comparisons, what);
  h5::write_attribute<std::uint64_t>(h, "users", t.users, what);
  h5::write_attribute<std::uint32_t>(h, "rank", t.rank, what);
  h5::write_attribute<std::uint32_t>(h, "K", t.K, what);
  h5::write_attribute<std::uint32_t>(h, "rounds", t.rounds, what);
  h5::write_attribute<std::uint64_t>(h, "seed", t.seed, what);
  h5::write_attribute<double>(h, "r", t.r, what);
  h5::write_attribute<double>(h, "s", t.s, what);
  h5::write_attribute<double>(h, "a", t.a, what);
  h5::write_attribute<double>(h, "objective", t.objective, what);
  write_provenance(h, t.provenance(), what);
  h5::write_attribute<std::uint32_t>(h, "mpi_ranks", static_cast<std::uint32_t>(comm.size()), what);
  write_replicated(h, "comparison_factors", std::array<hsize_t, 2>{t.comparisons, t.rank}, t.Z,
                   comm, what);
  write_replicated(h, "atoms", std::array<hsize_t, 2>{t.K, t.rank}, t.atoms, comm, what);
  write_replicated(h, "atom_weights", std::array<hsize_t, 1>{t.K}, t.atom_weights, comm, what);
  write_replicated(h, "objective", std::array<hsize_t, 1>{t.history.size()}, t.history, comm, what);
  h5::finish_file(f, path, comm);
}

TypesData read_types(const std::string& path, const mpi::Comm& comm, const std::string& option) {
  TypesData t;
  const OpenedFile f = open_pref_file(path, kTypesFile, comm, option);
  mpi::agree(comm, [&] {
    const hid_t h = f.file.get();
    const std::string what = path + ": /";
    t.comparisons = h5::read_attribute<std::uint64_t>(h, "comparisons", what);
    t.users = h5::read_attribute<std::uint64_t>(h, "users", what);
    t.rank = h5::read_attribute<std::uint32_t>(h, "rank", what);
    t.K = h5::read_attribute<std::uint32_t>(h, "K", what);
    t.rounds = h5::read_attribute<std::uint32_t>(h, "rounds", what);
    t.seed = h5::read_attribute<std::uint64_t>(h, "seed", what);
    t.r = h5::read_attribute<double>(h, "r", what);
    t.s = h5::read_attribute<double>(h, "s", what);
    t.a = h5::read_attribute<double>(h, "a", what);
    t.objective = h5::read_attribute<double>(h, "objective", what);
    const Provenance p = read_provenance(h, what);
    t.model = p.model;
    t.data = p.data;
    t.model_checksum = p.model_checksum;
    t.data_checksum = p.data_checksum;
    if (!(t.r > 0 && t.r < 1 && t.s > 0 && t.a > 0 && std::isfinite(t.s) && std::isfinite(t.a)))
      throw InputError(
          fmt::format("{}: the ordinal model r={}, s={}, a={} is out of range "
                      "(0 < r < 1, s > 0, a > 0)",
                      path, t.r, t.s, t.a));
    if (t.rank < 1 || t.rank > kMaxTypesRank || t.K < 1 || t.K > kMaxAtoms)
      throw InputError(fmt::format("{}: rank {} and K {} must be in 1..{} and 1..{}", path, t.rank,
                                   t.K, kMaxTypesRank, kMaxAtoms));
    check_factor_dataset(h, "comparison_factors", t.comparisons, t.rank, path);
    check_factor_dataset(h, "atoms", t.K, t.rank, path);
    t.Z = read_small_floats(h, "comparison_factors", {t.comparisons, t.rank}, comm, path);
    t.atoms = read_small_floats(h, "atoms", {t.K, t.rank}, comm, path);
    t.atom_weights = read_small_floats(h, "atom_weights", {t.K}, comm, path);
    double total = 0;
    for (std::uint32_t k = 0; k < t.K; ++k) {
      const double w = t.atom_weights[k];
      if (!(w >= 0))
        throw InputError(
            fmt::format("{}: /atom_weights: row {}: {} is not a weight >= 0", path, k, w), k);
      total += w;
    }
    if (!(total > 0)) throw InputError(fmt::format("{}: /atom_weights: all zero", path));
  });
  return t;
}

}  // namespace pref::io
