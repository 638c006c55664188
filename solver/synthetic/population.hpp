#pragma once
// Synthetic preference populations (MISSION.md): the Attributes population (7 attributes with
// two poles, 84 user types) and a general low-rank family. Every quantity is a pure function of
// the seed and a global index (counter-based randomness), so any rank can make any user or
// comparison and the output does not depend on the rank count.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "solver/base/enum_names.hpp"
#include "solver/base/labels.hpp"
#include "solver/base/mpi.hpp"
#include "solver/base/rng.hpp"

namespace pref {

struct PopulationConfig {
  enum class Model { kAttributes, kLowRank };
  enum class UserDist { kGaussian, kMixture };
  enum class Popularity { kUniform, kZipf };
  enum class LabelMode { kBernoulli, kDeterministic };

  Model model = Model::kAttributes;
  std::uint64_t users = 1000;
  std::uint64_t comparisons = 1000;
  std::uint64_t answers_per_user = 40;
  std::uint32_t rank = 7;  // true rank (7 for attributes)
  std::uint64_t new_users = 0;
  std::uint64_t new_user_answers = 100;  // answer pool of each held-out new user
  std::uint64_t seed = 1;

  double temperature = 1.0;  // P(y=1) = sigmoid(u.z / temperature)
  double tie_band = 0.0;     // |u.z| < tie_band gives a tie (0.5)
  double label_noise = 0.0;  // probability of flipping a 0/1 label
  LabelMode label_mode = LabelMode::kBernoulli;
  double jitter = 0.0;  // attributes: per-user N(0, jitter^2) added to every weight

  UserDist user_dist = UserDist::kGaussian;  // lowrank
  std::uint32_t clusters = 8;                // lowrank mixture: number of centres
  double cluster_spread = 0.3;               // lowrank mixture: std. dev. around a centre
  Popularity popularity = Popularity::kUniform;
  double zipf_exponent = 1.0;

  double validation_fraction = 0.1;  // of each user's answers
  double test_fraction = 0.1;

  // Response structure (attributes only; docs/format.md, version 2). 0: none, comparisons are
  // free attribute differences as in version 1.
  std::uint32_t responses_per_prompt = 0;
  std::uint64_t prompts = 0;          // 0: ceil(comparisons / pairs per prompt)
  std::uint64_t heldout_prompts = 0;  // the last ones: their comparisons only in test labels
  std::uint64_t embedding_dim = 0;    // 0: no /responses/embedding
  double embedding_noise = 0.0;       // std. dev. of the noise per embedding coordinate

  bool has_responses() const { return responses_per_prompt > 0; }
  std::uint64_t pairs_per_prompt() const {
    return std::uint64_t{responses_per_prompt} * (responses_per_prompt - 1) / 2;
  }
  std::uint64_t prompt_count() const;  // prompts, or its default
  std::uint64_t response_count() const { return prompt_count() * responses_per_prompt; }
  // Comparisons on held-out prompts (comparison p is on prompt p mod prompt_count()).
  std::uint64_t heldout_comparisons() const;

