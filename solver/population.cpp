#include "solver/population.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "io/hdf5.hpp"
#include "io/label_file.hpp"
#include "solver/base/log.hpp"
#include "solver/base/partition.hpp"

namespace pref {

std::uint64_t PopulationConfig::test_answers() const {
  return static_cast<std::uint64_t>(std::llround(test_fraction * answers_per_user));
}
std::uint64_t PopulationConfig::validation_answers() const {
  return static_cast<std::uint64_t>(std::llround(validation_fraction * answers_per_user));
}
std::uint64_t PopulationConfig::train_answers() const {
  return answers_per_user - test_answers() - validation_answers();
}

void PopulationConfig::validate() const {
  auto fail = [](const std::string& m) { throw InputError(m); };
  if (users == 0) fail("--users: must be at least 1");
  if (users > io::kMaxIds) fail(fmt::format("--users: {} is more than pref supports ({})", users, io::kMaxIds));
  if (comparisons == 0) fail("--comparisons: must be at least 1");
  if (comparisons > io::kMaxIds) fail(fmt::format("--comparisons: {} is more than pref supports", comparisons));
  if (answers_per_user == 0) fail("--answers-per-user: must be at least 1");
  if (answers_per_user > comparisons)
    fail(fmt::format("--answers-per-user: {} exceeds --comparisons {} (answers are distinct)",
                     answers_per_user, comparisons));
  if (new_users > 0 && new_user_answers > comparisons)
    fail(fmt::format("--new-user-answers: {} exceeds --comparisons {}", new_user_answers,
                     comparisons));
  if (new_users > io::kMaxIds) fail("--new-users: too many");
  if (new_users > 0 && new_user_answers == 0)
    fail(fmt::format("--new-user-answers: must be at least 1 with --new-users {}", new_users));
  if (model == Model::kAttributes && rank != kAttributes)
    fail(fmt::format("--rank: the attributes model has rank {}, got {}", kAttributes, rank));
  if (rank == 0 || rank > 4096) fail(fmt::format("--rank: {} outside [1, 4096]", rank));
  if (!(temperature > 0) || !std::isfinite(temperature))
    fail(fmt::format("--temperature: {} must be positive", temperature));
  if (!(tie_band >= 0) || !std::isfinite(tie_band))
    fail(fmt::format("--tie-band: {} must be >= 0", tie_band));
  if (!(label_noise >= 0 && label_noise <= 0.5))
    fail(fmt::format("--label-noise: {} outside [0, 0.5]", label_noise));
  if (!(jitter >= 0) || !std::isfinite(jitter)) fail(fmt::format("--jitter: {} must be >= 0", jitter));
  if (!(validation_fraction >= 0 && test_fraction >= 0 && validation_fraction + test_fraction < 1))
    fail("--validation-fraction, --test-fraction: must be >= 0 with a sum below 1");
  if (train_answers() == 0)
    fail(fmt::format("--answers-per-user: {} leaves no training answers after the validation "
                     "and test fractions", answers_per_user));
  if (clusters == 0) fail("--clusters: must be at least 1");
  // The cluster of each user is stored as int16 in /truth/user_type.
  if (clusters > 32767) fail(fmt::format("--clusters: {} is more than 32767", clusters));
  if (!(cluster_spread >= 0)) fail("--cluster-spread: must be >= 0");
  if (!(zipf_exponent >= 0) || !std::isfinite(zipf_exponent))
    fail(fmt::format("--zipf-exponent: {} must be >= 0", zipf_exponent));
}

const char* model_name(PopulationConfig::Model m) {
  return m == PopulationConfig::Model::kAttributes ? "attributes" : "lowrank";
}

AttributeType attribute_type(int t) {
  // Pairs (a, b) with a < b in lexicographic order, then the four sign combinations.
  int pair = t / 4, signs = t % 4;
  int a = 0;
  while (pair >= kAttributes - 1 - a) {
    pair -= kAttributes - 1 - a;
    ++a;
  }
  return {a, (signs & 1) ? -1 : 1, a + 1 + pair, (signs & 2) ? -1 : 1};
}

Population::Population(PopulationConfig cfg) : cfg_(cfg) {
  cfg_.validate();
  const std::uint32_t r = cfg_.rank;
  z_.resize(cfg_.comparisons * r);
  // Attributes: each comparison's hidden attribute difference is N(0, 1) per attribute.
  // Lowrank: N(0, 1/r) per coordinate, so that u.z has unit variance for u ~ N(0, I).
  const double scale =
      cfg_.model == PopulationConfig::Model::kAttributes ? 1.0 : 1.0 / std::sqrt(double(r));
  for (std::uint64_t p = 0; p < cfg_.comparisons; ++p) {
    Rng rng(cfg_.seed, Stream::kComparisonFactor, p);
    for (std::uint32_t k = 0; k < r; ++k) z_[p * r + k] = scale * rng.normal();
  }
  if (cfg_.popularity == PopulationConfig::Popularity::kZipf) {
    zipf_cdf_.resize(cfg_.comparisons);
    double sum = 0;
    for (std::uint64_t p = 0; p < cfg_.comparisons; ++p) {
      sum += std::pow(static_cast<double>(p + 1), -cfg_.zipf_exponent);
      zipf_cdf_[p] = sum;
    }
    for (auto& c : zipf_cdf_) c /= sum;
  }
  if (cfg_.model == PopulationConfig::Model::kLowRank &&
      cfg_.user_dist == PopulationConfig::UserDist::kMixture) {
    centres_.resize(cfg_.clusters * r);
    Rng rng(cfg_.seed, Stream::kUserWeights, ~std::uint64_t{0});
    for (auto& c : centres_) c = rng.normal();
  }
}

int Population::user_weights(std::uint64_t i, bool new_user, std::span<double> u) const {
  Rng rng(cfg_.seed, new_user ? Stream::kNewUserWeights : Stream::kUserWeights, i);
  const std::uint32_t r = cfg_.rank;
  if (cfg_.model == PopulationConfig::Model::kAttributes) {
    const int t = static_cast<int>(rng.below(kAttributeTypes));
    const AttributeType at = attribute_type(t);
    std::fill(u.begin(), u.end(), 0.0);
    u[at.attr_a] = at.sign_a;
    u[at.attr_b] = at.sign_b;
    if (cfg_.jitter > 0)
      for (std::uint32_t k = 0; k < r; ++k) u[k] += cfg_.jitter * rng.normal();
    return t;
  }
  if (cfg_.user_dist == PopulationConfig::UserDist::kMixture) {
    const int c = static_cast<int>(rng.below(cfg_.clusters));
    for (std::uint32_t k = 0; k < r; ++k)
      u[k] = centres_[c * r + k] + cfg_.cluster_spread * rng.normal();
    return c;
  }
  for (std::uint32_t k = 0; k < r; ++k) u[k] = rng.normal();
  return -1;
}

void Population::draw_answers(Rng& rng, std::uint64_t k, std::vector<std::uint32_t>& out) const {
  out.clear();
  const std::uint64_t m = cfg_.comparisons;
  auto taken = [&](std::uint32_t c) { return std::find(out.begin(), out.end(), c) != out.end(); };
  if (zipf_cdf_.empty()) {
    // Floyd's algorithm: k distinct ids with exactly k draws.
    for (std::uint64_t j = m - k; j < m; ++j) {
      const auto t = static_cast<std::uint32_t>(rng.below(j + 1));
      out.push_back(taken(t) ? static_cast<std::uint32_t>(j) : t);
    }
    return;
  }
  // Zipf popularity: draw by inverse CDF, rejecting repeats.
  std::uint64_t attempts = 0;
  while (out.size() < k) {
    if (++attempts > 1000 * k + 100000)
      throw InputError(fmt::format(
          "--zipf-exponent: cannot draw {} distinct comparisons of {} under Zipf exponent {}; "
          "lower the exponent or the answers per user",
          k, m, cfg_.zipf_exponent));
    const double x = rng.uniform();
    const auto c = static_cast<std::uint32_t>(
        std::min<std::uint64_t>(m - 1, std::upper_bound(zipf_cdf_.begin(), zipf_cdf_.end(), x) -
                                           zipf_cdf_.begin()));
    if (!taken(c)) out.push_back(c);
  }
}

float Population::draw_label(std::span<const double> u, std::uint64_t p, Rng& rng) const {
  auto z = comparison_factor(p);
  double margin = 0;
  for (std::uint32_t k = 0; k < cfg_.rank; ++k) margin += u[k] * z[k];
  // Draw every random number unconditionally so the stream stays aligned across settings.
  const double x = rng.uniform();
  const double flip = rng.uniform();
  if (std::abs(margin) < cfg_.tie_band) return 0.5f;
  float y;
  if (cfg_.label_mode == PopulationConfig::LabelMode::kDeterministic) {
    if (margin == 0) return 0.5f;
    y = margin > 0 ? 1.0f : 0.0f;
  } else {
    const double s = margin / cfg_.temperature;
    const double prob = s >= 0 ? 1.0 / (1.0 + std::exp(-s)) : std::exp(s) / (1.0 + std::exp(s));
    y = x < prob ? 1.0f : 0.0f;
  }
  if (flip < cfg_.label_noise) y = 1.0f - y;
  return y;
}

void Population::user_labels(std::uint64_t i, bool new_user, LabelColumns* train,
                             LabelColumns* validation, LabelColumns* test) const {
  thread_local std::vector<std::uint32_t> answers;
  thread_local std::vector<double> u;
  u.resize(cfg_.rank);
  user_weights(i, new_user, u);
  const std::uint64_t k = new_user ? cfg_.new_user_answers : cfg_.answers_per_user;
  Rng answer_rng(cfg_.seed, new_user ? Stream::kNewUserAnswers : Stream::kUserAnswers, i);
  draw_answers(answer_rng, k, answers);
  std::uint64_t n_test = 0, n_val = 0;
  if (!new_user) {
    // A random split of the user's answers: the first n_test of a shuffle go to test, the next
    // n_val to validation.
    Rng split_rng(cfg_.seed, Stream::kSplit, i);
    for (std::uint64_t j = k - 1; j > 0; --j) std::swap(answers[j], answers[split_rng.below(j + 1)]);
    n_test = cfg_.test_answers();
    n_val = cfg_.validation_answers();
    std::sort(answers.begin(), answers.begin() + n_test);
    std::sort(answers.begin() + n_test, answers.begin() + n_test + n_val);
    std::sort(answers.begin() + n_test + n_val, answers.end());
  } else {
    std::sort(answers.begin(), answers.end());
  }
  Rng label_rng(cfg_.seed, new_user ? Stream::kNewUserLabel : Stream::kLabel, i);
  const auto uid = static_cast<std::uint32_t>(i);
  for (std::uint64_t j = 0; j < k; ++j) {
    const float y = draw_label(u, answers[j], label_rng);
    LabelColumns* dest = j < n_test ? test : j < n_test + n_val ? validation : train;
    dest->push_back(uid, answers[j], y);
  }
}

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
        for (std::uint32_t j = 0; j < c.rank; ++j) wbuf[(i - b0) * c.rank + j] = static_cast<float>(u[j]);
        tbuf[i - b0] = static_cast<std::int16_t>(t);
      }
    });
    for (int s = 0; s < n_splits; ++s) {
      if (per_user[s] == 0) continue;  // the split was not created (no answers held out)
      w.write(splits[s], b0 * per_user[s], cols[s]);
      written += cols[s].size();
    }
    h5::write_rows<float>(weights, b0, b1 - b0, wbuf, comm, w.path() + ": truth");
    if (types >= 0) h5::write_rows<std::int16_t>(types, b0, b1 - b0, tbuf, comm, w.path() + ": truth");
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
  io::LabelFileWriter w(path, comm, c.users, c.comparisons);
  const hid_t f = w.handle();
  w.create(io::Split::kTrain, c.users * c.train_answers(), true);
  if (c.validation_answers() > 0)
    w.create(io::Split::kValidation, c.users * c.validation_answers(), true);
  if (c.test_answers() > 0) w.create(io::Split::kTest, c.users * c.test_answers(), true);
  if (c.new_users > 0) w.create(io::Split::kNewUsers, c.new_users * c.new_user_answers, true, c.new_users);
  write_generator_attributes(f, c, path);

  const bool typed = c.model == PopulationConfig::Model::kAttributes ||
                     c.user_dist == PopulationConfig::UserDist::kMixture;
  h5::Handle truth = h5::create_group(f, "/truth", path);
  const hsize_t zdims[2] = {c.comparisons, c.rank};
  h5::Handle zset = h5::create_dataset(truth.get(), "comparison_factors", H5T_IEEE_F32LE, zdims, path);
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
    h5::Handle tset = typed ? h5::create_dataset(loc, "user_type", H5T_STD_I16LE, tdims, path)
                            : h5::Handle();
    stats.labels += mpi::allreduce_sum(
        comm, write_users(pop, nu, w, wset.get(), typed ? tset.get() : H5I_INVALID_HID, comm,
                          &done, total_users));
  }
  zset.reset();
  truth.reset();
  w.close();
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return stats;
}

}  // namespace pref
