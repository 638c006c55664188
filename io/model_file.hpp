#pragma once
// The model file written by `pref fit` (docs/format.md):
//   /                    attrs format="pref-model", format_version, users, comparisons, rank,
//                        kind ("factor" | "shared"), and the run's configuration
//   /user_factors        users x rank, float64
//   /comparison_factors  comparisons x rank, float64
//   /history             fixed-length strings, one JSON object per sweep (no timings, so the same
//                        run gives a bitwise identical file)
//   /prior/mean          (fit --prior population) J float64: the population mean m
//   /response_factors    (fit --items responses) responses x rank float64: phi_r
//   /embedding_head      (fit --items embeddings) d x rank float64: W, phi_r = W^T e_r
//   /embedding_residual  (fit --items embeddings --residual) responses x rank float64: d_r,
//                        phi_r = W^T e_r + d_r for the fit's responses
//   /prior/covariance    J x J float64: the population covariance Sigma; the group's attributes
//                        kind = "population" and users (the users it was estimated from)
#include <cstdint>
#include <string>
#include <vector>

#include "io/pref_file.hpp"
#include "solver/base/enum_names.hpp"
#include "solver/base/mpi.hpp"
#include "solver/base/partition.hpp"

namespace pref::io {

inline constexpr FileKind kModelFile{"pref-model", "model file", 1};

// The model's root attribute `kind` (and `fit --model`): personalized factors U and Z, or one
// shared score per comparison (u_i = 1).
enum class ModelKind { kFactor, kShared };
inline constexpr EnumNames<ModelKind, 2> kModelKindNames{
    {{{ModelKind::kFactor, "factor"}, {ModelKind::kShared, "shared"}}}};

struct ModelHeader {
  std::uint64_t users = 0, comparisons = 0;
  std::uint32_t rank = 0;
  ModelKind kind = ModelKind::kFactor;
  // Configuration and results stored as root attributes (numbers or strings).
  Attributes attributes;
  std::string history_json;
  // The population prior u ~ N(prior_mean, prior_covariance) (empty when the fit had none).
  std::vector<double> prior_mean, prior_covariance;  // J, J x J row-major
  std::uint64_t prior_users = 0;
  // P(first preferred) = sigmoid(calibration_scale u.z) (solver/eval/calibration.hpp): the root
  // attribute `calibration_scale` when present (read only; the fit writes it among
  // `attributes`), 1 for models written before it existed.
  double calibration_scale = 1;
  // The names of the objects at the file's root (e.g. "embedding_head").
  std::vector<std::string> objects;
  bool has(const std::string& name) const {
    for (const std::string& o : objects)
      if (o == name) return true;
    return false;
  }
};

// The item parameters of `fit --items responses|embeddings` (docs/format.md): a float64 dataset
// `dataset` (/response_factors, R x rank, or /embedding_head, d x rank) whose rows are split
// over the ranks by `rows`; `local` holds this rank's.
struct ModelItems {
  std::string dataset;
  Partition rows;
  std::vector<double> local;
};

// Writes the model collectively; U and Z hold this rank's rows of the given partitions.
void write_model(const std::string& path, const mpi::Comm& comm, const ModelHeader& header,
                 const Partition& users, const std::vector<double>& U, const Partition& comparisons,
                 const std::vector<double>& Z, const ModelItems* items = nullptr,
                 const ModelItems* residual = nullptr);

struct ModelFile {
  ModelHeader header;
  std::vector<double> U, Z;  // this rank's rows of the partitions passed to read_model
};

// The largest rank a model may declare (fit --rank's bound).
inline constexpr std::uint32_t kMaxRank = 4096;
// |Sigma_ab - Sigma_ba| beyond this times the largest |entry| makes a stored covariance "not
// symmetric" (an input error), instead of one triangle being used and the other ignored.
inline constexpr double kSymmetryTolerance = 1e-10;

// Opens and validates the model (collective errors naming the file): its attributes, the
// factor datasets' shapes, and the prior when there is one (finite values, a symmetric positive
// definite covariance). Reads this rank's rows (read_model), every value checked to be finite.
// as_input = false: reading the run's own output (fit --resume's finished model), which is not
// noted as an input (io/output_file.hpp).
ModelHeader read_model_header(const std::string& path, const mpi::Comm& comm, bool as_input = true);
ModelFile read_model(const std::string& path, const mpi::Comm& comm, const Partition& users,
                     const Partition& comparisons);

// The root attributes `names` of the model (configuration and results; a name the file does not
// have is left out), after read_model_header. By name, not by iterating over every attribute:
// HDF5 1.10.8 can crash iterating over a damaged attribute table (found by fuzz_files), while
// opening an attribute by name reports the damage. Collective.
Attributes read_model_attributes(const std::string& path, const mpi::Comm& comm,
                                 const std::vector<std::string>& names);

// A whole rows x J float dataset of the model (e.g. /embedding_head), read by every rank, every
// value checked to be finite; its rows in `rows`. Collective.
std::vector<double> read_model_matrix(const std::string& path, const mpi::Comm& comm,
                                      const std::string& dataset, std::uint32_t J,
                                      std::uint64_t* rows);

// The checksum of the model's /comparison_factors (io::factor_checksum): what files derived from
// the model record of it (cross-file identity, io/provenance.hpp). Collective.
std::uint64_t model_comparison_checksum(const std::string& path, const mpi::Comm& comm,
                                        const ModelHeader& header);

}  // namespace pref::io
