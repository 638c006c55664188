#pragma once
// The fit's state in files: the typed conversions between the solver's records and states
// (SweepRecord, FitState, PopulationPrior; solver/fit/state.hpp) and
// what the checkpoint, model and metrics files hold (docs/checkpoints.md, docs/format.md). The
// layers above pass the types; only this file knows their stored form.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/checkpoint_file.hpp"
#include "solver/fit/fit.hpp"

namespace pref {

// A sweep's record as every file holds it: one JSON object (a line of --metrics, of the model's
// and the checkpoint's /history, the checkpoint's `pending`); metrics that are NaN are null.
// with_timings: the seconds of each part (this rank's), which the model leaves out so that the
// same run gives a bitwise identical model.
nlohmann::json record_to_json(const SweepRecord& r, bool with_timings);
// The inverse (missing timings are 0). Throws InputError naming `what` when the object lacks a
// key or holds another type.
SweepRecord record_from_json(const nlohmann::json& j, const std::string& what);
// JSON lines, one record each.
std::string history_lines(const std::vector<SweepRecord>& history, bool with_timings);

// The state's part of a checkpoint: the header (sweep, user_half_done, rank, `objective` (the
// last record's: the reference of the --tol test, bitwise), with extrapolation the factor's
// adaptation, the stopping rule's and SQUAREM's scalars, the population priors, theta, the
// history and the pending record, with timings) and the factor datasets of every state it
// holds (current, extrapolation's previous, the best, SQUAREM's saved ones), pointing into
// `st`, which must outlive the write (io::write_checkpoint).
void encode_state(const FitState& st, bool extrapolate, io::CheckpointHeader& hd,
                  io::CheckpointFactors& factors);

// A checkpoint's state (the factors are moved out of `ck`). Throws InputError naming the file
// when a part is missing or inconsistent: records not numbered 0..sweep, a pending record of
// another sweep, a prior array of another shape or none in a checkpoint of --prior population,
// a saved state without its factors.
FitState decode_state(io::Checkpoint& ck);

}  // namespace pref
