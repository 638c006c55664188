// pref types: a discrete-type factorization by hard EM under the ordinal label model, from a
// fitted model and its training labels (issue 13, solver/discrete/types.hpp, docs/format.md
// "Discrete types"). Parses the options into a types::Request, runs types::run
// (solver/discrete/run.hpp) and reports. Its output is what `pref adapt --types` reads.
#include <memory>

#include "solver/base/log.hpp"
#include "solver/cli/commands.hpp"
#include "solver/discrete/run.hpp"

namespace pref::cli {

Runner add_types(CLI::App& app) {
  auto o = std::make_shared<types::Request>();
  app.add_option("--model", o->model,
                 "Model file written by pref fit (its Z and the k-means of its users start the "
                 "fit)")
      ->required();
  app.add_option("--data", o->data, "Label file of the fit (its /labels: values 0, 0.5 or 1 only)")
      ->required();
  app.add_option("--out", o->out, "Output types file (HDF5, docs/format.md)")->required();
  app.add_option("--types", o->K, "Number of atoms (discrete user types) K");
  app.add_option("--rounds", o->rounds, "Hard-EM rounds (assign, atoms, Z, label model)");
  app.add_option("--seed", o->seed, "Seed of the k-means++ start");
  app.add_flag("--overwrite", o->overwrite, "Replace an existing output file");
  return [o](const mpi::Comm& comm) {
    const types::Report r = types::run(*o, comm);
    log::info(
        comm,
        "types: {} of {} atoms used; r={:.4f} s={:.4f} a={:.4f}; objective {:.6f}; fit {:.2f} "
        "s, {:.2f} s end to end; wrote {}",
        r.used, r.K, r.params.r, r.params.s, r.params.a, r.objective, r.fit_seconds,
        r.total_seconds, o->out);
    return 0;
  };
}

}  // namespace pref::cli
