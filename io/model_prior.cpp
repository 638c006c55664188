#include "io/model_prior.hpp"

#include <fmt/core.h>

#include "io/hdf5.hpp"

namespace pref::io {

std::optional<StoredPrior> read_model_prior(const std::string& path, const mpi::Comm& comm,
                                            std::uint32_t J) {
  h5::Handle f;
  mpi::agree(comm, [&] { f = h5::open_file(path, comm); });
  bool present = false;
  mpi::agree(comm, [&] {
    present = h5::exists(f.get(), "/prior");
    if (!present) return;
    h5::Handle g = h5::open_group(f.get(), "/prior", path);
    const std::string kind = h5::has_attribute(g.get(), "kind")
                                 ? h5::read_string_attribute(g.get(), "kind", path + ": /prior")
                                 : std::string();
    if (kind != "population")
      throw InputError(fmt::format("{}: /prior: attribute 'kind' is '{}', expected 'population'",
                                   path, kind));
    for (const char* ds : {"/prior/mean", "/prior/covariance"}) {
      if (!h5::exists(f.get(), ds)) throw InputError(fmt::format("{}: missing dataset {}", path, ds));
      h5::Handle d = h5::open_dataset(f.get(), ds, path);
      const h5::DatasetShape s = h5::shape_of(d.get(), path);
      const bool mean = std::string(ds) == "/prior/mean";
      const bool ok = s.type_class == H5T_FLOAT &&
                      (mean ? s.dims.size() == 1 && s.dims[0] == J
                            : s.dims.size() == 2 && s.dims[0] == J && s.dims[1] == J);
      if (!ok)
        throw InputError(fmt::format("{}: {}: expected {} float64 (the model's rank is {})", path,
                                     ds, mean ? fmt::format("{}", J) : fmt::format("{} x {}", J, J),
                                     J));
    }
  });
  if (!present) return std::nullopt;
  StoredPrior p;
  p.mean.resize(J);
  p.covariance.resize(std::size_t(J) * J);
  h5::Handle dm = h5::open_dataset(f.get(), "/prior/mean", path);
  h5::read_rows<double>(dm.get(), 0, J, p.mean, comm, path + ": /prior/mean");
  h5::Handle dc = h5::open_dataset(f.get(), "/prior/covariance", path);
  h5::read_rows<double>(dc.get(), 0, J, p.covariance, comm, path + ": /prior/covariance");
  return p;
}

std::vector<double> read_model_rows(const std::string& path, const mpi::Comm& comm,
                                    const std::string& dataset, std::uint64_t row0,
                                    std::uint64_t rows, std::uint32_t J) {
  h5::Handle f = h5::open_file(path, comm);
  h5::Handle d = h5::open_dataset(f.get(), dataset, path);
  std::vector<double> out(rows * J);
  h5::read_rows<double>(d.get(), row0, rows, out, comm, path + ": /" + dataset);
  return out;
}

}  // namespace pref::io
