#pragma once
// What every pref HDF5 file shares (docs/format.md): the root attributes `format` and
// `format_version`, the checked collective open of a file of one kind, a run's attributes of
// mixed types, and the rows x J float64 factor datasets. The label, model, checkpoint and
// adapted files (io/*_file.hpp) build on it; each keeps only its own datasets.
#include <hdf5.h>

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <variant>

#include "io/hdf5.hpp"
#include "solver/base/mpi.hpp"
#include "solver/base/partition.hpp"

namespace pref::io {

// One kind of pref file.
struct FileKind {
  const char* format;     // the root attribute `format`, e.g. "pref-model"
  const char* noun;       // messages say "not a pref <noun>"
  std::uint32_t version;  // the newest format_version this pref writes and reads (from 1)
};

struct OpenedFile {
  h5::Handle file;
  std::uint32_t version = 0;  // the file's format_version
};

// Opens a file of `kind` for reading, collectively. Plain checks come first (the path exists,
// is not a directory, is readable, is HDF5), so that a missing or foreign file gets a plain
// message; then the open; then `format` and `format_version`. Every failure is an InputError on
// every rank naming the path, followed by " (<option>)" when `option` is not empty, e.g.
// "x.h5: not a pref model file (format 'pref-labels', expected 'pref-model') (--model)" or
// "x.h5: format_version 3 is not supported (this pref reads version 2)".
OpenedFile open_pref_file(const std::string& path, const FileKind& kind, const mpi::Comm& comm,
                          const std::string& option = {});

// `format` and `format_version` (kind.version) on a new file's root. Collective.
void write_format(hid_t file, const FileKind& kind, const std::string& what);

// A run's attributes (configuration, results): numbers or strings, by name.
using AttributeValue = std::variant<double, std::int64_t, std::string>;
using Attributes = std::map<std::string, AttributeValue>;

// Writes each as a float64, int64 or string attribute of obj. Collective (same on every rank).
void write_attributes(hid_t obj, const Attributes& attributes, const std::string& what);
// Reads an attribute of integer, float or string class as int64, double or string; InputError
// naming `what` for another class.
AttributeValue read_any_attribute(hid_t obj, const std::string& name, const std::string& what);

// A factor dataset `name` under loc: rows x J float64, this rank's rows [part.begin(me),
// part.end(me)) from `local` (row-major). Returns the dataset (for attributes). Collective.
h5::Handle write_factor_rows(hid_t loc, const std::string& name, std::uint64_t rows,
                             std::uint32_t J, const Partition& part, std::span<const double> local,
                             const mpi::Comm& comm, const std::string& path);
// A small dataset `name` under loc of float64 whose rows every rank holds alike (a prior, the
// state's vectors): created with `dims`, written from rank 0 (data: all rows). Collective.
void write_replicated(hid_t loc, const std::string& name, std::span<const hsize_t> dims,
                      std::span<const double> data, const mpi::Comm& comm, const std::string& what);

// Throws InputError("<path>: /<name>: expected <rows> x <J> floats") unless the dataset is
// 2-D, rows x J, of a float type; "<path>: missing dataset /<name>" when it is absent.
void check_factor_dataset(hid_t loc, const std::string& name, std::uint64_t rows, std::uint32_t J,
                          const std::string& path);
// Reads this rank's rows of a factor dataset into `local` (resized to part.count(me) * J).
// Collective; a failure is thrown on every rank.
void read_factor_rows(hid_t loc, const std::string& name, std::uint32_t J, const Partition& part,
                      std::vector<double>& local, const mpi::Comm& comm, const std::string& path);

}  // namespace pref::io
