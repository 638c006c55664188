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

// Once per process, before any file is opened: the HDF5 library reports its errors only through
// pref's exceptions (io/hdf5.hpp), never by printing its error stack.
void init_io();

// One kind of pref file.
struct FileKind {
  const char* format;     // the root attribute `format`, e.g. "pref-model"
  const char* noun;       // messages say "not a pref <noun>"
  std::uint32_t version;  // the newest format_version this pref writes and reads (from 1)
  // Whether opening one for reading notes it as an input of the run (io::note_input, so that no
  // output replaces it): all but checkpoints, which a fit reads and then replaces by design.
  bool input = true;
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
// "x.h5: format_version 3 is not supported (this pref reads version 2)". The file is noted as
// an input of the run (io/output_file.hpp) when kind.input and `as_input`.
OpenedFile open_pref_file(const std::string& path, const FileKind& kind, const mpi::Comm& comm,
                          const std::string& option = {}, bool as_input = true);

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
// Reads this rank's rows of a factor dataset into `local` (resized to part.count(me) * J). A
// value that is not finite is an InputError naming the file, the dataset, the row and the column
// (the smallest such row of the file, whatever the rank count). Collective; a failure is thrown
// on every rank.
void read_factor_rows(hid_t loc, const std::string& name, std::uint32_t J, const Partition& part,
                      std::vector<double>& local, const mpi::Comm& comm, const std::string& path);

// The checksum of a factor dataset (rows x J) from every rank's rows of `part`: the sum modulo
// 2^64 of a hash of each row with its global row id (solver/base/hash.hpp), the same at any rank
// count. Collective.
std::uint64_t factor_checksum(const mpi::Comm& comm, const Partition& part,
                              const std::vector<double>& rows, std::uint32_t J);

// A small float dataset `name` under loc read whole by every rank, as float64 row-major. Its
// dimensions must be `dims` (an entry 0: any size there; `dims` empty: any shape) and its type a
// float; every value must be finite: else an InputError naming the file, the dataset and the
// first bad row ("m.h5: /prior/mean: row 2: nan is not finite"). Returns the values; the
// dataset's dimensions in `found` when given. Collective (inside the caller's mpi::agree).
std::vector<double> read_small_floats(hid_t loc, const std::string& name,
                                      const std::vector<std::uint64_t>& dims, const mpi::Comm& comm,
                                      const std::string& path,
                                      std::vector<std::uint64_t>* found = nullptr);

// The first non-finite value of rows x cols values (row-major) whose first row is `row0` of the
// dataset: an InputError "<what>: row r, column c: <value> is not finite" ordered by the row.
template <class T>
void require_finite(std::span<const T> values, std::uint64_t cols, std::uint64_t row0,
                    const std::string& what);

}  // namespace pref::io
