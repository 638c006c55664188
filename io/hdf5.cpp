#include "io/hdf5.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cstring>

#include "io/mpiio_guard.hpp"

namespace pref::h5 {

void throw_failure(const std::string& what, const char* file, int line) {
  const std::string msg = take_error_message();
  const char* base = std::strrchr(file, '/');
  throw Error(fmt::format("{}: {} (at {}:{})", what, msg.empty() ? "HDF5 failed" : msg,
                          base ? base + 1 : file, line));
}

void throw_read_failure(const std::string& what) {
  const std::string msg = take_error_message();
  throw InputError(what + ": cannot read" + (msg.empty() ? "" : " (" + msg + ")"));
}

void silence_errors() {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

namespace {
herr_t walk_innermost(unsigned n, const H5E_error2_t* err, void* data) {
  auto* out = static_cast<std::string*>(data);
  if (n == 0 && err->desc) *out = err->desc;  // the innermost error, where it went wrong
  return 0;
}

Handle plist(hid_t cls) {
  return Handle(PREF_H5_CHECK(H5Pcreate(cls), "property list"), H5Pclose);
}

// Files are written with independent MPI-IO writes (each rank its own rows, and its share of
// the metadata): Open MPI's collective write (fcoll vulcan) hangs when the write of one
// aggregator fails (a full disk at 3 and 4 ranks), while an independent write's failure stays
// with its rank, where io/mpiio_guard.hpp records it for the agreement. Raw data reads stay
// collective.
// The metadata of a file opened for reading (an input, possibly damaged) is read by every rank
// itself, not collectively: with collective metadata reads, rank 0 reads and broadcasts, and
// HDF5 1.10.8 leaves the other ranks waiting in that broadcast for ever when rank 0 fails to
// decode what it read (a damaged object header: `evaluate` and `types` hung at 2 ranks on 2
// of 100 damaged models, jobs/corrupt.sh; open_file covers the reads of the open itself).
// Read independently, every rank decodes the same bytes and fails the same way, and
// mpi::agree makes the error collective. The cost is each rank reading a file's few kilobytes
// of metadata itself.
Handle file_access(const mpi::Comm& comm, bool writing) {
  Handle fapl = plist(H5P_FILE_ACCESS);
  PREF_H5_CHECK(H5Pset_fapl_mpio(fapl.get(), comm.get(), MPI_INFO_NULL), "MPI-IO driver");
  PREF_H5_CHECK(H5Pset_all_coll_metadata_ops(fapl.get(), writing), "collective metadata");
  PREF_H5_CHECK(H5Pset_coll_metadata_write(fapl.get(), false), "collective metadata");
  return fapl;
}

Handle transfer(bool collective) {
  Handle dxpl = plist(H5P_DATASET_XFER);
  PREF_H5_CHECK(
      H5Pset_dxpl_mpio(dxpl.get(), collective ? H5FD_MPIO_COLLECTIVE : H5FD_MPIO_INDEPENDENT),
      "transfer mode");
  return dxpl;
}
}  // namespace

std::string take_error_message() {
  std::string msg;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_innermost, &msg);
  H5Eclear2(H5E_DEFAULT);
  return msg;
}

Handle open_file(const std::string& path, const mpi::Comm& comm, bool writable) {
  if (!writable) {
    // HDF5 1.10.8 reads the superblock and the root group's header collectively while opening
    // a file, whatever the access properties say: rank 0 reads and broadcasts, and when it
    // cannot decode a damaged header the other ranks wait in the broadcast for ever. So every
    // rank first opens the file by itself with the serial driver (the same bytes, so the same
    // outcome everywhere; the callers' mpi::agree makes a failure collective).
    const hid_t probe = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (probe < 0) {
      std::string msg = take_error_message();
      throw InputError(path + ": cannot open as HDF5" + (msg.empty() ? "" : " (" + msg + ")"));
    }
    if (H5Fclose(probe) < 0) take_error_message();
  }
  Handle fapl = file_access(comm, writable);
  hid_t f = H5Fopen(path.c_str(), writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, fapl.get());
  if (f < 0) {
    std::string msg = take_error_message();
    throw InputError(path + ": cannot open as HDF5" + (msg.empty() ? "" : " (" + msg + ")"));
  }
  return Handle(f, H5Fclose);
}

Handle create_file(const std::string& path, const mpi::Comm& comm) {
  io::mpiio::take_failure();  // a failure of an earlier file (already reported) is not this one's
  Handle fapl = file_access(comm, /*writing=*/true);
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get());
  if (f < 0) {
    std::string msg = take_error_message();
    throw InputError(path + ": cannot create file" + (msg.empty() ? "" : " (" + msg + ")"));
  }
  return Handle(f, H5Fclose);
}

