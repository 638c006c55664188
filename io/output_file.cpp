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

namespace {

struct Noted {
  std::string path, option;
};
struct Registry {
  std::vector<Noted> inputs, outputs;
};
Registry* g_run = nullptr;  // the RunFiles in scope, if any

// Whether a and b name the same existing file (stat follows symbolic links).
bool same_file(const std::string& a, const std::string& b) {
  struct stat sa {
  }, sb{};
  return !a.empty() && !b.empty() && ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 &&
         sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

std::string with_option(const std::string& option) {
  return option.empty() ? std::string() : " (" + option + ")";
}

}  // namespace

RunFiles::RunFiles() {
  delete g_run;
  g_run = new Registry;
}

RunFiles::~RunFiles() {
  delete g_run;
  g_run = nullptr;
}

void note_input(const std::string& path, const std::string& option) {
  if (!g_run) return;
  for (const Noted& out : g_run->outputs)
    if (same_file(path, out.path))
      throw InputError(path + ": is the output " + out.path + with_option(out.option) +
                       " of this run; an output never replaces an input" + with_option(option));
  g_run->inputs.push_back({path, option});
}

void refuse_as_output(const std::string& path, const std::vector<std::string>& inputs,
                      const std::string& option) {
  struct stat out {};
  if (::stat(path.c_str(), &out) != 0) return;  // nothing there yet (or a dangling link)
  std::vector<Noted> all;
  for (const std::string& in : inputs) all.push_back({in, {}});
  if (g_run) all.insert(all.end(), g_run->inputs.begin(), g_run->inputs.end());
  for (const Noted& in : all)
    if (same_file(path, in.path))
      throw InputError(path + ": is the input " + in.path + with_option(in.option) +
                       "; an output never replaces an input" + with_option(option));
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
    : path_(std::move(path)), option_(option), inputs_(inputs), comm_(comm.view()) {
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
  if (g_run) g_run->outputs.push_back({path_, option_});
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
    // Inputs opened after the output was reserved are checked again here, last.
    refuse_as_output(path_, inputs_, option_);
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
  if (g_run) g_run->outputs.push_back({path_, option});
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
