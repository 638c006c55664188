#pragma once
// `pref fit --items comparisons|responses|embeddings` (issue 14): the option, its checks, the
// item data it loads and what it adds to the model file, kept here in one place so that the
// fit's own option handling (solver/cli/fit.cpp) touches it at three lines.
#include <CLI/CLI.hpp>

#include <string>

#include "io/label_file.hpp"
#include "io/model_file.hpp"
#include "solver/fit.hpp"

namespace pref::cli {

struct FitItemsOption {
  std::string items = "comparisons";
  double mu_w = 1e-3;

  void add(CLI::App& app);
  // Inside the fit's option agreement: the combinations the item models do not support yet
  // (checkpoints, extrapolation, the reduce exchange) are bad usage; turns the extrapolation's
  // default off for them.
  void check(FitConfig& cfg, const std::string& checkpoint_dir, bool extrapolate_given,
             const std::string& exchange) const;
  // Collective: loads the item data of the label file into cfg (exit 2 when the file lacks it).
  void load(const io::LabelFile& data, FitConfig& cfg, const mpi::Comm& comm) const;
  // The model file's `items` attribute and item parameters (nullptr: comparisons).
  const io::ModelItems* model(io::ModelHeader& hd, const FitResult& res);

 private:
  io::ModelItems out_;
};

}  // namespace pref::cli
