#pragma once
// Writing an output file so that a failing run never leaves a partial file under the final name
// and never clobbers an existing one unless asked: the file is written under a temporary name in
// the same directory and renamed over the final name only once complete.
#include <string>

#include "solver/base/mpi.hpp"

namespace pref::io {

class AtomicOutput {
 public:
  // Collective. Throws a collective InputError (naming `option`, e.g. "--out") when the path
  // exists and overwrite is false, or when its directory does not exist.
  AtomicOutput(std::string path, bool overwrite, const mpi::Comm& comm,
               const std::string& option = "--out");
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
  mpi::Comm comm_;
  bool committed_ = false;
};

}  // namespace pref::io