bool exists(hid_t loc, const std::string& path) {
  // H5Lexists needs each intermediate component to exist, so walk them in turn.
  std::size_t pos = 0;
  while (true) {
    std::size_t next = path.find('/', pos + 1);
    std::string prefix = path.substr(0, next);
    if (!prefix.empty() && prefix != "/") {
      htri_t e = H5Lexists(loc, prefix.c_str(), H5P_DEFAULT);
      if (e <= 0) {
        take_error_message();
        return false;
      }
    }
    if (next == std::string::npos) break;
    pos = next;
  }
  // A link that resolves to nothing (a dangling soft link, an external link to a missing file)
  // is not an object: H5Lexists says yes, H5Oexists_by_name no (or fails).
  const htri_t o = H5Oexists_by_name(loc, path.c_str(), H5P_DEFAULT);
  if (o <= 0) take_error_message();
  return o > 0;
}

ObjectKind object_kind(hid_t loc, const std::string& path) {
  if (!exists(loc, path)) return ObjectKind::kMissing;
  H5O_info_t info{};
  if (H5Oget_info_by_name2(loc, path.c_str(), &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0) {
    take_error_message();
    return ObjectKind::kOther;  // an object HDF5 cannot describe is neither
  }
  switch (info.type) {
    case H5O_TYPE_GROUP:
      return ObjectKind::kGroup;
    case H5O_TYPE_DATASET:
      return ObjectKind::kDataset;
    default:
      return ObjectKind::kOther;
  }
}

std::string object_name(hid_t loc, const std::string& path) {
  std::string file(1024, '\0'), base(1024, '\0');
  const ssize_t nf = H5Fget_name(loc, file.data(), file.size());
  const ssize_t nb = path.rfind('/', 0) == 0 ? 0 : H5Iget_name(loc, base.data(), base.size());
  if (nf < 0 || nb < 0) take_error_message();
  file.resize(nf > 0 ? std::min<std::size_t>(nf, file.size() - 1) : 0);
  base.resize(nb > 0 ? std::min<std::size_t>(nb, base.size() - 1) : 0);
  std::string full = path.rfind('/', 0) == 0       ? path
                     : base.empty() || base == "/" ? "/" + path
                                                   : base + "/" + path;
  return (file.empty() ? std::string("?") : file) + ": " + full;
}

namespace {
const char* kind_noun(ObjectKind k) {
  switch (k) {
    case ObjectKind::kGroup:
      return "a group";
    case ObjectKind::kDataset:
      return "a dataset";
    case ObjectKind::kOther:
      return "an object that is neither a group nor a dataset";
    case ObjectKind::kMissing:
      break;
  }
  return "missing";
}

// The object at path must be of kind `want`: else an InputError naming it.
void require_kind(hid_t loc, const std::string& path, ObjectKind want) {
  const ObjectKind k = object_kind(loc, path);
  if (k == want) return;
  const std::string name = object_name(loc, path);
  const char* expected = want == ObjectKind::kGroup ? "group" : "dataset";
  if (k == ObjectKind::kMissing)
    throw InputError(
        fmt::format("{}: no such {} (or a link that resolves to nothing)", name, expected));
  throw InputError(fmt::format("{} is {}, expected a {}", name, kind_noun(k), expected));
}
}  // namespace

Handle open_group(hid_t loc, const std::string& path, const std::string& what) {
  require_kind(loc, path, ObjectKind::kGroup);
  return Handle(PREF_H5_READ(H5Gopen2(loc, path.c_str(), H5P_DEFAULT), what), H5Gclose);
}

Handle create_group(hid_t loc, const std::string& path, const std::string& what) {
  Handle gcpl = plist(H5P_GROUP_CREATE);
  PREF_H5_CHECK(H5Pset_obj_track_times(gcpl.get(), false), what);
  return Handle(
      PREF_H5_CHECK(H5Gcreate2(loc, path.c_str(), H5P_DEFAULT, gcpl.get(), H5P_DEFAULT), what),
      H5Gclose);
}

Handle open_dataset(hid_t loc, const std::string& path, const std::string& what) {
  require_kind(loc, path, ObjectKind::kDataset);
  return Handle(PREF_H5_READ(H5Dopen2(loc, path.c_str(), H5P_DEFAULT), what), H5Dclose);
}

std::string DatasetShape::type_name() const {
  switch (type_class) {
    case H5T_INTEGER:
      return std::string(is_signed ? "int" : "uint") + std::to_string(8 * type_size);
    case H5T_FLOAT:
      return "float" + std::to_string(8 * type_size);
    case H5T_STRING:
      return "string";
    case H5T_COMPOUND:
      return "compound";
    case H5T_ENUM:
      return "enum";
    default:
      return "unsupported type";
  }
}

DatasetShape shape_of(hid_t dataset, const std::string& what) {
  DatasetShape s;
  Handle space(PREF_H5_READ(H5Dget_space(dataset), what), H5Sclose);
  int nd = PREF_H5_READ(H5Sget_simple_extent_ndims(space.get()), what);
  s.dims.resize(nd);
  if (nd > 0) PREF_H5_READ(H5Sget_simple_extent_dims(space.get(), s.dims.data(), nullptr), what);
  Handle type(PREF_H5_READ(H5Dget_type(dataset), what), H5Tclose);
  s.type_class = H5Tget_class(type.get());
  s.type_size = H5Tget_size(type.get());
  if (s.type_class == H5T_INTEGER) s.is_signed = H5Tget_sign(type.get()) == H5T_SGN_2;
  // A contiguous dataset's bytes lie within the file: a damaged or truncated file whose header
  // declares more is refused here, before a reader allocates room for it.
  const haddr_t offset = H5Dget_offset(dataset);
  if (offset != HADDR_UNDEF) {
    long double bytes = static_cast<long double>(s.type_size);
    for (hsize_t d : s.dims) bytes *= static_cast<long double>(d);
    const hid_t file = H5Iget_file_id(dataset);
    hsize_t size = 0;
    const bool known = file >= 0 && H5Fget_filesize(file, &size) >= 0;
    if (file >= 0) H5Fclose(file);
    if (!known) take_error_message();
    if (known && static_cast<long double>(offset) + bytes > static_cast<long double>(size))
      throw InputError(
          fmt::format("{}: its data ({:.0f} bytes at offset {}) lies beyond the end "
                      "of the file ({} bytes): damaged or truncated",
                      what, static_cast<double>(bytes), offset, size));
  } else {
    take_error_message();  // not contiguous, or not allocated: nothing to check
  }
  return s;
}

bool has_attribute(hid_t obj, const std::string& name) {
  htri_t e = H5Aexists(obj, name.c_str());
  if (e < 0) take_error_message();
  return e > 0;
}

namespace {
herr_t collect_attribute_name(hid_t, const char* name, const H5A_info_t*, void* data) {
  static_cast<std::vector<std::string>*>(data)->push_back(name);
  return 0;
}
}  // namespace

namespace {
herr_t collect_link_name(hid_t, const char* name, const H5L_info_t*, void* data) {
  static_cast<std::vector<std::string>*>(data)->push_back(name);
  return 0;
}
}  // namespace

std::vector<std::string> link_names(hid_t loc, const std::string& what) {
  std::vector<std::string> names;
  hsize_t idx = 0;
  PREF_H5_READ(H5Literate(loc, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_link_name, &names), what);
  return names;
}

std::vector<std::string> attribute_names(hid_t obj, const std::string& what) {
  std::vector<std::string> names;
  hsize_t idx = 0;
  PREF_H5_READ(H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_attribute_name, &names),
               what);
  return names;
}

