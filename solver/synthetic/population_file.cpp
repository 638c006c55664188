#include "solver/synthetic/population_file.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "io/population_writer.hpp"
#include "solver/base/log.hpp"
#include "solver/base/partition.hpp"

namespace pref {

namespace {

io::GeneratorAttributes generator_attributes(const PopulationConfig& c) {
  io::GeneratorAttributes a = {
      {"model", std::string(model_name(c.model))},
      {"seed", std::uint64_t{c.seed}},
      {"answers_per_user", std::uint64_t{c.answers_per_user}},
      {"new_user_answers", std::uint64_t{c.new_user_answers}},
      {"rank", std::uint32_t{c.rank}},
      {"temperature", c.temperature},
      {"tie_band", c.tie_band},
      {"label_noise", c.label_noise},
      {"label_mode", std::string(kLabelModeNames.name(c.label_mode))},
      {"jitter", c.jitter},
      {"user_distribution", std::string(kUserDistNames.name(c.user_dist))},
      {"clusters", std::uint32_t{c.clusters}},
      {"cluster_spread", c.cluster_spread},
      {"popularity", std::string(kPopularityNames.name(c.popularity))},
      {"zipf_exponent", c.zipf_exponent},
      {"validation_fraction", c.validation_fraction},
      {"test_fraction", c.test_fraction},
  };
  if (c.has_responses()) {  // version-2 files only: version-1 files stay as they were
    a.emplace_back("responses_per_prompt", std::uint32_t{c.responses_per_prompt});
    a.emplace_back("prompts", std::uint64_t{c.prompt_count()});
    a.emplace_back("heldout_prompts", std::uint64_t{c.heldout_prompts});
    a.emplace_back("embedding_dim", std::uint64_t{c.embedding_dim});
    a.emplace_back("embedding_noise", c.embedding_noise);
  }
  return a;
}

io::PopulationLayout layout_of(const PopulationConfig& c) {
  io::PopulationLayout l;
  l.users = c.users;
  l.comparisons = c.comparisons;
  l.rank = c.rank;
  l.train_answers = c.train_answers();
  l.validation_answers = c.validation_answers();
  l.test_answers = c.test_answers();
  l.new_users = c.new_users;
  l.new_user_answers = c.new_user_answers;
  l.typed = c.model == PopulationConfig::Model::kAttributes ||
            c.user_dist == PopulationConfig::UserDist::kMixture;
  if (c.has_responses()) {
    l.responses = c.response_count();
    l.prompts = c.prompt_count();
    l.embedding_dim = c.embedding_dim;
    l.response_attributes = kAttributes;
  }
  return l;
}

// Every rank its even share of the comparisons' true factors.
void write_comparison_factors(const Population& pop, io::PopulationWriter& w,
                              const mpi::Comm& comm) {
  const PopulationConfig& c = pop.config();
  const Partition part = Partition::uniform(c.comparisons, comm.size());
  const std::uint64_t p0 = part.begin(comm.rank()), np = part.count(comm.rank());
  std::vector<float> zb(np * c.rank);
  for (std::uint64_t p = 0; p < np; ++p) {
    auto z = pop.comparison_factor(p0 + p);
    for (std::uint32_t j = 0; j < c.rank; ++j) zb[p * c.rank + j] = static_cast<float>(z[j]);
  }
  w.write_comparison_factors(p0, zb);
}

// The response structure and its truth (responses, pairs, the embedding map); every rank its
// even share of rows.
void write_responses(const Population& pop, io::PopulationWriter& w, const mpi::Comm& comm) {
  const PopulationConfig& c = pop.config();
  const std::uint64_t R = c.response_count(), d = c.embedding_dim;
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
      w.write_responses(lo, prompt, emb, attrs);
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
    const Partition part = Partition::uniform(kAttributes, comm.size());
    const std::uint64_t k0 = part.begin(comm.rank()), n = part.count(comm.rank());
    std::vector<float> m(n * d);
    for (std::uint64_t i = 0; i < n * d; ++i)
      m[i] = static_cast<float>(pop.embedding_map()[k0 * d + i]);
    w.write_embedding_map(k0, m);
  }
}

// Draws users [0, n) of one kind (training or new) in batches and writes their labels and
// truth.
std::uint64_t write_users(const Population& pop, bool new_users, io::PopulationWriter& w,
                          const mpi::Comm& comm, std::uint64_t* progress_done,
                          std::uint64_t progress_total) {
  const PopulationConfig& c = pop.config();
  const std::uint64_t n = new_users ? c.new_users : c.users;
  const std::uint64_t k = new_users ? c.new_user_answers : c.answers_per_user;
  const Partition part = Partition::uniform(n, comm.size());
  const std::uint64_t lo = part.begin(comm.rank()), hi = part.end(comm.rank());
  const std::uint64_t batch = std::max<std::uint64_t>(1, (std::uint64_t{1} << 21) / k);
  const std::uint64_t rounds = mpi::allreduce_max(comm, (hi - lo + batch - 1) / batch);
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
    written += w.write_users(new_users, b0, b1 - b0, cols, wbuf, tbuf);
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
  io::PopulationWriter w(path, comm, layout_of(c), generator_attributes(c));
  write_comparison_factors(pop, w, comm);
  if (c.has_responses()) write_responses(pop, w, comm);
  const std::uint64_t total_users = c.users + c.new_users;
  std::uint64_t done = 0;
  GenerateStats stats;
  for (bool nu : {false, true}) {
    if ((nu ? c.new_users : c.users) == 0) continue;
    stats.labels += mpi::allreduce_sum(comm, write_users(pop, nu, w, comm, &done, total_users));
  }
  w.close();
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return stats;
}

}  // namespace pref
