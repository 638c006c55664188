#include "io/pref_file.hpp"

#include <fmt/core.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "io/output_file.hpp"
#include "solver/base/hash.hpp"

namespace pref::io {

namespace {
std::string suffix(const std::string& option) {
  return option.empty() ? "" : " (" + option + ")";
}
}  // namespace

void init_io() {
  h5::silence_errors();
}

OpenedFile open_pref_file(const std::string& path, const FileKind& kind, const mpi::Comm& comm,
                          const std::string& option, bool as_input) {
  const std::string opt = suffix(option);
  mpi::agree(comm, [&] {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) throw InputError(path + ": no such file" + opt);
    if (std::filesystem::is_directory(path, ec)) throw InputError(path + ": is a directory" + opt);
    if (kind.input && as_input) note_input(path, option);
    std::ifstream probe(path, std::ios::binary);
    if (!probe) throw InputError(path + ": cannot be read" + opt);
    if (H5Fis_hdf5(path.c_str()) <= 0) {
      h5::take_error_message();
      throw InputError(path + ": not an HDF5 file" + opt);
    }
  });
  OpenedFile f;
  mpi::agree(comm, [&] { f.file = h5::open_file(path, comm); });
  mpi::agree(comm, [&] {
    const hid_t h = f.file.get();
    const std::string what = path + ": /";
    if (!h5::has_attribute(h, "format"))
      throw InputError(
          fmt::format("{}: not a pref {} (no 'format' attribute on /){}", path, kind.noun, opt));
    const std::string format = h5::read_string_attribute(h, "format", what);
    if (format != kind.format)
      throw InputError(fmt::format("{}: not a pref {} (format '{}', expected '{}'){}", path,
                                   kind.noun, format, kind.format, opt));
    const auto v = h5::read_attribute<std::int64_t>(h, "format_version", what);
    if (v < 1 || v > static_cast<std::int64_t>(kind.version))
      throw InputError(
          fmt::format("{}: format_version {} is not supported (this pref reads "
                      "version {}){}",
                      path, v, kind.version, opt));
    f.version = static_cast<std::uint32_t>(v);
  });
  return f;
}

void write_format(hid_t file, const FileKind& kind, const std::string& what) {
  h5::write_string_attribute(file, "format", kind.format, what);
  h5::write_attribute<std::uint32_t>(file, "format_version", kind.version, what);
}

void write_attributes(hid_t obj, const Attributes& attributes, const std::string& what) {
  for (const auto& [name, v] : attributes) {
    if (auto* d = std::get_if<double>(&v))
      h5::write_attribute<double>(obj, name, *d, what);
    else if (auto* i = std::get_if<std::int64_t>(&v))
      h5::write_attribute<std::int64_t>(obj, name, *i, what);
    else
      h5::write_string_attribute(obj, name, std::get<std::string>(v), what);
  }
}

AttributeValue read_any_attribute(hid_t obj, const std::string& name, const std::string& what) {
  h5::Handle a(PREF_H5_READ(H5Aopen(obj, name.c_str(), H5P_DEFAULT), what), H5Aclose);
  h5::Handle type(PREF_H5_READ(H5Aget_type(a.get()), what), H5Tclose);
  switch (H5Tget_class(type.get())) {
    case H5T_INTEGER:
      return h5::read_attribute<std::int64_t>(obj, name, what);
    case H5T_FLOAT:
      return h5::read_attribute<double>(obj, name, what);
    case H5T_STRING:
      return h5::read_string_attribute(obj, name, what);
    default:
      throw InputError(what + ": attribute '" + name + "' has an unexpected type");
  }
}

h5::Handle write_factor_rows(hid_t loc, const std::string& name, std::uint64_t rows,
                             std::uint32_t J, const Partition& part, std::span<const double> local,
                             const mpi::Comm& comm, const std::string& path) {
  const int me = comm.rank();
  const hsize_t dims[2] = {rows, J};
  h5::Handle d = h5::create_dataset(loc, name, H5T_IEEE_F64LE, dims, path);
  h5::write_rows<double>(d.get(), part.begin(me), part.count(me), local, comm, path + ": /" + name);
  return d;
}

