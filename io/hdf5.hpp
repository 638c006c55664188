#pragma once
// RAII over HDF5 (parallel build): every hid_t is owned by a Handle; errors become exceptions
// that carry the call, the object and HDF5's own innermost message; HDF5's automatic printing
// of its error stack is turned off (see silence_errors()).
#include <hdf5.h>

#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "solver/base/error.hpp"
#include "solver/base/mpi.hpp"

namespace pref::h5 {

// Turns off HDF5's printing of its error stack; errors are reported by our exceptions instead.
void silence_errors();
// The innermost message of HDF5's current error stack (empty if none), and clears the stack.
std::string take_error_message();

// Failures of the library become exceptions whose message names the object (`what`) and
// carries HDF5's innermost message, never the name of an HDF5 function: users read them.
//  - PREF_H5_CHECK: writing, creating, property lists: Error("<what>: <hdf5 message> (at
//    <source file>:<line>)"), exit code 1 (a bug or the environment).
//  - PREF_H5_READ: reading an input file: InputError("<what>: cannot read (<hdf5 message>)"),
//    exit code 2: a file that HDF5 cannot read is bad input (corrupt, truncated, foreign).
#define PREF_H5_CHECK(call, what) ::pref::h5::check_rc((call), (what), __FILE__, __LINE__)
#define PREF_H5_READ(call, what) ::pref::h5::check_read((call), (what))
[[noreturn]] void throw_failure(const std::string& what, const char* file, int line);
[[noreturn]] void throw_read_failure(const std::string& what);
template <class T>
T check_rc(T rc, const std::string& what, const char* file, int line) {
  if (rc < 0) throw_failure(what, file, line);
  return rc;
}
template <class T>
T check_read(T rc, const std::string& what) {
  if (rc < 0) throw_read_failure(what);
  return rc;
}

class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  ~Handle() { reset(); }
  Handle(Handle&& o) noexcept : id_(o.id_), closer_(o.closer_) { o.id_ = H5I_INVALID_HID; }
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = o.id_;
      closer_ = o.closer_;
      o.id_ = H5I_INVALID_HID;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset() {
    if (id_ >= 0 && closer_) closer_(id_);  // destructors never throw
    id_ = H5I_INVALID_HID;
  }
  // Gives up ownership without closing.
  hid_t release() {
    const hid_t id = id_;
    id_ = H5I_INVALID_HID;
    return id;
  }
  // Closes now and reports failure (needed for files: the close flushes).
  void close(const std::string& what) {
    if (id_ < 0) return;
    hid_t id = id_;
    id_ = H5I_INVALID_HID;
    check_rc(closer_(id), what, __FILE__, __LINE__);
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer closer_ = nullptr;
};

template <class T>
hid_t native_type() {
  if constexpr (std::is_same_v<T, double>)
    return H5T_NATIVE_DOUBLE;
  else if constexpr (std::is_same_v<T, float>)
    return H5T_NATIVE_FLOAT;
  else if constexpr (std::is_same_v<T, std::int8_t>)
    return H5T_NATIVE_INT8;
  else if constexpr (std::is_same_v<T, std::uint8_t>)
    return H5T_NATIVE_UINT8;
  else if constexpr (std::is_same_v<T, std::int16_t>)
    return H5T_NATIVE_INT16;
  else if constexpr (std::is_same_v<T, std::uint16_t>)
    return H5T_NATIVE_UINT16;
  else if constexpr (std::is_same_v<T, std::int32_t>)
    return H5T_NATIVE_INT32;
  else if constexpr (std::is_same_v<T, std::uint32_t>)
    return H5T_NATIVE_UINT32;
  else if constexpr (std::is_same_v<T, std::int64_t>)
    return H5T_NATIVE_INT64;
  else if constexpr (std::is_same_v<T, std::uint64_t>)
    return H5T_NATIVE_UINT64;
  else
    static_assert(sizeof(T) == 0, "no HDF5 type for this type");
}

// Files are opened and created collectively over comm with the MPI-IO driver and collective
// metadata operations.
Handle open_file(const std::string& path, const mpi::Comm& comm, bool writable = false);
Handle create_file(const std::string& path, const mpi::Comm& comm);

// Every component of path exists and the path resolves to an object (not a dangling link).
bool exists(hid_t loc, const std::string& path);

// What the object at `path` under loc is (kMissing: no such object, or a link to nothing).
enum class ObjectKind { kMissing, kGroup, kDataset, kOther };
ObjectKind object_kind(hid_t loc, const std::string& path);
// "<file>: <absolute object path>", for messages (e.g. "model.h5: /prior/mean").
std::string object_name(hid_t loc, const std::string& path);

// Checked opens of an input's objects: a missing object or one of another kind is an
// InputError naming the file and the object and saying what was found and what was expected
// ("m.h5: /prior is a dataset, expected a group"); `what` is not needed for those messages and
// names the object in any other failure.
Handle open_group(hid_t loc, const std::string& path, const std::string& what);
Handle open_dataset(hid_t loc, const std::string& path, const std::string& what);
Handle create_group(hid_t loc, const std::string& path, const std::string& what);

struct DatasetShape {
  std::vector<hsize_t> dims;
  H5T_class_t type_class = H5T_NO_CLASS;
  std::size_t type_size = 0;
  bool is_signed = false;
  std::string type_name() const;  // e.g. "uint32", "float64", "string"
};
DatasetShape shape_of(hid_t dataset, const std::string& what);

// Attributes on an object (file root, group or dataset). Writes are collective: every rank
// must write the same value.
bool has_attribute(hid_t obj, const std::string& name);
// The names of the links (objects) directly in group `loc`, in name order.
std::vector<std::string> link_names(hid_t loc, const std::string& what);
// The names of obj's attributes, in name order.
std::vector<std::string> attribute_names(hid_t obj, const std::string& what);
template <class T>
T read_attribute(hid_t obj, const std::string& name, const std::string& what);
std::string read_string_attribute(hid_t obj, const std::string& name, const std::string& what);
template <class T>
void write_attribute(hid_t obj, const std::string& name, T value, const std::string& what);
void write_string_attribute(hid_t obj, const std::string& name, const std::string& value,
                            const std::string& what);

// Creates a contiguous dataset of the given file type and dimensions. Collective.
Handle create_dataset(hid_t loc, const std::string& name, hid_t file_type,
                      std::span<const hsize_t> dims, const std::string& what);

// The cause of a failed write for a message (the MPI error string, or HDF5's innermost
// message), led by "no space left on device" or "disk quota exceeded" when it is one.
std::string io_cause(const std::string& message);

// Flushes and closes a file that was written collectively (the end of every output file). The
// outcome is agreed: a failure on any rank is an IoError on every rank naming the file and the
// cause, and no rank is left in a collective call. Collective.
void finish_file(Handle& file, const std::string& path, const mpi::Comm& comm);

// Writes/reads rows [row0, row0 + rows) of a 1-D or 2-D dataset (all columns), collectively.
// Every rank of the file's communicator must call with its own (possibly empty) range; data is
// moved in rounds so each call stays below 2 GiB per rank. A write's outcome is agreed: a
// failure on any rank (e.g. a full file system, seen by io/mpiio_guard.hpp) is an IoError on
// every rank. A read's failure
// is thrown on the ranks that saw it, after every round (callers agree on reads).
template <class T>
void write_rows(hid_t dataset, std::uint64_t row0, std::uint64_t rows, std::span<const T> data,
                const mpi::Comm& comm, const std::string& what);
template <class T>
void read_rows(hid_t dataset, std::uint64_t row0, std::uint64_t rows, std::span<T> data,
               const mpi::Comm& comm, const std::string& what);

// The same with an explicit memory type (e.g. fixed-length strings); data holds rows * cols
// elements of H5Tget_size(mem_type) bytes.
void write_rows_raw(hid_t dataset, hid_t mem_type, std::uint64_t row0, std::uint64_t rows,
                    const void* data, const mpi::Comm& comm, const std::string& what);
void read_rows_raw(hid_t dataset, hid_t mem_type, std::uint64_t row0, std::uint64_t rows,
                   void* data, const mpi::Comm& comm, const std::string& what);

// The fixed-length, NUL-padded string type of `width` bytes (at least 1) that pref's string
// attributes and datasets use.
Handle string_type(std::size_t width, const std::string& what);

// Fixed-length string dataset (1-D), written collectively by rows.
Handle create_string_dataset(hid_t loc, const std::string& name, std::uint64_t n, std::size_t width,
                             const std::string& what);

}  // namespace pref::h5
