#pragma once
// Writing an output file so that a failing run never leaves a partial file under the final name
// and never clobbers an existing one unless asked: the file is written under a temporary name in
// the same directory and renamed over the final name only once complete. An output is never one
// of the run's inputs (the same file, compared by device and inode, not by name) and never
// replaces anything but a regular file (/dev/null, a FIFO, a directory).
#include <cstdio>
#include <string>
#include <vector>

#include "solver/base/mpi.hpp"

namespace pref::io {

// The files of one run of a command: every input it reads and every output it reserves, by
// device and inode (so that links, `..` and other names of one file count as that file). While a
// RunFiles exists (cli::run makes one per command; library code and unit tests run without),
//  - every input opened through io (open_pref_file, hence every pref file kind; the import's
//    input) is noted with note_input, which refuses a file that is an output of the run;
//  - AtomicOutput and LineOutput refuse to replace any input noted so far, and AtomicOutput
//    checks again right before it renames its file into place;
// so an output never replaces an input, whichever order a command opens them in.
class RunFiles {
 public:
  RunFiles();
  ~RunFiles();
  RunFiles(const RunFiles&) = delete;
  RunFiles& operator=(const RunFiles&) = delete;
};

// Notes `path` as an input of the run (nothing without a RunFiles). Throws an InputError naming
// `option` when it is an output the run has reserved. Not collective (every rank may call it;
// errors are made collective by the caller's mpi::agree).
void note_input(const std::string& path, const std::string& option = {});

// Throws an InputError naming `option` when `path` is the same file as one of `inputs` or of
// the inputs noted by note_input (same device and inode: links and other names of one file
// count) or when it exists and is not a regular file. Not collective: call it on one rank inside
// mpi::agree.
void refuse_as_output(const std::string& path, const std::vector<std::string>& inputs,
                      const std::string& option);

class AtomicOutput {
 public:
  // Collective. Throws a collective InputError (naming `option`, e.g. "--out") when the path
  // exists and overwrite is false, when its directory does not exist, or as refuse_as_output.
  AtomicOutput(std::string path, bool overwrite, const mpi::Comm& comm,
               const std::string& option = "--out", const std::vector<std::string>& inputs = {});
  ~AtomicOutput();  // removes the temporary file unless committed
  AtomicOutput(const AtomicOutput&) = delete;
  AtomicOutput& operator=(const AtomicOutput&) = delete;

  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_; }
  // Collective; every rank must have closed the file. Renames the temporary file over path.
  void commit();

 private:
  std::string path_;
  std::string temp_;
  std::string option_;
  std::vector<std::string> inputs_;
  mpi::Comm comm_;
  bool committed_ = false;
};

// A text file that rank 0 writes line by line while a run goes on (fit --metrics): written in
// place, since its lines are the run's progress, but every write is flushed and checked and its
// outcome agreed, so that a full disk ends the run on every rank with an IoError naming the file.
class LineOutput {
 public:
  // Collective. An existing file is refused (InputError naming option) unless `replace`; it is
  // refused as refuse_as_output whatever `replace` says. The file is truncated.
  LineOutput(std::string path, bool replace, const mpi::Comm& comm, const std::string& option,
             const std::vector<std::string>& inputs);
  ~LineOutput();
  LineOutput(const LineOutput&) = delete;
  LineOutput& operator=(const LineOutput&) = delete;

  // Collective: rank 0 appends the lines (each gets a newline) and flushes them.
  void write(const std::vector<std::string>& lines);

 private:
  std::string path_;
  mpi::Comm comm_;
  std::FILE* file_ = nullptr;
};

}  // namespace pref::io
