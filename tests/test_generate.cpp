// Synthetic populations: the file written by all ranks is bitwise the one written by one rank,
// and the labels have the properties the configuration plants (per-user split sizes, distinct
// answers, attribute users, ties, temperature), checked against the stored truth.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <tuple>

#include "io/label_file.hpp"
#include "solver/base/mpi.hpp"
#include "solver/synthetic/population.hpp"
#include "solver/synthetic/population_file.hpp"
#include "tests/test_util.hpp"

using namespace pref;
using test::H5Id;

namespace {

std::string shared_path(const mpi::Comm& comm, const std::string& name) {
  const long pid = mpi::broadcast(comm, static_cast<long>(::getpid()));
  return test::tmp_dir() + "/test_generate." + std::to_string(pid) + "." +
         std::to_string(comm.size()) + "." + name;
}

PopulationConfig attributes_config() {
  PopulationConfig c;
  c.model = PopulationConfig::Model::kAttributes;
  c.rank = 7;
  c.users = 200;
  c.comparisons = 40;
  c.answers_per_user = 10;
  c.new_users = 9;
  c.new_user_answers = 15;
  c.temperature = 0.5;
  c.tie_band = 0.4;
  c.seed = 7;
  return c;
}

PopulationConfig lowrank_config() {
  PopulationConfig c;
  c.model = PopulationConfig::Model::kLowRank;
  c.rank = 5;
  c.users = 150;
  c.comparisons = 60;
  c.answers_per_user = 12;
  c.validation_fraction = 0.2;  // 2.4 -> 2 per user
  c.test_fraction = 0.1;        // 1.2 -> 1
  c.new_users = 7;
  c.new_user_answers = 20;
  c.user_dist = PopulationConfig::UserDist::kMixture;
  c.clusters = 3;
  c.cluster_spread = 0.3;
  c.popularity = PopulationConfig::Popularity::kZipf;
  c.zipf_exponent = 0.8;
  c.temperature = 0.3;
  c.tie_band = 0.2;
  c.seed = 12345;
  return c;
}

// Attributes with responses: 60 comparisons of 4 responses (6 pairs) per prompt, so 10 prompts,
// the last 3 held out (their 18 comparisons only in test labels), embeddings of dimension 5.
PopulationConfig responses_config() {
  PopulationConfig c = attributes_config();
  c.comparisons = 60;
  c.responses_per_prompt = 4;
  c.heldout_prompts = 3;
  c.embedding_dim = 5;
  c.embedding_noise = 0.1;
  return c;
}

struct Split {
  std::vector<std::uint32_t> user, comparison;
  std::vector<float> value;
};

Split read_split(hid_t f, const std::string& group) {
  Split s;
  s.user = test::h5_read<std::uint32_t>(f, group + "/user");
  s.comparison = test::h5_read<std::uint32_t>(f, group + "/comparison");
  // Quantized values (uint8 with a 'denominator' attribute) are decoded here.
  H5Id d(H5Dopen2(f, (group + "/value").c_str(), H5P_DEFAULT), H5Dclose);
  H5Id t(H5Dget_type(d), H5Tclose);
  if (H5Tget_class(t) == H5T_INTEGER) {
    std::uint32_t den = 0;
    H5Id a(H5Aopen(d, "denominator", H5P_DEFAULT), H5Aclose);
    H5Aread(a, H5T_NATIVE_UINT32, &den);
    EXPECT_EQ(den, 200u);
    for (auto q : test::h5_read<std::uint32_t>(f, group + "/value"))
      s.value.push_back(static_cast<float>(static_cast<double>(q) / den));
  } else {
    s.value = test::h5_read<float>(f, group + "/value");
  }
  return s;
}

double dot(const float* u, const float* z, int r) {
  double m = 0;
  for (int k = 0; k < r; ++k) m += static_cast<double>(u[k]) * z[k];
  return m;
}

// Labels against the planted truth: values in {0, 0.5, 1}; a tie exactly when |u.z| < tie band
// (away from the band's edge by float rounding); and the share of labels agreeing with
// sign(u.z) is what sigmoid(|u.z| / T) implies.
struct LabelTally {
  double agree = 0, expected = 0, variance = 0;
  std::uint64_t decided = 0, ties = 0;
};

void check_labels(const Split& s, const std::vector<float>& weights,
                  const std::vector<float>& factors, const PopulationConfig& c, LabelTally* t,
                  const std::string& what) {
  const int r = static_cast<int>(c.rank);
  for (std::size_t i = 0; i < s.value.size(); ++i) {
    const float y = s.value[i];
    ASSERT_TRUE(y == 0.0f || y == 0.5f || y == 1.0f) << what << " row " << i << ": " << y;
    const double m = dot(&weights[s.user[i] * r], &factors[s.comparison[i] * r], r);
    if (std::abs(std::abs(m) - c.tie_band) < 1e-4) continue;
    if (std::abs(m) < c.tie_band) {
      EXPECT_EQ(y, 0.5f) << what << " row " << i << ": margin " << m;
      ++t->ties;
      continue;
    }
    EXPECT_NE(y, 0.5f) << what << " row " << i << ": margin " << m;
    const double p = 1.0 / (1.0 + std::exp(-std::abs(m) / c.temperature));
    t->agree += (y == 1.0f) == (m > 0);
    t->expected += p;
    t->variance += p * (1 - p);
    ++t->decided;
  }
}

// Per-user counts and distinct answers over the given splits; `per_user[k]` labels of each of
// `users` users in split k.
void check_answers(const std::vector<const Split*>& splits,
                   const std::vector<std::uint64_t>& per_user, std::uint64_t users,
                   std::uint64_t comparisons, const std::string& what) {
  std::vector<std::set<std::uint32_t>> answers(users);
  for (std::size_t k = 0; k < splits.size(); ++k) {
    const Split& s = *splits[k];
    ASSERT_EQ(s.user.size(), users * per_user[k]) << what << " split " << k;
    std::vector<std::uint64_t> count(users, 0);
    for (std::size_t i = 0; i < s.user.size(); ++i) {
      ASSERT_LT(s.user[i], users) << what;
      ASSERT_LT(s.comparison[i], comparisons) << what;
      ++count[s.user[i]];
      EXPECT_TRUE(answers[s.user[i]].insert(s.comparison[i]).second)
          << what << ": user " << s.user[i] << " answers comparison " << s.comparison[i]
          << " twice";
    }
    for (std::uint64_t u = 0; u < users; ++u)
      EXPECT_EQ(count[u], per_user[k]) << what << " split " << k << " user " << u;
  }
}

// Every property of one generated file (serial reads on one rank).
void check_population(const std::string& path, const PopulationConfig& c) {
  H5Id f = test::h5_open(path);
  const int r = static_cast<int>(c.rank);
  // Split sizes computed here from the fractions.
  const std::uint64_t n_test =
      static_cast<std::uint64_t>(std::lround(c.test_fraction * c.answers_per_user));
  const std::uint64_t n_val =
      static_cast<std::uint64_t>(std::lround(c.validation_fraction * c.answers_per_user));
  const std::uint64_t n_train = c.answers_per_user - n_test - n_val;
  EXPECT_EQ(test::h5_exists(f, "/validation"), n_val > 0);
  EXPECT_EQ(test::h5_exists(f, "/test"), n_test > 0);
  const Split train = read_split(f, "/labels");
  const Split val = n_val ? read_split(f, "/validation") : Split{};
  const Split tst = n_test ? read_split(f, "/test") : Split{};
  check_answers({&train, &val, &tst}, {n_train, n_val, n_test}, c.users, c.comparisons, "users");

  const auto weights = test::h5_read<float>(f, "/truth/user_weights");
  const auto factors = test::h5_read<float>(f, "/truth/comparison_factors");
  ASSERT_EQ(test::h5_dims(f, "/truth/user_weights"), (std::vector<hsize_t>{c.users, c.rank}));
  ASSERT_EQ(test::h5_dims(f, "/truth/comparison_factors"),
            (std::vector<hsize_t>{c.comparisons, c.rank}));
  LabelTally tally;
  check_labels(train, weights, factors, c, &tally, "train");
  check_labels(val, weights, factors, c, &tally, "validation");
  check_labels(tst, weights, factors, c, &tally, "test");

  if (c.new_users > 0) {
    std::uint64_t nu = 0;
    H5Id g(H5Gopen2(f, "/new_users", H5P_DEFAULT), H5Gclose);
    H5Id a(H5Aopen(g, "users", H5P_DEFAULT), H5Aclose);
    H5Aread(a, H5T_NATIVE_UINT64, &nu);
    EXPECT_EQ(nu, c.new_users);
    const Split pool = read_split(f, "/new_users");
    check_answers({&pool}, {c.new_user_answers}, c.new_users, c.comparisons, "new users");
    const auto nw = test::h5_read<float>(f, "/new_users/truth/user_weights");
    ASSERT_EQ(nw.size(), c.new_users * c.rank);
    check_labels(pool, nw, factors, c, &tally, "new users");
  } else {
    EXPECT_FALSE(test::h5_exists(f, "/new_users"));
  }

  // The temperature: the agreeing share is within 4 standard deviations (plus 1%) of what
  // sigmoid(|u.z|/T) predicts.
  ASSERT_GT(tally.decided, 500u);
  const double n = static_cast<double>(tally.decided);
  EXPECT_NEAR(tally.agree / n, tally.expected / n, 4 * std::sqrt(tally.variance) / n + 0.01)
      << "T=" << c.temperature;
  if (c.tie_band > 0) {
    EXPECT_GT(tally.ties, 0u);
  }

  if (c.model == PopulationConfig::Model::kAttributes) {
    const auto types = test::h5_read<std::int16_t>(f, "/truth/user_type");
    ASSERT_EQ(types.size(), c.users);
    std::set<int> seen;
    for (std::uint64_t u = 0; u < c.users; ++u) {
      ASSERT_GE(types[u], 0);
      ASSERT_LT(types[u], kAttributeTypes);
      seen.insert(types[u]);
      const AttributeType at = attribute_type(types[u]);
      int nonzero = 0;
      for (int k = 0; k < r; ++k) {
        const float w = weights[u * r + k];
        if (w == 0.0f) continue;
        ++nonzero;
        EXPECT_TRUE(w == 1.0f || w == -1.0f) << "user " << u << " weight " << k << ": " << w;
      }
      EXPECT_EQ(nonzero, 2) << "user " << u;
      EXPECT_EQ(weights[u * r + at.attr_a], static_cast<float>(at.sign_a)) << "user " << u;
      EXPECT_EQ(weights[u * r + at.attr_b], static_cast<float>(at.sign_b)) << "user " << u;
    }
    EXPECT_GT(seen.size(), 50u);  // 200 users over 84 types
  } else if (c.user_dist == PopulationConfig::UserDist::kMixture) {
    // Users of a cluster sit near their cluster's mean, far from the other clusters' means.
    const auto types = test::h5_read<std::int16_t>(f, "/truth/user_type");
    ASSERT_EQ(types.size(), c.users);
    std::vector<std::vector<double>> mean(c.clusters, std::vector<double>(r, 0.0));
    std::vector<int> size(c.clusters, 0);
    for (std::uint64_t u = 0; u < c.users; ++u) {
      ASSERT_GE(types[u], 0);
      ASSERT_LT(types[u], static_cast<int>(c.clusters));
      ++size[types[u]];
      for (int k = 0; k < r; ++k) mean[types[u]][k] += weights[u * r + k];
    }
    for (std::uint32_t k = 0; k < c.clusters; ++k) {
      ASSERT_GT(size[k], 0) << "cluster " << k;
      for (auto& x : mean[k]) x /= size[k];
    }
    double within = 0, between = 0;
    int nb = 0;
    for (std::uint64_t u = 0; u < c.users; ++u)
      for (std::uint32_t k = 0; k < c.clusters; ++k) {
        double d = 0;
        for (int j = 0; j < r; ++j) d += std::pow(weights[u * r + j] - mean[k][j], 2);
        if (static_cast<int>(k) == types[u])
          within += std::sqrt(d);
        else
          between += std::sqrt(d), ++nb;
      }
    EXPECT_LT(within / c.users, 0.5 * between / nb);
  }
  if (c.popularity == PopulationConfig::Popularity::kZipf) {
    // Popular (low-id) comparisons are answered far more often than the tail.
    std::vector<std::uint64_t> count(c.comparisons, 0);
    for (const Split* s : {&train, &val, &tst})
      for (auto p : s->comparison) ++count[p];
    std::uint64_t head = 0, tail = 0;
    for (std::uint64_t p = 0; p < c.comparisons / 10; ++p) {
      head += count[p];
      tail += count[c.comparisons - 1 - p];
    }
    EXPECT_GT(head, 2 * tail);
  }
}

// Rows of the file at `path` that differ from a serial generation computed here, user by user
// in id order from Population alone (no writer, no partition), with the first one described
// in *first. Unlike comparing the writer's output at two rank counts, this can fail at 1 rank.
std::uint64_t serial_differences(const std::string& path, const PopulationConfig& c,
                                 std::string* first) {
  const Population pop(c);
  H5Id f = test::h5_open(path);
  std::uint64_t diffs = 0;
  auto compare = [&](const Split& got, const LabelColumns& want, const std::string& group) {
    if (got.value.size() != want.size()) {
      if (!diffs++)
        *first = group + ": " + std::to_string(got.value.size()) + " rows, expected " +
                 std::to_string(want.size());
      return;
    }
    for (std::size_t i = 0; i < want.size(); ++i)
      if (got.user[i] != want.user[i] || got.comparison[i] != want.comparison[i] ||
          got.value[i] != want.value[i])
        if (!diffs++) *first = group + " row " + std::to_string(i);
  };
  auto compare_floats = [&](const std::vector<float>& got, const std::vector<float>& want,
                            const std::string& what) {
    if (got != want && !diffs++) *first = what;
  };
  const int r = static_cast<int>(c.rank);
  std::vector<double> u(r);
  for (bool new_users : {false, true}) {
    const std::uint64_t n = new_users ? c.new_users : c.users;
    if (n == 0) continue;
    LabelColumns split[3];
    std::vector<float> weights;
    for (std::uint64_t i = 0; i < n; ++i) {
      pop.user_labels(i, new_users, &split[0], &split[1], &split[2]);
      pop.user_weights(i, new_users, u);
      for (double w : u) weights.push_back(static_cast<float>(w));
    }
    if (new_users) {
      compare(read_split(f, "/new_users"), split[0], "/new_users");
      compare_floats(test::h5_read<float>(f, "/new_users/truth/user_weights"), weights,
                     "/new_users/truth/user_weights");
      continue;
    }
    const char* groups[3] = {"/labels", "/validation", "/test"};
    for (int s = 0; s < 3; ++s)
      if (split[s].size() > 0 || test::h5_exists(f, groups[s]))
        compare(read_split(f, groups[s]), split[s], groups[s]);
    compare_floats(test::h5_read<float>(f, "/truth/user_weights"), weights, "/truth/user_weights");
  }
  std::vector<float> factors;
  for (std::uint64_t p = 0; p < c.comparisons; ++p)
    for (double z : pop.comparison_factor(p)) factors.push_back(static_cast<float>(z));
  compare_floats(test::h5_read<float>(f, "/truth/comparison_factors"), factors,
                 "/truth/comparison_factors");
  if (c.has_responses()) {
    std::vector<std::uint32_t> fa, fb, prompt;
    for (std::uint64_t p = 0; p < c.comparisons; ++p) {
      fa.push_back(pop.first(p));
      fb.push_back(pop.second(p));
    }
    if (test::h5_read<std::uint32_t>(f, "/comparisons/first") != fa ||
        test::h5_read<std::uint32_t>(f, "/comparisons/second") != fb)
      if (!diffs++) *first = "/comparisons";
    std::vector<float> attrs, emb(c.embedding_dim), embs;
    for (std::uint64_t resp = 0; resp < c.response_count(); ++resp) {
      prompt.push_back(static_cast<std::uint32_t>(resp / c.responses_per_prompt));
      for (double a : pop.response_attributes(resp)) attrs.push_back(static_cast<float>(a));
      pop.embedding(resp, emb);
      embs.insert(embs.end(), emb.begin(), emb.end());
    }
    if (test::h5_read<std::uint32_t>(f, "/responses/prompt") != prompt)
      if (!diffs++) *first = "/responses/prompt";
    compare_floats(test::h5_read<float>(f, "/truth/response_attributes"), attrs,
                   "/truth/response_attributes");
    if (c.embedding_dim)
      compare_floats(test::h5_read<float>(f, "/responses/embedding"), embs, "/responses/embedding");
  }
  return diffs;
}

// Writes cfg on the whole communicator and on rank 0 alone; the files must be identical, equal
// to a serial generation, and have the planted properties.
void generate_and_compare(const PopulationConfig& cfg, const std::string& name) {
  auto world = mpi::Comm::world();
  const std::string all = shared_path(world, name + ".all.h5");
  const std::string one = shared_path(world, name + ".one.h5");
  const GenerateStats st = write_population(Population(cfg), all, world);
  const std::uint64_t want =
      cfg.users * cfg.answers_per_user + cfg.new_users * cfg.new_user_answers;
  EXPECT_EQ(st.labels, want);
  if (world.rank() == 0) {
    auto self = mpi::Comm::self();
    write_population(Population(cfg), one, self);
    const auto diffs = test::h5_differences(all, one);
    EXPECT_TRUE(diffs.empty()) << diffs.size() << " differences, first: " << diffs.front();
    std::string first;
    EXPECT_EQ(serial_differences(all, cfg, &first), 0u) << "first: " << first;
    check_population(all, cfg);
  }
  world.barrier();
  // The reader accepts it, with the counts of the configuration.
  {
    const io::LabelFile f = io::LabelFile::open(all, world);
    EXPECT_EQ(f.users(), cfg.users);
    EXPECT_EQ(f.comparisons(), cfg.comparisons);
    EXPECT_EQ(f.new_users(), cfg.new_users);
    std::uint64_t total = 0;
    for (io::Split s : io::kAllSplits) total += f.labels(s);
    EXPECT_EQ(total, want);
  }
  world.barrier();
  if (world.rank() == 0 && !::testing::Test::HasFailure()) {
    std::filesystem::remove(all);
    std::filesystem::remove(one);
  }
}

// The configuration is refused with an InputError naming `option`.
void expect_rejected(const PopulationConfig& c, const std::string& option) {
  try {
    c.validate();
    ADD_FAILURE() << option << " accepted";
  } catch (const InputError& e) {
    EXPECT_TRUE(test::contains(e.what(), option)) << e.what();
  }
}

}  // namespace

