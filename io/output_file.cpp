#include "io/output_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <filesystem>
#include <system_error>

namespace pref::io {

namespace fs = std::filesystem;

void refuse_as_output(const std::string& path, const std::vector<std::string>& inputs,
                      const std::string& option) {
  struct stat out {};
  if (::stat(path.c_str(), &out) != 0) return;  // nothing there yet (or a dangling link)
  for (const std::string& in : inputs) {
    struct stat st {};
    if (!in.empty() && ::stat(in.c_str(), &st) == 0 && st.st_dev == out.st_dev &&
        st.st_ino == out.st_ino)
      throw InputError(path + ": is the input " + in + "; an output never replaces an input (" +
                       option + ")");
  }
  if (!S_ISREG(out.st_mode))
    throw InputError(path + ": " +
                     (S_ISDIR(out.st_mode) ? std::string("names a directory")
                                           : std::string("is not a regular file (a device, FIFO "
                                                         "or socket); pref replaces only "
                                                         "regular files")) +
                     " (" + option + ")");
}

AtomicOutput::AtomicOutput(std::string path, bool overwrite, const mpi::Comm& comm,
                           const std::string& option, const std::vector<std::string>& inputs)
    : path_(std::move(path)), comm_(comm.view()) {
  mpi::agree(comm_, [&] {
    if (comm_.rank() != 0) return;
    if (path_.empty()) throw InputError(option + ": empty path");
    std::error_code ec;
    const fs::path p(path_);
    if (fs::is_directory(p, ec)) throw InputError(path_ + ": " + option + " names a directory");
    refuse_as_output(path_, inputs, option);
    if (fs::exists(p, ec) && !overwrite)
      throw InputError(path_ + ": already exists; pass --overwrite to replace it (" + option + ")");
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
    if (ec) throw IoError(path_ + ": cannot rename " + temp_ + " into place: " + ec.message());
  });
  committed_ = true;
}

LineOutput::LineOutput(std::string path, bool replace, const mpi::Comm& comm,
                       const std::string& option, const std::vector<std::string>& inputs)
    : path_(std::move(path)), comm_(comm.view()) {
  mpi::agree(comm_, [&] {
    if (comm_.rank() != 0) return;
    refuse_as_output(path_, inputs, option);
    std::error_code ec;
    if (fs::exists(path_, ec) && !replace)
      throw InputError(path_ + ": already exists; pass --overwrite to replace it (" + option + ")");
    file_ = std::fopen(path_.c_str(), "w");
    if (!file_)
      throw InputError(path_ + ": cannot open for writing: " + std::strerror(errno) + " (" +
                       option + ")");
  });
}

LineOutput::~LineOutput() {
  if (file_) std::fclose(file_);  // every line was flushed and checked by write()
}

void LineOutput::write(const std::vector<std::string>& lines) {
  mpi::agree(comm_, [&] {
    if (!file_) return;
    for (const std::string& l : lines) {
      std::fputs(l.c_str(), file_);
      std::fputc('\n', file_);
    }
    if (std::fflush(file_) != 0 || std::ferror(file_)) {
      const int err = errno;
      std::fclose(file_);  // nothing more is written to a file whose end is lost
      file_ = nullptr;
      throw IoError(path_ + ": cannot write: " + std::strerror(err));
    }
  });
}

}  // namespace pref::io
