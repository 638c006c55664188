#include "io/output_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <filesystem>
#include <system_error>

namespace pref::io {

namespace fs = std::filesystem;

AtomicOutput::AtomicOutput(std::string path, bool overwrite, const mpi::Comm& comm,
                           const std::string& option)
    : path_(std::move(path)), comm_(comm.view()) {
  mpi::agree(comm_, [&] {
    if (comm_.rank() != 0) return;
    if (path_.empty()) throw InputError(option + ": empty path");
    std::error_code ec;
    const fs::path p(path_);
    if (fs::is_directory(p, ec)) throw InputError(path_ + ": " + option + " names a directory");
    if (fs::exists(p, ec) && !overwrite)
      throw InputError(path_ + ": already exists; pass --overwrite to replace it (" + option +
                       ")");
    const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
    if (!fs::is_directory(dir, ec))
      throw InputError(path_ + ": " +
                       (fs::exists(dir, ec) ? dir.string() + " is not a directory"
                                            : "directory " + dir.string() + " does not exist") +
                       " (" + option + ")");
  });
  // One temporary name for all ranks, unique per job: the pid of rank 0.
  const long pid = mpi::broadcast(comm_, static_cast<long>(::getpid()));
  temp_ = path_ + ".partial." + std::to_string(pid);
  // Find out now, and name the output, if the directory does not take new files (read-only file
  // system, /proc, permissions for non-root users): otherwise the failure would come from the
  // HDF5 library later and name the temporary file.
  mpi::agree(comm_, [&] {
    if (comm_.rank() != 0) return;
    const int fd = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0)
      throw InputError(path_ + ": cannot create a file there: " + std::strerror(errno) + " (" +
                       option + ")");
    ::close(fd);
    ::unlink(temp_.c_str());
  });
}

AtomicOutput::~AtomicOutput() {
  if (!committed_ && comm_.rank() == 0) {
    std::error_code ec;
    fs::remove(temp_, ec);
  }
}

void AtomicOutput::commit() {
  comm_.barrier();  // every rank has closed its handle on the file
  mpi::agree(comm_, [&] {
    if (comm_.rank() != 0) return;
    std::error_code ec;
    fs::rename(temp_, path_, ec);
    if (ec) throw InputError(path_ + ": cannot rename " + temp_ + " into place: " + ec.message());
  });
  committed_ = true;
}

}  // namespace pref::io