template <class T>
T read_attribute(hid_t obj, const std::string& name, const std::string& what) {
  if (!has_attribute(obj, name)) throw InputError(what + ": missing attribute '" + name + "'");
  const std::string attr = what + ": attribute '" + name + "'";
  Handle a(PREF_H5_READ(H5Aopen(obj, name.c_str(), H5P_DEFAULT), attr), H5Aclose);
  Handle type(PREF_H5_READ(H5Aget_type(a.get()), attr), H5Tclose);
  {
    Handle space(PREF_H5_READ(H5Aget_space(a.get()), attr), H5Sclose);
    if (H5Sget_simple_extent_npoints(space.get()) != 1)
      throw InputError(attr + " is not a single value");
  }
  H5T_class_t cls = H5Tget_class(type.get());
  if (cls != H5T_INTEGER && cls != H5T_FLOAT)
    throw InputError(what + ": attribute '" + name + "' is not a number");
  T v{};
  if (H5Aread(a.get(), native_type<T>(), &v) < 0) {
    take_error_message();
    throw InputError(what + ": cannot read attribute '" + name + "' as a number");
  }
  return v;
}

std::string read_string_attribute(hid_t obj, const std::string& name, const std::string& what) {
  if (!has_attribute(obj, name)) throw InputError(what + ": missing attribute '" + name + "'");
  const std::string attr = what + ": attribute '" + name + "'";
  Handle a(PREF_H5_READ(H5Aopen(obj, name.c_str(), H5P_DEFAULT), attr), H5Aclose);
  Handle type(PREF_H5_READ(H5Aget_type(a.get()), attr), H5Tclose);
  if (H5Tget_class(type.get()) != H5T_STRING)
    throw InputError(what + ": attribute '" + name + "' is not a string");
  {
    Handle space(PREF_H5_READ(H5Aget_space(a.get()), attr), H5Sclose);
    if (H5Sget_simple_extent_npoints(space.get()) != 1)
      throw InputError(attr + " is not a single string");
  }
  // The memory type takes the file type's character set (h5py writes UTF-8, C tools ASCII):
  // HDF5 has no conversion between the two.
  Handle mem(PREF_H5_CHECK(H5Tcopy(H5T_C_S1), what), H5Tclose);
  PREF_H5_READ(H5Tset_cset(mem.get(), PREF_H5_READ(H5Tget_cset(type.get()), attr)), attr);
  auto fail = [&] {
    const std::string msg = take_error_message();
    throw InputError(what + ": cannot read string attribute '" + name + "'" +
                     (msg.empty() ? "" : " (" + msg + ")"));
  };
  if (H5Tis_variable_str(type.get()) > 0) {
    PREF_H5_READ(H5Tset_size(mem.get(), H5T_VARIABLE), attr);
    char* s = nullptr;
    if (H5Aread(a.get(), mem.get(), &s) < 0) fail();
    std::string out = s ? s : "";
    H5free_memory(s);
    return out;
  }
  const std::size_t n = H5Tget_size(type.get());
  if (n == 0) fail();
  if (n > (std::size_t{1} << 24)) throw InputError(attr + " is longer than 16 MiB");
  std::string out(n + 1, '\0');
  PREF_H5_READ(H5Tset_size(mem.get(), n + 1), attr);  // room for the terminating NUL of C strings
  if (H5Aread(a.get(), mem.get(), out.data()) < 0) fail();
  out.resize(std::strlen(out.c_str()));
  return out;
}

