#pragma once
// Checkpoints of `pref fit` (docs/checkpoints.md): the checkpoint directory (names, atomic
// writes, keeping the last K, finding the newest valid checkpoint) and the rules for resuming
// with a command line: the run's configuration as fit_fields() records and compares it
// (solver/cli/fit_options.hpp), and the identity of its data.
#include <cstdint>
#include <optional>
#include <string>

#include "io/checkpoint_file.hpp"
#include "solver/cli/fit_options.hpp"
#include "solver/fit/fit.hpp"
#include "solver/layout/distribute.hpp"

namespace pref::cli {

// What a checkpoint records of its training data, besides the path (a copy or a move is the
// same data): sizes and a checksum of the training labels. A resume must find the same.
struct DataIdentity {
  std::uint64_t users = 0, comparisons = 0, train_labels = 0, checksum = 0;
  // --init model:PATH: the checksum of the model it starts from ("" otherwise).
  std::string init_model;
};

// The identity of `train`: the checksum is the sum over the training labels of a hash of (user,
// comparison, value), the same at any rank count. Collective.
DataIdentity data_identity(const mpi::Comm& comm, const LabelMatrix& train);

// A checkpoint to resume from: the file (its header; the factors are moved into the state) and
// the fit's state.
struct Resumed {
  io::Checkpoint checkpoint;
  FitState state;
};

// ckpt-000012.h5 (after 12 sweeps), ckpt-000013-half.h5 (after the user half-step of sweep 13).
std::string checkpoint_name(int sweep, bool user_half_done);

class Checkpointer {
 public:
  // Creates the directory if needed and removes temporary files of interrupted writes.
  // Collective; a bad directory is an InputError naming --checkpoint-dir.
  Checkpointer(const CheckpointOptions& opt, const mpi::Comm& comm);

  // The newest valid checkpoint of the directory, read by the given partitions, or nullopt when
  // there is none. Checkpoints that cannot be read or fail their checksums are skipped with a
  // warning naming them and renamed to <name>.invalid; a valid one whose configuration or data
  // contradicts the options or the data is refused with an InputError naming the option and
  // both values. Collective.
  std::optional<Resumed> find_resumable(const Partitions& parts, const FitOptions& o,
                                        const DataIdentity& data);

  // A run without --resume: a directory holding checkpoints is refused (InputError naming
  // --checkpoint-dir) unless `overwrite`, which removes them. Collective.
  void start_fresh(bool overwrite);

  // Whether the state after `sweep` completed sweeps is due for a checkpoint.
  bool due(int sweep) const { return opt_.every > 0 && sweep % opt_.every == 0; }

  // Writes the state atomically (temporary name, flushed, renamed) and removes all but the
  // newest `keep` checkpoints. Collective.
  void write(const FitState& state, const FitOptions& o, const DataIdentity& data,
             const Partitions& parts, Exchange exchange);

  const std::string& dir() const { return opt_.dir; }

 private:
  CheckpointOptions opt_;
  const mpi::Comm& comm_;
};

// A requeued `fit --resume` whose run had already finished: true (and said in the log) when
// `out` exists, --overwrite is not given, and `out` is a model file of rank J that records the
// options of `o` (every in_model field of fit_fields()): the work is done and the run exits 0.
// False otherwise (an existing file that is not this run's is then refused as usual).
// Collective.
bool finished_output(const mpi::Comm& comm, const FitOptions& o);

// Throws a collective InputError when the checkpoint contradicts the command line (a Role::
// kIdentity option, in the order of fit_fields(), then the data); logs the kVariable options
// that changed.
void check_resumable(const mpi::Comm& comm, const io::Checkpoint& ck, const FitOptions& o,
                     const DataIdentity& data);

}  // namespace pref::cli