  // Answers of each user in each split (fixed per user).
  std::uint64_t test_answers() const;
  std::uint64_t validation_answers() const;
  std::uint64_t train_answers() const;
  // Throws InputError naming the option when the configuration is impossible.
  void validate() const;
};

inline constexpr EnumNames<PopulationConfig::Model, 2> kPopulationModelNames{
    {{{PopulationConfig::Model::kAttributes, "attributes"},
      {PopulationConfig::Model::kLowRank, "lowrank"}}}};
inline constexpr EnumNames<PopulationConfig::LabelMode, 2> kLabelModeNames{
    {{{PopulationConfig::LabelMode::kBernoulli, "bernoulli"},
      {PopulationConfig::LabelMode::kDeterministic, "deterministic"}}}};
inline constexpr EnumNames<PopulationConfig::UserDist, 2> kUserDistNames{
    {{{PopulationConfig::UserDist::kGaussian, "gaussian"},
      {PopulationConfig::UserDist::kMixture, "mixture"}}}};
inline constexpr EnumNames<PopulationConfig::Popularity, 2> kPopularityNames{
    {{{PopulationConfig::Popularity::kUniform, "uniform"},
      {PopulationConfig::Popularity::kZipf, "zipf"}}}};
inline const char* model_name(PopulationConfig::Model m) {
  return kPopulationModelNames.name(m);
}

inline constexpr int kAttributes = 7;
inline constexpr int kAttributeTypes = 84;
// The two (attribute, sign) poles of an Attributes user type t in [0, 84).
struct AttributeType {
  int attr_a, sign_a, attr_b, sign_b;
};
AttributeType attribute_type(int t);

// Generates the population's comparison factors, users and labels. Pure functions of the seed.
class Population {
 public:
  explicit Population(PopulationConfig cfg);
  const PopulationConfig& config() const { return cfg_; }
  int rank() const { return static_cast<int>(cfg_.rank); }

  // True factor z_p (rank() values).
  std::span<const double> comparison_factor(std::uint64_t p) const {
    return {z_.data() + p * cfg_.rank, cfg_.rank};
  }
  // True weights of user i (or of held-out new user i); returns the user type (attributes) or
  // mixture component (lowrank mixture), -1 otherwise.
  int user_weights(std::uint64_t i, bool new_user, std::span<double> u) const;

  // Appends user i's labels to train/validation/test (rows sorted by comparison in each).
  // For a new user all answers go to `train` (its pool). `scratch` is reused between calls.
  void user_labels(std::uint64_t i, bool new_user, LabelColumns* train, LabelColumns* validation,
                   LabelColumns* test) const;

  // Response structure (config().has_responses()): comparison p pairs responses first(p) and
  // second(p) of prompt p mod prompts; response r is the (r mod N)-th of prompt r div N; its
  // hidden attributes s_r are N(0, 1/2) per attribute and z_p = s_first - s_second.
  bool has_responses() const { return cfg_.has_responses(); }
  std::uint32_t first(std::uint64_t p) const { return first_[p]; }
  std::uint32_t second(std::uint64_t p) const { return second_[p]; }
  std::span<const double> response_attributes(std::uint64_t r) const {
    return {s_.data() + r * kAttributes, kAttributes};
  }
  // The embedding map A (7 x d, row-major, N(0, 2/7) entries, so A^T s has unit variance per
  // coordinate) and response r's embedding e_r = A^T s_r + embedding_noise * N(0, I).
  const std::vector<double>& embedding_map() const { return map_; }
  void embedding(std::uint64_t r, std::span<float> out) const;
  bool heldout_prompt(std::uint64_t q) const {
    return q + cfg_.heldout_prompts >= cfg_.prompt_count();
  }

  // The label of a user with weights u for comparison p, drawing from rng.
  float draw_label(std::span<const double> u, std::uint64_t p, Rng& rng) const;

 private:
  void draw_answers(Rng& rng, std::uint64_t k, std::vector<std::uint32_t>& out) const;
  // k distinct ids of pool, appended to out.
  static void draw_from_pool(Rng& rng, std::uint64_t k, const std::vector<std::uint32_t>& pool,
                             std::vector<std::uint32_t>& out);
  void make_responses();
  PopulationConfig cfg_;
  std::vector<double> s_;                                 // responses x 7 attributes
  std::vector<std::uint32_t> first_, second_;             // comparisons
  std::vector<double> map_;                               // 7 x embedding_dim
  std::vector<std::uint32_t> train_pool_, heldout_pool_;  // with held-out prompts
  std::vector<double> z_;                                 // comparisons x rank
  std::vector<double> zipf_cdf_;                          // popularity
  std::vector<double> centres_;                           // lowrank mixture: clusters x rank
};

}  // namespace pref
