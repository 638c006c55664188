#include "io/mpiio_guard.hpp"

#include <sys/statvfs.h>

#include <map>

namespace pref::io::mpiio {

namespace {

std::string& failure() {
  static std::string f;
  return f;
}

// The files open for writing, by name (for the test seam).
std::map<MPI_File, std::string>& writable() {
  static std::map<MPI_File, std::string> m;
  return m;
}

// Records a failed call (the first one since take_failure) and returns success for HDF5.
int record(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return rc;
  if (failure().empty()) {
    char buf[MPI_MAX_ERROR_STRING];
    int len = 0;
    PMPI_Error_string(rc, buf, &len);
    failure() = std::string(call) + ": " + std::string(buf, len);
  }
  return MPI_SUCCESS;
}

// Records a write that returned success but wrote fewer bytes than asked (Open MPI's posix
// layer reports a full disk this way: a message on standard error and a short count), and makes
// the status say every byte was written, as HDF5 is told the call succeeded.
//
// The cause is not returned (errno is gone by then): a file system whose free space is below
// what was not written is full, else the cause is unknown.
void check_count(MPI_File fh, int rc, MPI_Status* st, int count, MPI_Datatype type,
                 const char* call) {
  if (rc != MPI_SUCCESS) return;
  int size = 0;
  PMPI_Type_size(type, &size);
  MPI_Count written = 0;
  PMPI_Get_elements_x(st, MPI_BYTE, &written);
  const long long asked = static_cast<long long>(count) * size;
  if (written == asked) return;
  if (failure().empty()) {
    std::string cause = "cause unknown";
    auto it = writable().find(fh);
    if (it != writable().end()) {
      std::string dir = it->second.substr(0, it->second.find_last_of('/') + 1);
      struct statvfs v {};
      if (::statvfs(dir.empty() ? "." : dir.c_str(), &v) == 0 &&
          static_cast<long long>(v.f_bavail) * static_cast<long long>(v.f_frsize) < asked - written)
        cause = "No space left on device";
    }
    failure() = std::string(call) + ": wrote " + std::to_string(written) + " of " +
                std::to_string(asked) + " bytes (" + cause + ")";
  }
  PMPI_Status_set_elements_x(st, type, count);
}

bool injected(MPI_File fh, int count, MPI_Datatype type) {
  auto it = writable().find(fh);
  if (it == writable().end()) return false;
  int size = 0;
  PMPI_Type_size(type, &size);
  return fail_write(it->second.c_str(), static_cast<long long>(count) * size);
}

}  // namespace

std::string take_failure() {
  std::string f;
  f.swap(failure());
  return f;
}

[[gnu::weak]] bool fail_write(const char*, long long) {
  return false;
}

}  // namespace pref::io::mpiio

using pref::io::mpiio::check_count;
using pref::io::mpiio::injected;
using pref::io::mpiio::record;
using pref::io::mpiio::writable;

extern "C" {

int MPI_File_open(MPI_Comm comm, const char* filename, int amode, MPI_Info info, MPI_File* fh) {
  const int rc = PMPI_File_open(comm, filename, amode, info, fh);
  if (rc == MPI_SUCCESS && (amode & (MPI_MODE_WRONLY | MPI_MODE_RDWR))) writable()[*fh] = filename;
  return rc;
}

int MPI_File_close(MPI_File* fh) {
  writable().erase(*fh);
  return record(PMPI_File_close(fh), "MPI_File_close");
}

int MPI_File_write_at_all(MPI_File fh, MPI_Offset offset, const void* buf, int count,
                          MPI_Datatype type, MPI_Status* status) {
  MPI_Status local;
  MPI_Status* st = status == MPI_STATUS_IGNORE ? &local : status;
  const int rc = PMPI_File_write_at_all(fh, offset, buf, count, type, st);
  check_count(fh, rc, st, count, type, "MPI_File_write_at_all");
  return record(injected(fh, count, type) ? MPI_ERR_NO_SPACE : rc, "MPI_File_write_at_all");
}

int MPI_File_write_at(MPI_File fh, MPI_Offset offset, const void* buf, int count, MPI_Datatype type,
                      MPI_Status* status) {
  MPI_Status local;
  MPI_Status* st = status == MPI_STATUS_IGNORE ? &local : status;
  const int rc = PMPI_File_write_at(fh, offset, buf, count, type, st);
  check_count(fh, rc, st, count, type, "MPI_File_write_at");
  return record(injected(fh, count, type) ? MPI_ERR_NO_SPACE : rc, "MPI_File_write_at");
}

int MPI_File_sync(MPI_File fh) {
  return record(PMPI_File_sync(fh), "MPI_File_sync");
}

int MPI_File_set_size(MPI_File fh, MPI_Offset size) {
  return record(PMPI_File_set_size(fh, size), "MPI_File_set_size");
}

}  // extern "C"
