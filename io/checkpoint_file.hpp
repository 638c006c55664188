#pragma once
// The checkpoint file written by `pref fit --checkpoint-dir` (docs/checkpoints.md):
//   /                    attrs format="pref-checkpoint", format_version, users, comparisons,
//                        rank, sweep (completed sweeps), user_half_done (1: the user half-step
//                        of sweep + 1 is done too), the run's configuration
//                        (solver/cli/fit_options.hpp) and the identity of its data file
//                        (solver/cli/checkpoint.hpp), the fit's state
//                        (solver/fit/checkpoint_state.hpp), pending (JSON of the sweep in progress,
//                        or ""), header_checksum
//   /user_factors        users x rank, float64, attr checksum
//   /comparison_factors  comparisons x rank, float64, attr checksum
//   /<name>_user_factors, /<name>_comparison_factors
//                        (optional) further states' rows, like the factors, attr checksum:
//                        previous_ (fit --extrapolate: U and Z before their last push), best_
//                        (the stopping rule's best state), squarem0_, squarem1_ (the SQUAREM
//                        cycle's saved states); solver/fit/checkpoint_state.cpp
//   /history             uint8: JSON lines, one object per completed sweep (with timings)
//   /state/<name>        (optional) float64 vectors of the fit's state, the same on every rank:
//                        the population prior (solver/prior/population_prior.hpp), the item
//                        parameters theta (solver/items/items.hpp), covered by the header checksum
// Checksums are 16 hex digits. A factor dataset's is the sum modulo 2^64 of a hash of each row
// with its global row id (solver/base/hash.hpp), so any number of ranks can check it; the
// header's covers every root attribute and the history.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "io/pref_file.hpp"
#include "solver/base/mpi.hpp"
#include "solver/base/partition.hpp"

namespace pref::io {

inline constexpr FileKind kCheckpointFile{"pref-checkpoint", "checkpoint", 1};

struct CheckpointHeader {
  std::uint64_t users = 0, comparisons = 0;
  std::uint32_t rank = 0;
  std::int64_t sweep = 0;
  bool user_half_done = false;
  Attributes attributes;  // configuration and data identity (names must not clash with the above)
  std::string history_json;  // JSON lines
  std::string pending_json;  // "" unless user_half_done
  // Small replicated vectors of the fit's state (every rank holds the same), under /state.
  std::map<std::string, std::vector<double>> arrays;
};

// The factor datasets of a checkpoint by name: this rank's rows (of the users' partition when
// the name ends in "user_factors", else of the comparisons'). "user_factors" and
// "comparison_factors" are required; the others (the same names on every rank) optional.
using CheckpointFactors = std::map<std::string, const std::vector<double>*>;

// Writes the checkpoint collectively, computes and stores the checksums, and flushes the file to
// storage (MPI_File_sync) before closing it.
void write_checkpoint(const std::string& path, const mpi::Comm& comm, const CheckpointHeader& hd,
                      const Partition& users, const Partition& comparisons,
                      const CheckpointFactors& factors);

struct Checkpoint {
  std::string path;
  CheckpointHeader header;
  // Every factor dataset of the file by name: this rank's rows of the partitions passed to
  // read_checkpoint ("user_factors" and "comparison_factors" always).
  std::map<std::string, std::vector<double>> factors;
  // False when the checkpoint is valid but holds another number of users or comparisons than
  // the partitions: then no factors were read, and the caller refuses it as written for other
  // data (it is not corrupt, so it must not be discarded).
  bool shape_matches = true;

  // The root attribute `name` of type T (double, std::int64_t or std::string); missing or of
  // another type: an InputError naming the file.
  template <class T>
  const T& attribute(const std::string& name) const;
};

// Opens and validates a checkpoint (format, attributes, shapes, header and factor checksums)
// and reads this rank's rows of the given partitions when they cover the checkpoint's users and
// comparisons (else see shape_matches). Any problem is a collective InputError naming the file
// and the problem.
Checkpoint read_checkpoint(const std::string& path, const mpi::Comm& comm, const Partition& users,
                           const Partition& comparisons);

}  // namespace pref::io