void write_replicated(hid_t loc, const std::string& name, std::span<const hsize_t> dims,
                      std::span<const double> data, const mpi::Comm& comm,
                      const std::string& what) {
  h5::Handle d = h5::create_dataset(loc, name, H5T_IEEE_F64LE, dims, what);
  h5::write_rows<double>(d.get(), 0, comm.rank() == 0 ? dims[0] : 0, data, comm,
                         what + ": " + name);
}

void check_factor_dataset(hid_t loc, const std::string& name, std::uint64_t rows, std::uint32_t J,
                          const std::string& path) {
  if (!h5::exists(loc, name)) throw InputError(fmt::format("{}: missing dataset /{}", path, name));
  h5::Handle d = h5::open_dataset(loc, name, path);
  const h5::DatasetShape s = h5::shape_of(d.get(), path);
  if (s.dims.size() != 2 || s.dims[0] != rows || s.dims[1] != J || s.type_class != H5T_FLOAT)
    throw InputError(fmt::format("{}: /{}: expected {} x {} floats", path, name, rows, J));
}

void read_factor_rows(hid_t loc, const std::string& name, std::uint32_t J, const Partition& part,
                      std::vector<double>& local, const mpi::Comm& comm, const std::string& path) {
  const int me = comm.rank();
  local.resize(part.count(me) * J);
  mpi::agree(comm, [&] {
    h5::Handle d = h5::open_dataset(loc, name, path);
    h5::read_rows<double>(d.get(), part.begin(me), part.count(me), local, comm,
                          path + ": /" + name);
    require_finite<double>(local, J, part.begin(me), path + ": /" + name);
  });
}

std::uint64_t factor_checksum(const mpi::Comm& comm, const Partition& part,
                              const std::vector<double>& rows, std::uint32_t J) {
  return mpi::allreduce_sum(comm, hash::rows(part.begin(comm.rank()), rows, J));
}

std::vector<double> read_small_floats(hid_t loc, const std::string& name,
                                      const std::vector<std::uint64_t>& dims, const mpi::Comm& comm,
                                      const std::string& path, std::vector<std::uint64_t>* found) {
  const std::string what = h5::object_name(loc, name);
  h5::Handle d = h5::open_dataset(loc, name, path);
  const h5::DatasetShape s = h5::shape_of(d.get(), what);
  bool ok = s.type_class == H5T_FLOAT && (dims.empty() || s.dims.size() == dims.size());
  for (std::size_t k = 0; ok && k < dims.size(); ++k) ok = dims[k] == 0 || s.dims[k] == dims[k];
  std::uint64_t n = 1;
  for (hsize_t x : s.dims) n *= x;
  if (!ok || n > (std::uint64_t{1} << 28)) {
    std::string want;
    for (std::size_t k = 0; k < dims.size(); ++k)
      want += (k ? " x " : "") + (dims[k] ? std::to_string(dims[k]) : std::string("any"));
    std::string have;
    for (std::size_t k = 0; k < s.dims.size(); ++k)
      have += (k ? " x " : "") + std::to_string(s.dims[k]);
    throw InputError(fmt::format("{}: expected {} float64, found {} {}", what,
                                 want.empty() ? "some" : want, have.empty() ? "a scalar" : have,
                                 s.type_name()));
  }
  std::vector<double> out(n);
  const std::uint64_t rows = s.dims.empty() ? 1 : s.dims[0];
  h5::read_rows<double>(d.get(), 0, rows, out, comm, what);
  require_finite<double>(out, rows ? n / rows : 1, 0, what);
  if (found) found->assign(s.dims.begin(), s.dims.end());
  return out;
}

template <class T>
void require_finite(std::span<const T> values, std::uint64_t cols, std::uint64_t row0,
                    const std::string& what) {
  cols = std::max<std::uint64_t>(cols, 1);
  for (std::size_t k = 0; k < values.size(); ++k)
    if (!std::isfinite(values[k])) {
      const std::uint64_t row = row0 + k / cols;
      throw InputError(
          fmt::format("{}: row {}, column {}: {} is not finite", what, row, k % cols, values[k]),
          row);
    }
}
template void require_finite<double>(std::span<const double>, std::uint64_t, std::uint64_t,
                                     const std::string&);
template void require_finite<float>(std::span<const float>, std::uint64_t, std::uint64_t,
                                    const std::string&);

}  // namespace pref::io
