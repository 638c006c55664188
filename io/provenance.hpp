#pragma once
// Which files go together (docs/design.md, "Errors"): the one compatibility check of a model (or
// a types file) with a label file, and cross-file identity: a file derived from a model (types
// files, adapted-users files) records the model's path and a checksum of its comparison factors,
// and the data it was computed from, so that a command given a derived file and a model refuses
// a pair of different models (exit code 2, naming both files) instead of mixing them.
#include <cstdint>
#include <string>

#include "io/label_file.hpp"
#include "solver/base/mpi.hpp"

namespace pref::io {

// What a derived file records of its sources (root attributes model, model_checksum, data,
// data_checksum; checksums as 16 hex digits, empty in files written before they existed).
struct Provenance {
  std::string model, model_checksum;  // the model file and hex(its comparison factors' checksum)
  std::string data, data_checksum;    // the label file and hex(the checksum of the labels used)
};

// Writes / reads the four attributes on a file's root (reading: missing checksums are "").
void write_provenance(hid_t file, const Provenance& p, const std::string& what);
Provenance read_provenance(hid_t file, const std::string& what);

// A file with factors over comparisons (a model, a types file) as the compatibility check sees
// it: its path and option, the noun of its messages, and its counts.
struct FactorSource {
  std::string path, option, noun;  // e.g. "m.h5", "--model", "model"
  std::uint64_t users = 0, comparisons = 0;
};

// The one model/data compatibility check: the label file must have the source's comparisons
// (and, with `users`, its users: the fitted users' own labels), and the group `split` when given.
// An InputError naming both files and options otherwise, e.g. "d.h5: 300 comparisons, but the
// model m.h5 has 200 (--data, --model)". Not collective (call inside mpi::agree).
void require_compatible(const FactorSource& source, const LabelFile& data,
                        const std::string& data_option, bool users);

// Cross-file identity: `derived` (a types or adapted file, given with `derived_option`) must
// come from the model `model` whose comparison factors have the checksum `model_checksum` (hex).
// A file that records another checksum is an InputError naming both files and both checksums;
// a file that records none (written before pref recorded them) passes, and `unchecked` is set.
// Not collective (call inside mpi::agree).
void require_same_model(const std::string& derived, const std::string& derived_option,
                        const Provenance& recorded, const std::string& model,
                        const std::string& model_option, const std::string& model_checksum,
                        bool* unchecked = nullptr);

}  // namespace pref::io
