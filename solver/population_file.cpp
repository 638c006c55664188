#include "solver/population_file.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "io/hdf5.hpp"
#include "io/label_file.hpp"
#include "solver/base/log.hpp"
#include "solver/base/partition.hpp"

namespace pref {

namespace {

void write_generator_attributes(hid_t file, const PopulationConfig& c, const std::string& what) {
  h5::Handle g = h5::create_group(file, "/generator", what);
  const hid_t h = g.get();
  h5::write_string_attribute(h, "model", model_name(c.model), what);
  h5::write_attribute<std::uint64_t>(h, "seed", c.seed, what);
  h5::write_attribute<std::uint64_t>(h, "answers_per_user", c.answers_per_user, what);
  h5::write_attribute<std::uint64_t>(h, "new_user_answers", c.new_user_answers, what);
  h5::write_attribute<std::uint32_t>(h, "rank", c.rank, what);
  h5::write_attribute<double>(h, "temperature", c.temperature, what);
  h5::write_attribute<double>(h, "tie_band", c.tie_band, what);
  h5::write_attribute<double>(h, "label_noise", c.label_noise, what);
  h5::write_string_attribute(
      h, "label_mode",
      c.label_mode == PopulationConfig::LabelMode::kBernoulli ? "bernoulli" : "deterministic",
      what);
  h5::write_attribute<double>(h, "jitter", c.jitter, what);
  h5::write_string_attribute(
      h, "user_distribution",
      c.user_dist == PopulationConfig::UserDist::kGaussian ? "gaussian" : "mixture", what);
  h5::write_attribute<std::uint32_t>(h, "clusters", c.clusters, what);
  h5::write_attribute<double>(h, "cluster_spread", c.cluster_spread, what);
  h5::write_string_attribute(
      h, "popularity", c.popularity == PopulationConfig::Popularity::kUniform ? "uniform" : "zipf",
      what);
  h5::write_attribute<double>(h, "zipf_exponent", c.zipf_exponent, what);
  h5::write_attribute<double>(h, "validation_fraction", c.validation_fraction, what);
  h5::write_attribute<double>(h, "test_fraction", c.test_fraction, what);
  if (c.has_responses()) {  // version-2 files only: version-1 files stay as they were
    h5::write_attribute<std::uint32_t>(h, "responses_per_prompt", c.responses_per_prompt, what);
    h5::write_attribute<std::uint64_t>(h, "prompts", c.prompt_count(), what);
    h5::write_attribute<std::uint64_t>(h, "heldout_prompts", c.heldout_prompts, what);
    h5::write_attribute<std::uint64_t>(h, "embedding_dim", c.embedding_dim, what);
    h5::write_attribute<double>(h, "embedding_noise", c.embedding_noise, what);
  }
}

// The response structure and its truth: /responses (prompt, embedding), /comparisons,
// /truth/response_attributes, /truth/embedding_map; every rank its even share of rows.
void write_responses(const Population& pop, io::LabelFileWriter& w, hid_t truth,
                     const mpi::Comm& comm) {
  const PopulationConfig& c = pop.config();
  const std::uint64_t R = c.response_count(), d = c.embedding_dim;
  const std::string path = w.path();
  w.create_responses(R, c.prompt_count(), d);
  const hsize_t sdims[2] = {R, kAttributes};
  h5::Handle sset = h5::create_dataset(truth, "response_attributes", H5T_IEEE_F32LE, sdims, path);
  {
    const Partition part = Partition::uniform(R, comm.size());
    const std::uint64_t r0 = part.begin(comm.rank()), n = part.count(comm.rank());
    // Rows in rounds of about 2^22 embedding values.
    const std::uint64_t chunk =
        std::max<std::uint64_t>(1, (std::uint64_t{1} << 22) / std::max<std::uint64_t>(d, 1));
    const std::uint64_t rounds = mpi::allreduce_max(comm, (n + chunk - 1) / chunk);
    std::vector<std::uint32_t> prompt;
    std::vector<float> emb, attrs;
    for (std::uint64_t k = 0; k < rounds; ++k) {
      const std::uint64_t lo = r0 + std::min(n, k * chunk),
                          hi = r0 + std::min(n, k * chunk + chunk);
      prompt.resize(hi - lo);
      emb.resize((hi - lo) * d);
      attrs.resize((hi - lo) * kAttributes);
      for (std::uint64_t r = lo; r < hi; ++r) {
        prompt[r - lo] = static_cast<std::uint32_t>(r / c.responses_per_prompt);
        if (d) pop.embedding(r, std::span<float>(emb.data() + (r - lo) * d, d));
        auto s = pop.response_attributes(r);
        for (int a = 0; a < kAttributes; ++a)
          attrs[(r - lo) * kAttributes + a] = static_cast<float>(s[a]);
      }
      w.write_responses(lo, prompt, emb);
      h5::write_rows<float>(sset.get(), lo, hi - lo, attrs, comm,
                            path + ": /truth/response_attributes");
    }
  }
  {
    const Partition part = Partition::uniform(c.comparisons, comm.size());
    const std::uint64_t p0 = part.begin(comm.rank()), n = part.count(comm.rank());
    std::vector<std::uint32_t> a(n), b(n);
    for (std::uint64_t p = 0; p < n; ++p) {
      a[p] = pop.first(p0 + p);
      b[p] = pop.second(p0 + p);
    }
    w.write_pairs(p0, a, b);
  }
  if (d) {
    const hsize_t mdims[2] = {kAttributes, d};
    h5::Handle mset = h5::create_dataset(truth, "embedding_map", H5T_IEEE_F32LE, mdims, path);
    const Partition part = Partition::uniform(kAttributes, comm.size());
    const std::uint64_t k0 = part.begin(comm.rank()), n = part.count(comm.rank());
    std::vector<float> m(n * d);
    for (std::uint64_t i = 0; i < n * d; ++i)
      m[i] = static_cast<float>(pop.embedding_map()[k0 * d + i]);
    h5::write_rows<float>(mset.get(), k0, n, m, comm, path + ": /truth/embedding_map");
  }
}

// Writes users [0, n) of one kind (training or new) in batches: labels and truth.
std::uint64_t write_users(const Population& pop, bool new_users, io::LabelFileWriter& w,
                          hid_t weights, hid_t types, const mpi::Comm& comm,
                          std::uint64_t* progress_done, std::uint64_t progress_total) {
  const PopulationConfig& c = pop.config();
  const std::uint64_t n = new_users ? c.new_users : c.users;
  const std::uint64_t k = new_users ? c.new_user_answers : c.answers_per_user;
  const Partition part = Partition::uniform(n, comm.size());
  const std::uint64_t lo = part.begin(comm.rank()), hi = part.end(comm.rank());
  const std::uint64_t batch = std::max<std::uint64_t>(1, (std::uint64_t{1} << 21) / k);
  const std::uint64_t rounds = mpi::allreduce_max(comm, (hi - lo + batch - 1) / batch);
  const std::uint64_t per_user[3] = {new_users ? k : c.train_answers(), c.validation_answers(),
                                     c.test_answers()};
  const io::Split splits[3] = {new_users ? io::Split::kNewUsers : io::Split::kTrain,
                               io::Split::kValidation, io::Split::kTest};
  const int n_splits = new_users ? 1 : 3;
  LabelColumns cols[3];
  std::vector<float> wbuf;
  std::vector<std::int16_t> tbuf;
  std::vector<double> u(c.rank);
  std::uint64_t written = 0;
  auto last = std::chrono::steady_clock::now();
  for (std::uint64_t round = 0; round < rounds; ++round) {
    const std::uint64_t b0 = std::min(hi, lo + round * batch);
    const std::uint64_t b1 = std::min(hi, b0 + batch);
    for (auto& col : cols) {
      col.clear();
      col.reserve((b1 - b0) * k);
    }
    wbuf.resize((b1 - b0) * c.rank);
    tbuf.resize(b1 - b0);
    mpi::agree(comm, [&] {
      for (std::uint64_t i = b0; i < b1; ++i) {
        pop.user_labels(i, new_users, &cols[0], &cols[1], &cols[2]);
        const int t = pop.user_weights(i, new_users, u);
        for (std::uint32_t j = 0; j < c.rank; ++j)
          wbuf[(i - b0) * c.rank + j] = static_cast<float>(u[j]);
        tbuf[i - b0] = static_cast<std::int16_t>(t);
      }
    });
    for (int s = 0; s < n_splits; ++s) {
      if (per_user[s] == 0) continue;  // the split was not created (no answers held out)
      w.write(splits[s], b0 * per_user[s], cols[s]);
      written += cols[s].size();
    }
    h5::write_rows<float>(weights, b0, b1 - b0, wbuf, comm, w.path() + ": truth");
    if (types >= 0)
      h5::write_rows<std::int16_t>(types, b0, b1 - b0, tbuf, comm, w.path() + ": truth");
    *progress_done += mpi::allreduce_sum(comm, b1 - b0);
    const auto now = std::chrono::steady_clock::now();
    if (std::chrono::duration<double>(now - last).count() > 5.0 || round + 1 == rounds) {
      last = now;
      log::info(comm, "generated {} of {} users", *progress_done, progress_total);
    }
  }
  return written;
}

}  // namespace

GenerateStats write_population(const Population& pop, const std::string& path,
                               const mpi::Comm& comm) {
  const auto t0 = std::chrono::steady_clock::now();
  const PopulationConfig& c = pop.config();
  io::LabelFileWriter w(path, comm, c.users, c.comparisons, c.has_responses());
  const hid_t f = w.handle();
  w.create(io::Split::kTrain, c.users * c.train_answers(), true);
  if (c.validation_answers() > 0)
    w.create(io::Split::kValidation, c.users * c.validation_answers(), true);
  if (c.test_answers() > 0) w.create(io::Split::kTest, c.users * c.test_answers(), true);
  if (c.new_users > 0)
    w.create(io::Split::kNewUsers, c.new_users * c.new_user_answers, true, c.new_users);
  write_generator_attributes(f, c, path);

  const bool typed = c.model == PopulationConfig::Model::kAttributes ||
                     c.user_dist == PopulationConfig::UserDist::kMixture;
  h5::Handle truth = h5::create_group(f, "/truth", path);
  const hsize_t zdims[2] = {c.comparisons, c.rank};
  h5::Handle zset =
      h5::create_dataset(truth.get(), "comparison_factors", H5T_IEEE_F32LE, zdims, path);
  {
    const Partition part = Partition::uniform(c.comparisons, comm.size());
    const std::uint64_t p0 = part.begin(comm.rank()), np = part.count(comm.rank());
    std::vector<float> zb(np * c.rank);
    for (std::uint64_t p = 0; p < np; ++p) {
      auto z = pop.comparison_factor(p0 + p);
      for (std::uint32_t j = 0; j < c.rank; ++j) zb[p * c.rank + j] = static_cast<float>(z[j]);
    }
    h5::write_rows<float>(zset.get(), p0, np, zb, comm, path + ": /truth/comparison_factors");
  }
  if (c.has_responses()) write_responses(pop, w, truth.get(), comm);
  const std::uint64_t total_users = c.users + c.new_users;
  std::uint64_t done = 0;
  GenerateStats stats;
  for (bool nu : {false, true}) {
    const std::uint64_t n = nu ? c.new_users : c.users;
    if (n == 0) continue;
    h5::Handle grp = nu ? h5::create_group(f, "/new_users/truth", path) : h5::Handle();
    const hid_t loc = nu ? grp.get() : truth.get();
    const hsize_t wdims[2] = {n, c.rank};
    const hsize_t tdims[1] = {n};
    h5::Handle wset = h5::create_dataset(loc, "user_weights", H5T_IEEE_F32LE, wdims, path);
    h5::Handle tset =
        typed ? h5::create_dataset(loc, "user_type", H5T_STD_I16LE, tdims, path) : h5::Handle();
    stats.labels += mpi::allreduce_sum(
        comm, write_users(pop, nu, w, wset.get(), typed ? tset.get() : H5I_INVALID_HID, comm, &done,
                          total_users));
  }
  zset.reset();
  truth.reset();
  w.close();
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return stats;
}

}  // namespace pref
