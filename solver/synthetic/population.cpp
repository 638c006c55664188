#include "solver/synthetic/population.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>

#include "io/label_file.hpp"
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

std::uint64_t PopulationConfig::prompt_count() const {
  if (!has_responses()) return 0;
  if (prompts) return prompts;
  const std::uint64_t pairs = pairs_per_prompt();
  return pairs ? (comparisons + pairs - 1) / pairs : 0;
}

std::uint64_t PopulationConfig::heldout_comparisons() const {
  const std::uint64_t P = prompt_count();
  std::uint64_t n = 0;
  // Prompt q holds comparisons q, q + P, q + 2P, ... below M.
  for (std::uint64_t q = P - std::min(P, heldout_prompts); q < P; ++q)
    if (q < comparisons) n += (comparisons - q + P - 1) / P;
  return n;
}

void PopulationConfig::validate() const {
  auto fail = [](const std::string& m) { throw InputError(m); };
  if (users == 0) fail("--users: must be at least 1");
  if (users > io::kMaxIds)
    fail(fmt::format("--users: {} is more than pref supports ({})", users, io::kMaxIds));
  if (comparisons == 0) fail("--comparisons: must be at least 1");
  if (comparisons > io::kMaxIds)
    fail(fmt::format("--comparisons: {} is more than pref supports", comparisons));
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
  if (!(jitter >= 0) || !std::isfinite(jitter))
    fail(fmt::format("--jitter: {} must be >= 0", jitter));
  if (!(validation_fraction >= 0 && test_fraction >= 0 && validation_fraction + test_fraction < 1))
    fail("--validation-fraction, --test-fraction: must be >= 0 with a sum below 1");
  if (train_answers() == 0)
    fail(
        fmt::format("--answers-per-user: {} leaves no training answers after the validation "
                    "and test fractions",
                    answers_per_user));
  if (clusters == 0) fail("--clusters: must be at least 1");
  // The cluster of each user is stored as int16 in /truth/user_type.
  if (clusters > 32767) fail(fmt::format("--clusters: {} is more than 32767", clusters));
  if (!(cluster_spread >= 0)) fail("--cluster-spread: must be >= 0");
  if (!(zipf_exponent >= 0) || !std::isfinite(zipf_exponent))
    fail(fmt::format("--zipf-exponent: {} must be >= 0", zipf_exponent));
  if (!has_responses()) {
    if (prompts) fail("--prompts: needs --responses-per-prompt");
    if (heldout_prompts) fail("--heldout-prompts: needs --responses-per-prompt");
    if (embedding_dim) fail("--embedding-dim: needs --responses-per-prompt");
    return;
  }
  if (model != Model::kAttributes)
    fail("--responses-per-prompt: only the attributes model has responses");
  if (responses_per_prompt < 2 || responses_per_prompt > 65536)
    fail(fmt::format("--responses-per-prompt: {} outside [2, 65536]", responses_per_prompt));
  const std::uint64_t P = prompt_count(), pairs = pairs_per_prompt();
  if (P > comparisons)
    fail(
        fmt::format("--prompts: {} is more than --comparisons {} (every prompt needs a "
                    "comparison)",
                    P, comparisons));
  if (comparisons > P * pairs)
    fail(fmt::format("--comparisons: {} is more than {} prompts x {} pairs of {} responses",
                     comparisons, P, pairs, responses_per_prompt));
  if (response_count() > io::kMaxIds)
    fail(fmt::format("--prompts: {} responses is more than pref supports", response_count()));
  if (!(embedding_noise >= 0) || !std::isfinite(embedding_noise))
    fail(fmt::format("--embedding-noise: {} must be >= 0", embedding_noise));
  if (embedding_dim > (std::uint64_t{1} << 20))
    fail(fmt::format("--embedding-dim: {} is more than {}", embedding_dim, std::uint64_t{1} << 20));
  if (heldout_prompts == 0) return;
  if (heldout_prompts >= P)
    fail(fmt::format("--heldout-prompts: {} leaves none of the {} prompts for training",
                     heldout_prompts, P));
  if (popularity != Popularity::kUniform) fail("--heldout-prompts: needs --popularity uniform");
  const std::uint64_t held = heldout_comparisons(), train = comparisons - held;
  if (test_answers() > held)
    fail(
        fmt::format("--heldout-prompts: {} test answers per user exceed the {} comparisons of "
                    "the held-out prompts",
                    test_answers(), held));
  if (answers_per_user - test_answers() > train)
    fail(
        fmt::format("--answers-per-user: {} training and validation answers exceed the {} "
                    "comparisons of the training prompts",
                    answers_per_user - test_answers(), train));
  if (new_users > 0 && new_user_answers > train)
    fail(fmt::format("--new-user-answers: {} exceeds the {} comparisons of the training prompts",
                     new_user_answers, train));
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
  if (cfg_.has_responses()) {
    make_responses();
  } else {
    for (std::uint64_t p = 0; p < cfg_.comparisons; ++p) {
      Rng rng(cfg_.seed, Stream::kComparisonFactor, p);
      for (std::uint32_t k = 0; k < r; ++k) z_[p * r + k] = scale * rng.normal();
    }
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

void Population::make_responses() {
  const std::uint64_t P = cfg_.prompt_count(), N = cfg_.responses_per_prompt;
  const std::uint64_t R = cfg_.response_count(), M = cfg_.comparisons;
  // Attributes N(0, 1/2), so that a difference of two is N(0, 1) as a version-1 comparison's.
  s_.resize(R * kAttributes);
  const double half = std::sqrt(0.5);
  for (std::uint64_t q = 0; q < R; ++q) {
    Rng rng(cfg_.seed, Stream::kResponseAttributes, q);
    for (int k = 0; k < kAttributes; ++k) s_[q * kAttributes + k] = half * rng.normal();
  }
  // Comparison p: prompt p mod P, its (p div P)-th pair (i < j) in lexicographic order, the
  // order of the two responses by a coin.
  first_.resize(M);
  second_.resize(M);
  for (std::uint64_t p = 0; p < M; ++p) {
    const std::uint64_t q = p % P;
    std::uint64_t k = p / P, i = 0;
    while (k >= N - 1 - i) {
      k -= N - 1 - i;
      ++i;
    }
    const std::uint64_t j = i + 1 + k;
    auto a = static_cast<std::uint32_t>(q * N + i), b = static_cast<std::uint32_t>(q * N + j);
    Rng rng(cfg_.seed, Stream::kPairOrder, p);
    if (rng.uniform() < 0.5) std::swap(a, b);
    first_[p] = a;
    second_[p] = b;
    for (int c = 0; c < kAttributes; ++c)
      z_[p * kAttributes + c] = s_[a * kAttributes + c] - s_[b * kAttributes + c];
    if (cfg_.heldout_prompts > 0) (heldout_prompt(q) ? heldout_pool_ : train_pool_).push_back(p);
  }
  const std::uint64_t d = cfg_.embedding_dim;
  map_.resize(kAttributes * d);
  const double a_scale = std::sqrt(2.0 / kAttributes);
  for (int k = 0; k < kAttributes; ++k) {
    Rng rng(cfg_.seed, Stream::kEmbeddingMap, static_cast<std::uint64_t>(k));
    for (std::uint64_t c = 0; c < d; ++c) map_[k * d + c] = a_scale * rng.normal();
  }
}

void Population::embedding(std::uint64_t r, std::span<float> out) const {
  const std::uint64_t d = cfg_.embedding_dim;
  Rng rng(cfg_.seed, Stream::kEmbeddingNoise, r);
  auto s = response_attributes(r);
  for (std::uint64_t c = 0; c < d; ++c) {
    double e = 0;
    for (int k = 0; k < kAttributes; ++k) e += map_[k * d + c] * s[k];
    out[c] = static_cast<float>(e + cfg_.embedding_noise * rng.normal());
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
    const auto c = static_cast<std::uint32_t>(std::min<std::uint64_t>(
        m - 1, std::upper_bound(zipf_cdf_.begin(), zipf_cdf_.end(), x) - zipf_cdf_.begin()));
    if (!taken(c)) out.push_back(c);
  }
}

void Population::draw_from_pool(Rng& rng, std::uint64_t k, const std::vector<std::uint32_t>& pool,
                                std::vector<std::uint32_t>& out) {
  // Floyd's algorithm over positions in the pool, appended to out.
  const std::size_t start = out.size();
  const std::uint64_t m = pool.size();
  for (std::uint64_t j = m - k; j < m; ++j) {
    const std::uint64_t t = rng.below(j + 1);
    const bool taken = std::find(out.begin() + static_cast<std::ptrdiff_t>(start), out.end(),
                                 pool[t]) != out.end();
    out.push_back(pool[taken ? j : t]);
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
  std::uint64_t n_test = 0, n_val = 0;
  if (!heldout_pool_.empty()) {
    // Held-out prompts: a user's test answers are comparisons of held-out prompts, all its other
    // answers (and a new user's pool) comparisons of training prompts.
    n_test = new_user ? 0 : cfg_.test_answers();
    n_val = new_user ? 0 : cfg_.validation_answers();
    answers.clear();
    draw_from_pool(answer_rng, n_test, heldout_pool_, answers);
    draw_from_pool(answer_rng, k - n_test, train_pool_, answers);
    if (!new_user) {
      Rng split_rng(cfg_.seed, Stream::kSplit, i);
      for (std::uint64_t j = k - 1; j > n_test; --j)
        std::swap(answers[j], answers[n_test + split_rng.below(j - n_test + 1)]);
    }
    std::sort(answers.begin(), answers.begin() + n_test);
    std::sort(answers.begin() + n_test, answers.begin() + n_test + n_val);
    std::sort(answers.begin() + n_test + n_val, answers.end());
  } else {
    draw_answers(answer_rng, k, answers);
    if (!new_user) {
      // A random split of the user's answers: the first n_test of a shuffle go to test, the
      // next n_val to validation.
      Rng split_rng(cfg_.seed, Stream::kSplit, i);
      for (std::uint64_t j = k - 1; j > 0; --j)
        std::swap(answers[j], answers[split_rng.below(j + 1)]);
      n_test = cfg_.test_answers();
      n_val = cfg_.validation_answers();
      std::sort(answers.begin(), answers.begin() + n_test);
      std::sort(answers.begin() + n_test, answers.begin() + n_test + n_val);
      std::sort(answers.begin() + n_test + n_val, answers.end());
    } else {
      std::sort(answers.begin(), answers.end());
    }
  }
  Rng label_rng(cfg_.seed, new_user ? Stream::kNewUserLabel : Stream::kLabel, i);
  const auto uid = static_cast<std::uint32_t>(i);
  for (std::uint64_t j = 0; j < k; ++j) {
    const float y = draw_label(u, answers[j], label_rng);
    LabelColumns* dest = j < n_test ? test : j < n_test + n_val ? validation : train;
    dest->push_back(uid, answers[j], y);
  }
}

}  // namespace pref