template <class T>
void write_attribute(hid_t obj, const std::string& name, T value, const std::string& what) {
  Handle space(PREF_H5_CHECK(H5Screate(H5S_SCALAR), what), H5Sclose);
  Handle a(PREF_H5_CHECK(H5Acreate2(obj, name.c_str(), native_type<T>(), space.get(), H5P_DEFAULT,
                                    H5P_DEFAULT),
                         what),
           H5Aclose);
  PREF_H5_CHECK(H5Awrite(a.get(), native_type<T>(), &value), what);
}

void write_string_attribute(hid_t obj, const std::string& name, const std::string& value,
                            const std::string& what) {
  Handle space(PREF_H5_CHECK(H5Screate(H5S_SCALAR), what), H5Sclose);
  Handle type = string_type(value.size(), what);
  Handle a(
      PREF_H5_CHECK(
          H5Acreate2(obj, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), what),
      H5Aclose);
  std::string buf = value.empty() ? std::string(1, '\0') : value;
  PREF_H5_CHECK(H5Awrite(a.get(), type.get(), buf.data()), what);
}

#define PREF_INSTANTIATE_ATTR(T)                                               \
  template T read_attribute<T>(hid_t, const std::string&, const std::string&); \
  template void write_attribute<T>(hid_t, const std::string&, T, const std::string&);
PREF_INSTANTIATE_ATTR(double)
PREF_INSTANTIATE_ATTR(float)
PREF_INSTANTIATE_ATTR(std::int32_t)
PREF_INSTANTIATE_ATTR(std::uint32_t)
PREF_INSTANTIATE_ATTR(std::int64_t)
PREF_INSTANTIATE_ATTR(std::uint64_t)
#undef PREF_INSTANTIATE_ATTR

