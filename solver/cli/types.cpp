// pref types: a discrete-type factorization by hard EM under the ordinal label model, from a
// fitted model and its training labels (issue 13, solver/discrete/types.hpp, docs/format.md
// "Discrete types"). Its output replaces --model in `pref adapt --types`.
#include <fmt/core.h>

#include <chrono>
#include <memory>

#include "io/label_file.hpp"
#include "io/model_file.hpp"
#include "io/model_prior.hpp"
#include "io/output_file.hpp"
#include "io/provenance.hpp"
#include "io/types_file.hpp"
#include "solver/base/hash.hpp"
#include "solver/base/log.hpp"
#include "solver/cli/commands.hpp"
#include "solver/cli/data.hpp"
#include "solver/discrete/types.hpp"

namespace pref::cli {

namespace {

struct TypesOptions {
  std::string model, data, out;
  int K = 128, rounds = 3;
  std::uint64_t seed = 1;
  bool overwrite = false;
};

int run_types(const TypesOptions& o, const mpi::Comm& comm) {
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  mpi::agree(comm, [&] {
    if (o.K < 1) throw InputError(fmt::format("--types: {} atoms; must be >= 1", o.K));
    if (o.rounds < 0) throw InputError("--rounds: must be >= 0");
  });
  const io::ModelHeader hd = io::read_model_header(o.model, comm);
  const int J = static_cast<int>(hd.rank);
  mpi::agree(comm, [&] {
    if (hd.kind != io::ModelKind::kFactor)
      throw InputError(fmt::format(
          "{}: model kind '{}' has no user weights to cluster (--model needs kind 'factor')",
          o.model, io::kModelKindNames.name(hd.kind)));
  });
  const io::LabelFile data = io::LabelFile::open(o.data, comm, "--data");
  mpi::agree(comm, [&] {
    io::require_compatible({o.model, "--model", "model", hd.users, hd.comparisons}, data, "--data",
                           /*users=*/true);
    if (!data.has(io::Split::kTrain))
      throw InputError(o.data + ": no /labels group (the training labels) (--data)");
  });
  io::AtomicOutput out(o.out, o.overwrite, comm);
  LoadOptions lo;
  lo.categorical = true;
  lo.duplicates_option = false;
  const LabelMatrix labels = load_split(data, io::Split::kTrain, comm, std::nullopt, lo);
  const std::vector<double> U =
      io::read_model_rows(o.model, comm, "user_factors", 0, hd.users, hd.rank);
  std::vector<double> Z =
      io::read_model_rows(o.model, comm, "comparison_factors", 0, hd.comparisons, hd.rank);
  // Cross-file identity: the model's comparison factors and the training labels.
  const std::string model_checksum = hash::hex(hash::rows(0, Z, hd.rank));
  const std::string data_checksum = hash::hex(labels_checksum(comm, labels));
  log::info(comm,
            "types: {} users, {} comparisons, {} training labels of {}, J={}, K={}, {} rounds, "
            "{} ranks",
            labels.users, labels.comparisons, labels.labels, o.data, J, o.K, o.rounds, comm.size());
  types::Options opt;
  opt.K = o.K;
  opt.rounds = o.rounds;
  opt.seed = o.seed;
  const auto t_fit = clock::now();
  types::Model m = types::fit(comm, labels, U, std::move(Z), J, opt,
                              [&](const std::string& line) { log::info(comm, "{}", line); });
  const double fit_seconds = std::chrono::duration<double>(clock::now() - t_fit).count();

  io::TypesData t;
  t.comparisons = hd.comparisons;
  t.users = m.users;
  t.rank = hd.rank;
  t.K = static_cast<std::uint32_t>(m.K);
  t.rounds = static_cast<std::uint32_t>(o.rounds);
  t.seed = o.seed;
  t.r = m.params.r;
  t.s = m.params.s;
  t.a = m.params.a;
  t.objective = m.objective;
  t.model = o.model;
  t.data = o.data;
  t.model_checksum = model_checksum;
  t.data_checksum = data_checksum;
  t.Z = std::move(m.Z);
  t.atoms = std::move(m.atoms);
  t.atom_weights = m.weights;  // counted below
  t.history = std::move(m.history);
  io::write_types(out.temp_path(), comm, t);
  out.commit();
  int used = 0;
  for (double w : m.weights) used += w > 0;
  log::info(comm,
            "types: {} of {} atoms used; r={:.4f} s={:.4f} a={:.4f}; objective {:.6f}; fit {:.2f} "
            "s, {:.2f} s end to end; wrote {}",
            used, m.K, m.params.r, m.params.s, m.params.a, m.objective, fit_seconds,
            std::chrono::duration<double>(clock::now() - t0).count(), o.out);
  return 0;
}

}  // namespace

Runner add_types(CLI::App& app) {
  auto o = std::make_shared<TypesOptions>();
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
  return [o](const mpi::Comm& comm) { return run_types(*o, comm); };
}

}  // namespace pref::cli