TEST(Generate, AttributeTypesAreTheTwoPolePairs) {
  // 84 types: every pair of the 7 attributes with every combination of signs, each once.
  std::set<std::tuple<int, int, int, int>> seen;
  for (int t = 0; t < kAttributeTypes; ++t) {
    const AttributeType a = attribute_type(t);
    EXPECT_GE(a.attr_a, 0);
    EXPECT_LT(a.attr_a, a.attr_b);
    EXPECT_LT(a.attr_b, kAttributes);
    EXPECT_TRUE(a.sign_a == 1 || a.sign_a == -1);
    EXPECT_TRUE(a.sign_b == 1 || a.sign_b == -1);
    seen.insert({a.attr_a, a.sign_a, a.attr_b, a.sign_b});
  }
  EXPECT_EQ(seen.size(), 84u);
}

TEST(Generate, ImpossibleConfigurationsAreInputErrors) {
  PopulationConfig c = lowrank_config();
  EXPECT_NO_THROW(c.validate());
  c.answers_per_user = c.comparisons + 1;
  expect_rejected(c, "--answers-per-user");
  c = lowrank_config();
  c.clusters = 40000;  // user_type is int16
  expect_rejected(c, "--clusters");
  c = attributes_config();
  c.rank = 8;
  expect_rejected(c, "--rank");
  c = attributes_config();
  c.new_user_answers = c.comparisons + 1;
  expect_rejected(c, "--new-user-answers");
}

