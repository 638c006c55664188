#pragma once
// Checkpoints of `pref fit` (docs/checkpoints.md): the checkpoint directory (names, atomic
// writes, keeping the last K, finding the newest valid checkpoint), the identity of a run
// (configuration and data file) and the rules for resuming with a command line.
#include <cstdint>
#include <optional>
#include <string>

#include "io/checkpoint_file.hpp"
#include "solver/distribute.hpp"
#include "solver/fit.hpp"

namespace pref::cli {

struct CheckpointOptions {
  std::string dir;
  int every = 10;  // sweeps between checkpoints
  int keep = 2;    // checkpoints kept
  bool resume = false;
};

// What a checkpoint must agree with to be resumed (see check_resumable).
struct RunIdentity {
  int J = 0;
  std::string model, init, exchange, duplicates;
  double mu_u = 0, mu_z = 0, tol = 0, init_scale = 0;
  std::uint64_t seed = 0;
  int newton_steps = 0, max_sweeps = 0;
  bool drop_ties = false;
  bool extrapolate = false;
  std::string prior = "ridge";  // --prior (checkpoints written before it have none: ridge)
  // The data file: path, sizes and a checksum of the training labels (training_checksum).
  std::string data;
  std::uint64_t users = 0, comparisons = 0, train_labels = 0, train_checksum = 0;
};

// Sum over the training labels of a hash of (user, comparison, value): the same at any rank
// count. Collective.
std::uint64_t training_checksum(const mpi::Comm& comm, const LabelMatrix& train);

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
  // contradicts `id` is refused with an InputError naming the option and both values.
  // Collective.
  std::optional<io::Checkpoint> find_resumable(const Partitions& parts, const RunIdentity& id);

  // A run without --resume: a directory holding checkpoints is refused (InputError naming
  // --checkpoint-dir) unless `overwrite`, which removes them. Collective.
  void start_fresh(bool overwrite);

  // Whether the state after `sweep` completed sweeps is due for a checkpoint.
  bool due(int sweep) const { return opt_.every > 0 && sweep % opt_.every == 0; }

  // Writes the state atomically (temporary name, flushed, renamed) and removes all but the
  // newest `keep` checkpoints. Collective.
  void write(const FitState& state, const RunIdentity& id, Exchange used, double objective,
             const std::string& history_json, const std::string& pending_json,
             const Partitions& parts);

  const std::string& dir() const { return opt_.dir; }

 private:
  CheckpointOptions opt_;
  const mpi::Comm& comm_;
};

// A requeued `fit --resume` whose run had already finished: true (and said in the log) when
// `out` exists, overwrite is false, and `out` is a model file of rank J whose recorded options
// are `expected` (a subset of the model's root attributes): the work is done and the run exits 0.
// False otherwise (an existing file that is not this run's is then refused as usual).
// Collective.
bool finished_output(const mpi::Comm& comm, const std::string& out, bool overwrite, int J,
                     const io::Attributes& expected);

// The extrapolation's factor stored in a checkpoint of a fit --extrapolate run (the defaults
// when it has none).
ExtrapolationState extrapolation_of(const io::Checkpoint& ck);

// The population prior stored in a checkpoint of a fit --prior population run (nullopt when
// it has none).
std::optional<PopulationPrior> prior_of(const io::Checkpoint& ck);

// Throws a collective InputError when the checkpoint contradicts the command line.
void check_resumable(const mpi::Comm& comm, const io::Checkpoint& ck, const RunIdentity& id);

}  // namespace pref::cli