Handle create_dataset(hid_t loc, const std::string& name, hid_t file_type,
                      std::span<const hsize_t> dims, const std::string& what) {
  Handle space(
      PREF_H5_CHECK(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), what),
      H5Sclose);
  Handle dcpl = plist(H5P_DATASET_CREATE);
  // Space is allocated at creation so that every rank's collective write lands in place.
  PREF_H5_CHECK(H5Pset_alloc_time(dcpl.get(), H5D_ALLOC_TIME_EARLY), what);
  PREF_H5_CHECK(H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER), what);
  // No modification times in object headers: the same data gives a bitwise identical file.
  PREF_H5_CHECK(H5Pset_obj_track_times(dcpl.get(), false), what);
  return Handle(PREF_H5_CHECK(H5Dcreate2(loc, name.c_str(), file_type, space.get(), H5P_DEFAULT,
                                         dcpl.get(), H5P_DEFAULT),
                              what),
                H5Dclose);
}

Handle string_type(std::size_t width, const std::string& what) {
  Handle type(PREF_H5_CHECK(H5Tcopy(H5T_C_S1), what), H5Tclose);
  PREF_H5_CHECK(H5Tset_size(type.get(), std::max<std::size_t>(1, width)), what);
  PREF_H5_CHECK(H5Tset_strpad(type.get(), H5T_STR_NULLPAD), what);
  return type;
}

Handle create_string_dataset(hid_t loc, const std::string& name, std::uint64_t n, std::size_t width,
                             const std::string& what) {
  Handle type = string_type(width, what);
  hsize_t dims[1] = {n};
  return create_dataset(loc, name, type.get(), dims, what);
}

namespace {
// One collective transfer of rows [row0, row0+rows) (all columns), in rounds of at most
// `round_rows` rows; ranks with fewer rounds take part with empty selections. A failed round
// does not end the loop: the other ranks are in the same collective calls, so this rank takes
// part in every round and returns the first failure's message afterwards (empty: none).
template <class Op>
std::string transfer_rows(hid_t dataset, hid_t mem_type, std::uint64_t row0, std::uint64_t rows,
                          char* data, const mpi::Comm& comm, const std::string& what,
                          bool collective, Op op) {
  // Reads (collective) are of inputs: a failure there is bad input (PREF_H5_READ).
  auto check = [&](auto rc) {
    return collective ? check_read(rc, what) : check_rc(rc, what, __FILE__, __LINE__);
  };
  Handle fspace(check(H5Dget_space(dataset)), H5Sclose);
  const int nd = check(H5Sget_simple_extent_ndims(fspace.get()));
  std::vector<hsize_t> dims(nd);
  if (nd > 0) check(H5Sget_simple_extent_dims(fspace.get(), dims.data(), nullptr));
  hsize_t cols = 1;
  for (int d = 1; d < nd; ++d) cols *= dims[d];
  const std::size_t elem = H5Tget_size(mem_type);  // 0 is its failure
  if (elem == 0) check_rc(-1, what, __FILE__, __LINE__);
  const std::uint64_t round_rows =
      std::max<std::uint64_t>(1, (std::uint64_t{1} << 30) / (std::max<hsize_t>(cols, 1) * elem));
  const std::uint64_t my_rounds = (rows + round_rows - 1) / round_rows;
  const std::uint64_t rounds = mpi::allreduce_max(comm, my_rounds);
  Handle dxpl = transfer(collective);
  std::string failure;
  for (std::uint64_t r = 0; r < rounds; ++r) {
    const std::uint64_t lo = std::min(rows, r * round_rows);
    const std::uint64_t n = std::min(rows, lo + round_rows) - lo;
    std::vector<hsize_t> start(nd, 0), count(dims);
    if (nd > 0) {
      start[0] = row0 + lo;
      count[0] = n;
    }
    hsize_t mcount = n * cols;
    Handle mspace(PREF_H5_CHECK(H5Screate_simple(1, &mcount, nullptr), what), H5Sclose);
    if (n == 0 || cols == 0) {
      check(H5Sselect_none(fspace.get()));
      PREF_H5_CHECK(H5Sselect_none(mspace.get()), what);
    } else {
      check(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(),
                                nullptr));
    }
    if (op(dataset, mem_type, mspace.get(), fspace.get(), dxpl.get(), data + lo * cols * elem) <
        0) {
      const std::string msg = take_error_message();
      if (failure.empty()) failure = msg.empty() ? "unknown HDF5 error" : msg;
    }
  }
  return failure;
}
}  // namespace