TEST(Generate, AttributesPopulation) {
  generate_and_compare(attributes_config(), "attributes");
}

TEST(Generate, LowRankMixtureZipfPopulation) {
  generate_and_compare(lowrank_config(), "lowrank");
}

TEST(Generate, NoHeldOutAnswers) {
  // 4 answers per user: 10% rounds to no validation and no test answers, so those splits are
  // absent and every answer is a training label.
  PopulationConfig c = attributes_config();
  c.answers_per_user = 4;
  c.users = 30;
  c.new_users = 0;
  auto world = mpi::Comm::world();
  const std::string all = shared_path(world, "noheldout.all.h5");
  const std::string one = shared_path(world, "noheldout.one.h5");
  write_population(Population(c), all, world);
  if (world.rank() == 0) {
    auto self = mpi::Comm::self();
    write_population(Population(c), one, self);
    EXPECT_TRUE(test::h5_differences(all, one).empty());
    H5Id f = test::h5_open(all);
    EXPECT_FALSE(test::h5_exists(f, "/validation"));
    EXPECT_FALSE(test::h5_exists(f, "/test"));
    const Split train = read_split(f, "/labels");
    check_answers({&train}, {4}, c.users, c.comparisons, "users");
  }
  world.barrier();
  if (world.rank() == 0) {
    std::filesystem::remove(all);
    std::filesystem::remove(one);
  }
}

