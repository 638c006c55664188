#include "solver/discrete/run.hpp"

#include <fmt/core.h>

#include <chrono>

#include "io/label_file.hpp"
#include "io/model_file.hpp"
#include "io/model_prior.hpp"
#include "io/output_file.hpp"
#include "io/types_file.hpp"
#include "solver/base/log.hpp"
#include "solver/discrete/types.hpp"
#include "solver/layout/load.hpp"

namespace pref::types {

namespace {
// The model's header: a factor model's.
io::ModelHeader read_model(const Request& r, const mpi::Comm& comm) {
  const io::ModelHeader hd = io::read_model_header(r.model, comm);
  mpi::agree(comm, [&] {
    if (hd.kind != "factor")
      throw InputError(fmt::format(
          "{}: model kind '{}' has no user weights to cluster (--model needs kind 'factor')",
          r.model, hd.kind));
  });
  return hd;
}

// The label file against the model.
void check_data(const Request& r, const io::ModelHeader& hd, const io::LabelFile& data,
                const mpi::Comm& comm) {
  mpi::agree(comm, [&] {
    if (data.comparisons() != hd.comparisons || data.users() != hd.users)
      throw InputError(fmt::format(
          "{}: {} users and {} comparisons, but the model {} has {} and {} (--data, --model)",
          r.data, data.users(), data.comparisons(), r.model, hd.users, hd.comparisons));
    if (!data.has(io::Split::kTrain))
      throw InputError(r.data + ": no /labels group (the training labels) (--data)");
  });
}
}  // namespace

Report run(const Request& r, const mpi::Comm& comm) {
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  mpi::agree(comm, [&] {
    if (r.K < 1) throw InputError(fmt::format("--types: {} atoms; must be >= 1", r.K));
    if (r.rounds < 0) throw InputError("--rounds: must be >= 0");
  });
  const io::ModelHeader hd = read_model(r, comm);
  const io::LabelFile data = io::LabelFile::open(r.data, comm);
  check_data(r, hd, data, comm);
  const int J = static_cast<int>(hd.rank);
  io::AtomicOutput out(r.out, r.overwrite, comm, "--out", {r.model, r.data});
  LoadOptions lo;
  lo.categorical = true;
  const LabelMatrix labels = load_split(data, io::Split::kTrain, comm, std::nullopt, lo);
  // Each rank reads its even share of the fitted users (the k-means is distributed) and all of Z.
  const Partition share = Partition::uniform(hd.users, comm.size());
  const int me = comm.rank();
  const std::vector<double> U =
      io::read_model_rows(r.model, comm, "user_factors", share.begin(me), share.count(me), hd.rank);
  std::vector<double> Z =
      io::read_model_rows(r.model, comm, "comparison_factors", 0, hd.comparisons, hd.rank);
  log::info(comm,
            "types: {} users, {} comparisons, {} training labels of {}, J={}, K={}, {} rounds, "
            "{} ranks",
            labels.users, labels.comparisons, labels.labels, r.data, J, r.K, r.rounds, comm.size());
  Options opt;
  opt.K = r.K;
  opt.rounds = r.rounds;
  opt.seed = r.seed;
  const auto t_fit = clock::now();
  Model m = fit(comm, labels, U, share.begin(me), std::move(Z), J, opt,
                [&](const std::string& line) { log::info(comm, "{}", line); });
  Report rep;
  rep.fit_seconds = std::chrono::duration<double>(clock::now() - t_fit).count();

  io::TypesData t;
  t.comparisons = hd.comparisons;
  t.users = m.users;
  t.rank = hd.rank;
  t.K = static_cast<std::uint32_t>(m.K);
  t.rounds = static_cast<std::uint32_t>(r.rounds);
  t.seed = r.seed;
  t.r = m.params.r;
  t.s = m.params.s;
  t.a = m.params.a;
  t.objective = m.objective;
  t.model = r.model;
  t.data = r.data;
  t.Z = std::move(m.Z);
  t.atoms = std::move(m.atoms);
  t.atom_weights = m.weights;  // counted below
  t.history = std::move(m.history);
  io::write_types(out.temp_path(), comm, t);
  out.commit();
  rep.K = m.K;
  for (double w : m.weights) rep.used += w > 0;
  rep.params = m.params;
  rep.objective = m.objective;
  rep.total_seconds = std::chrono::duration<double>(clock::now() - t0).count();
  return rep;
}

}  // namespace pref::types
