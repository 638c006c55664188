#include "io/adapted_file.hpp"

#include <array>

#include "io/hdf5.hpp"

namespace pref::io {

namespace {
void write_selection(hid_t h, const AdaptedHeader::Selection& s, const mpi::Comm& comm,
                     const std::string& what) {
  h5::Handle g = h5::create_group(h, "selection", what);
  h5::write_string_attribute(g.get(), "mode", "auto", what);
  h5::write_string_attribute(g.get(), "chosen", s.chosen, what);
  h5::write_string_attribute(g.get(), "candidates", s.candidates, what);
  h5::write_string_attribute(g.get(), "held_out", s.held_out, what);
  h5::write_attribute<std::uint64_t>(g.get(), "users", s.users, what);
  if (s.score.empty()) return;
  const hsize_t C = s.score.size(), B = s.budgets.size();
  const bool root = comm.rank() == 0;
  const hsize_t d1[1] = {B};
  h5::Handle db = h5::create_dataset(g.get(), "budgets", H5T_STD_U32LE, d1, what);
  h5::write_rows<std::uint32_t>(db.get(), 0, root ? B : 0, s.budgets, comm,
                                what + ": /selection/budgets");
  h5::Handle du = h5::create_dataset(g.get(), "evidence_users", H5T_STD_U64LE, d1, what);
  h5::write_rows<std::uint64_t>(du.get(), 0, root ? B : 0, s.evidence_users, comm,
                                what + ": /selection/evidence_users");
  write_replicated(g.get(), "evidence", std::array<hsize_t, 2>{C, B}, s.evidence, comm,
                   what + ": /selection");
  write_replicated(g.get(), "score", std::array<hsize_t, 1>{C}, s.score, comm,
                   what + ": /selection");
}
}  // namespace

void write_adapted(const std::string& path, const mpi::Comm& comm, const AdaptedHeader& hd,
                   const Partition& users, const AdaptedRows& rows) {
  h5::Handle f;
  mpi::agree(comm, [&] { f = h5::create_file(path, comm); });
  const std::string what = path;
  const hid_t h = f.get();
  write_format(h, kAdaptedFile, what);
  h5::write_attribute<std::uint64_t>(h, "users", hd.users, what);
  h5::write_attribute<std::uint64_t>(h, "comparisons", hd.comparisons, what);
  h5::write_attribute<std::uint32_t>(h, "rank", hd.rank, what);
  h5::write_attribute<std::uint32_t>(h, "answers", hd.answers, what);
  h5::write_attribute<std::uint32_t>(h, "test_answers", hd.test_answers, what);
  h5::write_string_attribute(h, "select", hd.select, what);
  h5::write_string_attribute(h, "prior", hd.prior, what);
  h5::write_string_attribute(h, "prior_source", hd.prior_source, what);
  h5::write_attribute<double>(h, "ridge", hd.ridge, what);
  h5::write_attribute<std::uint64_t>(h, "seed", hd.seed, what);
  h5::write_string_attribute(h, "model", hd.model, what);
  h5::write_string_attribute(h, "data", hd.data, what);
  h5::write_string_attribute(h, "group", hd.group, what);
  h5::write_attribute<std::uint32_t>(h, "mpi_ranks", static_cast<std::uint32_t>(comm.size()), what);
  const int me = comm.rank();
  const std::uint64_t r0 = users.begin(me), n = users.count(me);
  const hsize_t N = hd.users, J = hd.rank, K = hd.answers, B = hd.budgets.size();
  {
    const hsize_t d[2] = {N, J};
    h5::Handle ds = h5::create_dataset(h, "weights", H5T_IEEE_F64LE, d, what);
    h5::write_rows<double>(ds.get(), r0, n, rows.weights, comm, what + ": /weights");
  }
  {
    const hsize_t d[3] = {N, J, J};
    h5::Handle ds = h5::create_dataset(h, "covariance", H5T_IEEE_F64LE, d, what);
    h5::write_rows<double>(ds.get(), r0, n, rows.covariance, comm, what + ": /covariance");
  }
  {
    const hsize_t d[2] = {N, K};
    h5::Handle ds = h5::create_dataset(h, "asked", H5T_STD_U32LE, d, what);
    h5::write_rows<std::uint32_t>(ds.get(), r0, n, rows.asked, comm, what + ": /asked");
    h5::Handle da = h5::create_dataset(h, "answers", H5T_IEEE_F32LE, d, what);
    h5::write_rows<float>(da.get(), r0, n, rows.answers, comm, what + ": /answers");
  }
  {
    const hsize_t d1[1] = {B};
    h5::Handle db = h5::create_dataset(h, "budgets", H5T_STD_U32LE, d1, what);
    h5::write_rows<std::uint32_t>(db.get(), 0, me == 0 ? B : 0, hd.budgets, comm,
                                  what + ": /budgets");
    const hsize_t d[2] = {N, B};
    h5::Handle ds = h5::create_dataset(h, "budget_auc", H5T_IEEE_F64LE, d, what);
    h5::write_rows<double>(ds.get(), r0, n, rows.budget_auc, comm, what + ": /budget_auc");
  }
  if (!hd.prior_mean.empty()) {
    h5::Handle g = h5::create_group(h, "prior", what);
    h5::write_string_attribute(g.get(), "source", hd.prior_source, what);
    write_replicated(g.get(), "mean", std::array<hsize_t, 1>{J}, hd.prior_mean, comm,
                     what + ": /prior");
    write_replicated(g.get(), "covariance", std::array<hsize_t, 2>{J, J}, hd.prior_covariance, comm,
                     what + ": /prior");
  }
  if (!hd.mixture_weight.empty()) {
    const hsize_t C = hd.mixture_weight.size();
    h5::Handle g = h5::create_group(h, "mixture", what);
    write_replicated(g.get(), "weight", std::array<hsize_t, 1>{C}, hd.mixture_weight, comm,
                     what + ": /mixture");
    write_replicated(g.get(), "mean", std::array<hsize_t, 2>{C, J}, hd.mixture_mean, comm,
                     what + ": /mixture");
    write_replicated(g.get(), "covariance", std::array<hsize_t, 3>{C, J, J}, hd.mixture_covariance,
                     comm, what + ": /mixture");
  }
  if (!hd.types.empty()) h5::write_string_attribute(h, "types", hd.types, what);
  if (!hd.likelihood.empty()) {
    h5::write_string_attribute(h, "likelihood", hd.likelihood, what);
    h5::Handle g = h5::create_group(h, "ordinal", what);
    h5::write_attribute<double>(g.get(), "r", hd.ordinal[0], what);
    h5::write_attribute<double>(g.get(), "s", hd.ordinal[1], what);
    h5::write_attribute<double>(g.get(), "a", hd.ordinal[2], what);
  }
  if (hd.selection) write_selection(h, *hd.selection, comm, what);
  mpi::agree(comm, [&] { f.close(path); });
}

}  // namespace pref::io
