#include "io/model_prior.hpp"

#include <fmt/core.h>

#include "io/hdf5.hpp"
#include "io/pref_file.hpp"

namespace pref::io {

std::vector<double> read_model_rows(const std::string& path, const mpi::Comm& comm,
                                    const std::string& dataset, std::uint64_t row0,
                                    std::uint64_t rows, std::uint32_t J) {
  std::vector<double> out(rows * J);
  h5::Handle f;
  mpi::agree(comm, [&] { f = h5::open_file(path, comm); });
  mpi::agree(comm, [&] {
    h5::Handle d = h5::open_dataset(f.get(), dataset, path);
    h5::read_rows<double>(d.get(), row0, rows, out, comm, path + ": /" + dataset);
    require_finite<double>(out, J, row0, path + ": /" + dataset);
  });
  return out;
}

}  // namespace pref::io