TEST(Generate, SeedChangesThePopulation) {
  // The bitwise comparison above is meaningful only if different inputs give different files.
  PopulationConfig a = attributes_config(), b = attributes_config();
  a.users = b.users = 20;
  b.seed = a.seed + 1;
  auto world = mpi::Comm::world();
  const std::string pa = shared_path(world, "seed_a.h5"), pb = shared_path(world, "seed_b.h5");
  write_population(Population(a), pa, world);
  write_population(Population(b), pb, world);
  if (world.rank() == 0) {
    EXPECT_FALSE(test::h5_differences(pa, pb).empty());
    // Nor is the comparison with a serial generation: it finds another seed's file.
    std::string first;
    EXPECT_GT(serial_differences(pb, a, &first), 0u);
    EXPECT_EQ(serial_differences(pa, a, &first), 0u) << "first: " << first;
    std::filesystem::remove(pa);
    std::filesystem::remove(pb);
  }
  world.barrier();
}

TEST(Generate, ResponsesPopulation) {
  // Bitwise the same at every rank count, equal to a serial generation (labels, truth, response
  // tables, embeddings), and the planted label properties against the stored z.
  generate_and_compare(responses_config(), "responses");
}

TEST(Generate, VersionOneFilesWithoutResponses) {
  // Without --responses-per-prompt the file is version 1 with no response structure.
  PopulationConfig c = attributes_config();
  c.users = 20;
  auto world = mpi::Comm::world();
  const std::string path = shared_path(world, "v1.h5");
  write_population(Population(c), path, world);
  {
    const io::LabelFile f = io::LabelFile::open(path, world);
    EXPECT_EQ(f.version(), 1u);
    EXPECT_FALSE(f.has_responses());
  }
  if (world.rank() == 0) {
    H5Id f = test::h5_open(path);
    EXPECT_FALSE(test::h5_exists(f, "/responses"));
    EXPECT_FALSE(test::h5_exists(f, "/comparisons"));
    std::uint32_t v = 0;
    H5Id a(H5Aopen(f, "format_version", H5P_DEFAULT), H5Aclose);
    H5Aread(a, H5T_NATIVE_UINT32, &v);
    EXPECT_EQ(v, 1u);
    std::filesystem::remove(path);
  }
  world.barrier();
}