std::string io_cause(const std::string& message) {
  // The MPI-IO layer's names for a full file system and a full quota.
  for (const char* full : {"MPI_ERR_NO_SPACE", "No space left", "ENOSPC"})
    if (message.find(full) != std::string::npos) return "no space left on device (" + message + ")";
  for (const char* quota : {"MPI_ERR_QUOTA", "quota"})
    if (message.find(quota) != std::string::npos) return "disk quota exceeded (" + message + ")";
  return message.empty() ? "unknown error" : message;
}

void finish_file(Handle& file, const std::string& path, const mpi::Comm& comm) {
  // The flush writes what the metadata cache still holds and syncs the MPI file; its outcome is
  // agreed before the close, so that no rank closes a file another failed to write.
  mpi::agree(comm, [&] {
    const bool failed = H5Fflush(file.get(), H5F_SCOPE_GLOBAL) < 0;
    const std::string msg = failed ? take_error_message() : "";
    const std::string lost = io::mpiio::take_failure();
    if (!lost.empty() || failed)
      throw IoError(path + ": cannot write the file: " + io_cause(lost.empty() ? msg : lost));
  });
  mpi::agree(comm, [&] {
    const bool failed = H5Fclose(file.release()) < 0;
    const std::string msg = failed ? take_error_message() : "";
    const std::string lost = io::mpiio::take_failure();
    if (!lost.empty() || failed)
      throw IoError(path + ": cannot close the file: " + io_cause(lost.empty() ? msg : lost));
  });
}

void write_rows_raw(hid_t dataset, hid_t mem_type, std::uint64_t row0, std::uint64_t rows,
                    const void* data, const mpi::Comm& comm, const std::string& what) {
  const std::string failure = transfer_rows(
      dataset, mem_type, row0, rows, static_cast<char*>(const_cast<void*>(data)), comm, what,
      /*collective=*/false, [](hid_t d, hid_t t, hid_t m, hid_t f, hid_t x, char* p) {
        return H5Dwrite(d, t, m, f, x, p);
      });
  const std::string lost = io::mpiio::take_failure();  // what HDF5 was told went well
  mpi::agree(comm, [&] {
    if (!lost.empty()) throw IoError(what + ": write failed: " + io_cause(lost));
    if (!failure.empty()) throw IoError(what + ": write failed: " + io_cause(failure));
  });
}

void read_rows_raw(hid_t dataset, hid_t mem_type, std::uint64_t row0, std::uint64_t rows,
                   void* data, const mpi::Comm& comm, const std::string& what) {
  // Reads run inside callers' agreements (which make a failure collective), so this one only
  // throws after taking part in every round.
  const std::string failure =
      transfer_rows(dataset, mem_type, row0, rows, static_cast<char*>(data), comm, what,
                    /*collective=*/true, [](hid_t d, hid_t t, hid_t m, hid_t f, hid_t x, char* p) {
                      return H5Dread(d, t, m, f, x, p);
                    });
  if (!failure.empty()) throw InputError(what + ": cannot read the data (" + failure + ")");
}

template <class T>
void write_rows(hid_t dataset, std::uint64_t row0, std::uint64_t rows, std::span<const T> data,
                const mpi::Comm& comm, const std::string& what) {
  write_rows_raw(dataset, native_type<T>(), row0, rows, data.data(), comm, what);
}

template <class T>
void read_rows(hid_t dataset, std::uint64_t row0, std::uint64_t rows, std::span<T> data,
               const mpi::Comm& comm, const std::string& what) {
  read_rows_raw(dataset, native_type<T>(), row0, rows, data.data(), comm, what);
}

#define PREF_INSTANTIATE_ROWS(T)                                                                  \
  template void write_rows<T>(hid_t, std::uint64_t, std::uint64_t, std::span<const T>,            \
                              const mpi::Comm&, const std::string&);                              \
  template void read_rows<T>(hid_t, std::uint64_t, std::uint64_t, std::span<T>, const mpi::Comm&, \
                             const std::string&);
PREF_INSTANTIATE_ROWS(double)
PREF_INSTANTIATE_ROWS(float)
PREF_INSTANTIATE_ROWS(std::int8_t)
PREF_INSTANTIATE_ROWS(std::uint8_t)
PREF_INSTANTIATE_ROWS(std::int16_t)
PREF_INSTANTIATE_ROWS(std::uint16_t)
PREF_INSTANTIATE_ROWS(std::int32_t)
PREF_INSTANTIATE_ROWS(std::uint32_t)
PREF_INSTANTIATE_ROWS(std::int64_t)
PREF_INSTANTIATE_ROWS(std::uint64_t)
#undef PREF_INSTANTIATE_ROWS

}  // namespace pref::h5
