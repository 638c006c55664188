#pragma once
// The run configuration of `pref fit`, declared once. Each option is one entry of fit_fields():
// its name, help and checks, the FitOptions member that holds it (whose initializer is its
// default), and what a run does with it:
//   - Role::kIdentity: recorded in every checkpoint (and, with in_model, in the model header)
//     and required to match on resume: a checkpoint of other values is refused, naming the
//     option and both values;
//   - Role::kVariable: recorded the same way, but may change between runs (--max-sweeps, --tol);
//     a resume says so in the log;
//   - Role::kLocal: this process's business only (threads, file names, the initialization's
//     tuning, which a resume does not redo).
// The command line (add_fit_options), the checkpoint's configuration attributes and the checks
// of a resume (solver/cli/checkpoint.cpp) and the model header's configuration
// (solver/cli/fit.cpp) all iterate over that one table, so a new option is one entry there
// plus its use (docs/design.md, "Where to add things").
#include <CLI/CLI.hpp>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "io/checkpoint_file.hpp"
#include "solver/fit/fit.hpp"
#include "solver/svd/init.hpp"

namespace pref::cli {

struct CheckpointOptions {
  std::string dir;
  int every = 10;  // sweeps between checkpoints
  int keep = 2;    // checkpoints kept
  bool resume = false;
};

// Everything `pref fit` is given. The string options are kept as given (they are recorded as
// such); validate_fit_options derives the typed FitConfig and SvdConfig fields from them.
struct FitOptions {
  FitConfig cfg;
  SvdConfig svd;  // --init svd*: kind, J and seed are filled from the fit options
  CheckpointOptions ckpt;
  std::string data, out, metrics, init = "svd", model = "factor", exchange = "auto";
  std::string svd_qr = "cholesky";
  std::string duplicates = "error";
  std::string prior;                  // --prior; empty: population, or ridge when --mu-u is given
  std::string items = "comparisons";  // --items; FitConfig::item holds --mu-w
  std::string calibrate = "validation";  // --calibrate: validation or none
  std::string stop = "predictions";      // --stop: predictions or objective
  // --accelerate: none or squarem; empty: squarem with --stop objective where it applies
  // (the population prior, free comparison factors, no --extrapolate), else none
  std::string accelerate;
  int auc_every = 10;        // --auc-every (FitConfig::auc_every)
  double prior_relax = 1.8;  // --prior-relax (FitConfig::prior_relax)
  bool aitken = true;        // --aitken / --no-aitken (FitConfig::aitken)
  bool overwrite = false, drop_ties = false;
  // The parsed options by name, to tell an option given from its default.
  std::map<std::string, const CLI::Option*> parsed;
  bool given(const std::string& option) const;
};

enum class Role { kIdentity, kVariable, kLocal };

struct FitField {
  std::string option;     // "--mu-u"
  std::string attribute;  // "mu_u" in checkpoints and models ("" with Role::kLocal)
  Role role = Role::kLocal;
  bool in_model = false;  // recorded in the model header too (and so compared by finished_output)
  // The files' own `rank` attribute (the width of their factors), which io writes: not among
  // the configuration attributes.
  bool file_rank = false;
  // What files written before the option existed mean (e.g. --extrapolate: off); without it
  // the attribute is required.
  std::optional<io::AttributeValue> absent;
  std::string resume_note;  // said with a changed kVariable value
  std::function<CLI::Option*(CLI::App&, FitOptions&)> add;
  std::function<std::optional<std::string>(const FitOptions&)> check;  // an error message
  std::function<io::AttributeValue(const FitOptions&)> value;          // as recorded
  std::function<std::string(const io::AttributeValue&)> show;          // as the option reads
  std::size_t type = 0;  // the attribute's alternative in io::AttributeValue
};

// Every option of `pref fit`, in the order of the help and of the checks on resume (an option
// whose default follows another comes after it: --model, --rank; --mu-u, --prior,
// --extrapolate).
const std::vector<FitField>& fit_fields();

// Registers every option on `app`, bound to `o` (which must outlive the parse).
void add_fit_options(CLI::App& app, FitOptions& o);

// Checks the options and derives what follows from them (the prior from --mu-u, the
// extrapolation's default from the prior, the shared model's rank, prior and init, the typed
// choices). Throws InputError naming the option; the caller agrees on it across ranks.
void validate_fit_options(FitOptions& o);

// The recorded values: for checkpoints (kIdentity and kVariable) or the model header
// (in_model), by attribute name, without the files' own rank.
io::Attributes recorded(const FitOptions& o, bool model);

}  // namespace pref::cli
