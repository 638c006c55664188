#pragma once
// Errors and how they end a run.
//
// pref distinguishes two kinds of failure:
//  - InputError: bad input or usage (a file, a dataset, an option, a row). Exit code 2.
//  - IoError: the environment failed a write (no space left on device, quota, I/O error):
//    nothing was renamed into place and the previous output is untouched. Exit code 4.
//  - Error: anything else, i.e. a bug or another environment failure. Exit code 1.
// and two scopes:
//  - collective: every rank threw the same error at the same point (see agree() in mpi.hpp);
//    main prints it once and every rank returns the exit code normally.
//  - local: only this rank knows; main prints it with the rank and calls MPI_Abort, so no rank
//    is left waiting in a collective call.
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

namespace pref {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what, bool collective = false)
      : std::runtime_error(what), collective_(collective) {}
  // True once every rank is known to hold this same error.
  bool collective() const { return collective_; }
  virtual int exit_code() const { return 1; }

 private:
  bool collective_;
};

class InputError : public Error {
 public:
  // order: when several ranks find bad input, the one with the smallest order (e.g. the row
  // number in a file) is reported, so the message does not depend on the rank count.
  explicit InputError(const std::string& what, std::uint64_t order = kNoOrder,
                      bool collective = false)
      : Error(what, collective), order_(order) {}
  int exit_code() const override { return 2; }
  std::uint64_t order() const { return order_; }
  static constexpr std::uint64_t kNoOrder = std::numeric_limits<std::uint64_t>::max();

 private:
  std::uint64_t order_;
};

// A write, flush or close of an output failed (docs/design.md, "Errors"): the run wrote nothing
// under the final name and removed its temporary file. The message names the file and the cause.
class IoError : public Error {
 public:
  explicit IoError(const std::string& what, bool collective = false) : Error(what, collective) {}
  int exit_code() const override { return kExitIoFailure; }
  static constexpr int kExitIoFailure = 4;
};

// Exit code of a run stopped by a signal after writing a checkpoint (safe to requeue).
inline constexpr int kExitStoppedBySignal = 3;

}  // namespace pref