TEST(Generate, ResponseStructureAndHeldOutPrompts) {
  const PopulationConfig c = responses_config();
  const std::uint64_t N = c.responses_per_prompt, P = c.prompt_count(), R = c.response_count();
  ASSERT_EQ(P, 10u);
  ASSERT_EQ(c.heldout_comparisons(), 18u);
  auto world = mpi::Comm::world();
  const std::string path = shared_path(world, "structure.h5");
  write_population(Population(c), path, world);
  // What the reader gives every rank.
  const io::LabelFile lf = io::LabelFile::open(path, world);
  EXPECT_EQ(lf.version(), 2u);
  ASSERT_TRUE(lf.has_responses());
  EXPECT_EQ(lf.responses().responses, R);
  EXPECT_EQ(lf.responses().prompts, P);
  EXPECT_EQ(lf.responses().embedding_dim, c.embedding_dim);
  const std::vector<float> emb_all = lf.read_embedding(0, R, world);
  if (world.rank() == 0) {
    H5Id f = test::h5_open(path);
    const auto prompt = test::h5_read<std::uint32_t>(f, "/responses/prompt");
    const auto first = test::h5_read<std::uint32_t>(f, "/comparisons/first");
    const auto second = test::h5_read<std::uint32_t>(f, "/comparisons/second");
    EXPECT_EQ(lf.responses().prompt, prompt);
    EXPECT_EQ(lf.responses().first, first);
    EXPECT_EQ(lf.responses().second, second);
    const auto attrs = test::h5_read<float>(f, "/truth/response_attributes");
    const auto z = test::h5_read<float>(f, "/truth/comparison_factors");
    const auto map = test::h5_read<float>(f, "/truth/embedding_map");
    const auto emb = test::h5_read<float>(f, "/responses/embedding");
    EXPECT_EQ(emb, emb_all);
    ASSERT_EQ(attrs.size(), R * 7);
    ASSERT_EQ(map.size(), 7 * c.embedding_dim);
    // Every comparison pairs two distinct responses of its prompt p mod P; each pair of a
    // prompt's responses is one comparison at most, and both orders occur.
    std::set<std::pair<std::uint32_t, std::uint32_t>> pairs;
    int swapped = 0;
    for (std::uint64_t p = 0; p < c.comparisons; ++p) {
      const std::uint32_t a = first[p], b = second[p];
      ASSERT_NE(a, b);
      EXPECT_EQ(prompt[a], p % P) << "comparison " << p;
      EXPECT_EQ(prompt[b], p % P) << "comparison " << p;
      EXPECT_TRUE(pairs.insert({std::min(a, b), std::max(a, b)}).second) << "comparison " << p;
      swapped += a > b;
      // The truth: z_p is the difference of the two responses' attributes.
      for (int k = 0; k < 7; ++k)
        EXPECT_NEAR(z[p * 7 + k], attrs[a * 7 + k] - attrs[b * 7 + k], 1e-5) << p << "," << k;
    }
    EXPECT_GT(swapped, 10);
    EXPECT_LT(swapped, 50);
    for (std::uint64_t r = 0; r < R; ++r) EXPECT_EQ(prompt[r], r / N);
    // Embeddings: A^T s plus noise of the configured size (the residual's standard deviation
    // over 200 values within 25%), and the signal is most of it.
    double res2 = 0, sig2 = 0;
    for (std::uint64_t r = 0; r < R; ++r)
      for (std::uint64_t j = 0; j < c.embedding_dim; ++j) {
        double e = 0;
        for (int k = 0; k < 7; ++k)
          e += static_cast<double>(map[k * c.embedding_dim + j]) * attrs[r * 7 + k];
        res2 += std::pow(emb[r * c.embedding_dim + j] - e, 2);
        sig2 += e * e;
      }
    const double n = static_cast<double>(R * c.embedding_dim);
    EXPECT_NEAR(std::sqrt(res2 / n), c.embedding_noise, 0.25 * c.embedding_noise);
    EXPECT_GT(sig2 / n, 0.4);
    EXPECT_LT(sig2 / n, 2.5);
    // Held-out prompts (7, 8, 9): every test label is on one, no training, validation or
    // new-user label is.
    auto heldout = [&](std::uint32_t p) { return p % P >= P - c.heldout_prompts; };
    for (const char* g : {"/labels", "/validation", "/new_users"}) {
      const Split s = read_split(f, g);
      ASSERT_GT(s.comparison.size(), 0u) << g;
      for (auto p : s.comparison) EXPECT_FALSE(heldout(p)) << g << " comparison " << p;
    }
    const Split t = read_split(f, "/test");
    ASSERT_EQ(t.comparison.size(), c.users * c.test_answers());
    std::set<std::uint32_t> tested;
    for (auto p : t.comparison) {
      EXPECT_TRUE(heldout(p)) << "test comparison " << p;
      tested.insert(p);
    }
    EXPECT_GT(tested.size(), 12u);  // 200 draws over 18 held-out comparisons
    std::filesystem::remove(path);
  }
  world.barrier();
}

TEST(Generate, ResponseConfigurationsRejected) {
  PopulationConfig c = responses_config();
  EXPECT_NO_THROW(c.validate());
  c.answers_per_user = 48;  // 5 test answers; 43 others of 42 training comparisons
  c.new_users = 0;
  expect_rejected(c, "--answers-per-user");
  c = responses_config();
  c.test_fraction = 0.1;
  c.answers_per_user = 40;
  c.heldout_prompts = 1;  // 6 held-out comparisons, 4 test answers: fine
  EXPECT_NO_THROW(c.validate());
  c.answers_per_user = 50;  // 5 test answers, but validation and training need 45 of 54
  EXPECT_NO_THROW(c.validate());
  c.test_fraction = 0.2;  // 10 test answers of 6
  expect_rejected(c, "--heldout-prompts");
  c = responses_config();
  c.new_user_answers = 43;
  expect_rejected(c, "--new-user-answers");
  c = responses_config();
  c.popularity = PopulationConfig::Popularity::kZipf;
  expect_rejected(c, "--heldout-prompts");
}
