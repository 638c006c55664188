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
  h5::write_string_attribute(h, "model", t.model, what);
  h5::write_string_attribute(h, "data", t.data, what);
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
    t.model = h5::read_string_attribute(h, "model", what);
    t.data = h5::read_string_attribute(h, "data", what);
    if (!(t.r > 0 && t.r < 1 && t.s > 0 && t.a > 0 && std::isfinite(t.s) && std::isfinite(t.a)))
      throw InputError(
          fmt::format("{}: the ordinal model r={}, s={}, a={} is out of range "
                      "(0 < r < 1, s > 0, a > 0)",
                      path, t.r, t.s, t.a));
    if (t.rank < 1 || t.K < 1) throw InputError(fmt::format("{}: rank and K must be >= 1", path));
    check_factor_dataset(h, "comparison_factors", t.comparisons, t.rank, path);
    check_factor_dataset(h, "atoms", t.K, t.rank, path);
    t.Z.resize(t.comparisons * t.rank);
    t.atoms.resize(std::size_t(t.K) * t.rank);
    t.atom_weights.resize(t.K);
    {
      h5::Handle d = h5::open_dataset(h, "comparison_factors", path);
      h5::read_rows<double>(d.get(), 0, t.comparisons, t.Z, comm, path + ": /comparison_factors");
    }
    {
      h5::Handle d = h5::open_dataset(h, "atoms", path);
      h5::read_rows<double>(d.get(), 0, t.K, t.atoms, comm, path + ": /atoms");
    }
    {
      if (!h5::exists(h, "atom_weights"))
        throw InputError(fmt::format("{}: missing dataset /atom_weights", path));
      h5::Handle d = h5::open_dataset(h, "atom_weights", path);
      const auto s = h5::shape_of(d.get(), path);
      if (s.type_class != H5T_FLOAT || s.dims.size() != 1 || s.dims[0] != t.K)
        throw InputError(fmt::format("{}: /atom_weights: expected {} float64", path, t.K));
      h5::read_rows<double>(d.get(), 0, t.K, t.atom_weights, comm, path + ": /atom_weights");
    }
    double total = 0;
    for (double w : t.atom_weights) {
      if (!(w >= 0 && std::isfinite(w)))
        throw InputError(fmt::format("{}: /atom_weights: {} is not a weight >= 0", path, w));
      total += w;
    }
    if (!(total > 0)) throw InputError(fmt::format("{}: /atom_weights: all zero", path));
    for (double x : t.Z)
      if (!std::isfinite(x))
        throw InputError(fmt::format("{}: /comparison_factors: not finite", path));
    for (double x : t.atoms)
      if (!std::isfinite(x)) throw InputError(fmt::format("{}: /atoms: not finite", path));
  });
  return t;
}

}  // namespace pref::io
