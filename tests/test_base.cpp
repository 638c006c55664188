// The base layer: counter-based randomness, partitions, the all-to-all, the gather of rows, error
// agreement and the enums' name tables.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <span>

#include "solver/base/enum_names.hpp"
#include "solver/base/mpi.hpp"
#include "solver/base/partition.hpp"
#include "solver/base/rng.hpp"

using namespace pref;

TEST(Rng, PhiloxKnownAnswers) {
  // Random123's published known-answer vectors for Philox4x32-10.
  EXPECT_EQ(philox4x32_10({0, 0, 0, 0}, {0, 0}),
            (Philox4x32{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}));
  EXPECT_EQ(
      philox4x32_10({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff}),
      (Philox4x32{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}));
  EXPECT_EQ(
      philox4x32_10({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0}),
      (Philox4x32{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}));
}

TEST(Rng, UniformAndNormalMoments) {
  Rng rng(42, Stream::kLabel, 7);
  const int n = 200000;
  double s = 0, s2 = 0, below = 0;
  for (int i = 0; i < n; ++i) {
    const double x = rng.normal();
    s += x;
    s2 += x * x;
    below += rng.below(10) < 3;
  }
  EXPECT_NEAR(s / n, 0.0, 0.01);
  EXPECT_NEAR(s2 / n, 1.0, 0.02);
  EXPECT_NEAR(below / n, 0.3, 0.01);
}

TEST(Partition, UniformAndOwner) {
  const Partition p = Partition::uniform(10, 4);
  EXPECT_EQ(p.bounds(), (std::vector<GlobalId>{0, 3, 6, 8, 10}));
  for (GlobalId g = 0; g < 10; ++g) EXPECT_TRUE(p.begin(p.owner(g)) <= g && g < p.end(p.owner(g)));
  const Partition e({0, 0, 5, 5, 9});  // empty ranges are skipped by owner()
  EXPECT_EQ(e.owner(0), 1);
  EXPECT_EQ(e.owner(5), 3);
}

// Per-id counts of ids spread over the ranks, against a serial count: ids in a narrow range per
// rank (counted on the rank first), ids spread thinly over a wide range (sent one by one), and
// ranks without ids.
TEST(Partition, CountByBlockMatchesSerialCount) {
  auto world = mpi::Comm::world();
  const int p = world.size(), me = world.rank();
  struct Shape {
    const char* name;
    GlobalId n;
    std::uint64_t labels;
    bool sorted;
  };
  const Shape shapes[] = {{"narrow, sorted", 5000, 60000, true},
                          {"wide, thin", 3000000, 2000, false},
                          {"wide, sorted", 3000000, 2000, true},
                          {"few labels", 10, 3, false}};
  for (const Shape& sh : shapes) {
    SCOPED_TRACE(sh.name);
    std::mt19937_64 gen(11);
    std::vector<std::uint32_t> all(sh.labels);
    // Skewed: low ids far more often, so the counts differ from id to id.
    for (auto& id : all) {
      const double x = std::uniform_real_distribution<double>(0, 1)(gen);
      id = static_cast<std::uint32_t>(static_cast<double>(sh.n) * x * x * x);
    }
    if (sh.sorted) std::sort(all.begin(), all.end());
    std::vector<std::uint64_t> want(sh.n, 0);
    for (auto id : all) ++want[id];
    const Partition rows = Partition::uniform(sh.labels, p);
    const std::span<const std::uint32_t> mine(all.data() + rows.begin(me), rows.count(me));
    const std::vector<std::uint64_t> got = count_by_block(world, sh.n, mine);
    const Partition blocks = Partition::uniform(sh.n, p);
    ASSERT_EQ(got.size(), blocks.count(me));
    for (std::size_t k = 0; k < got.size(); ++k)
      ASSERT_EQ(got[k], want[blocks.begin(me) + k]) << "id " << blocks.begin(me) + k;
  }
}

TEST(Partition, BalancedMatchesSerialReference) {
  auto world = mpi::Comm::world();
  const int p = world.size();
  for (GlobalId n : {1ull, 7ull, 100ull, 1001ull}) {
    // Skewed weights, a pure function of the id.
    std::vector<std::uint64_t> all(n);
    for (GlobalId i = 0; i < n; ++i) all[i] = (i * 7919) % 13 == 0 ? 50 : (i % 3);
    const Partition blocks = Partition::uniform(n, p);
    std::vector<std::uint64_t> mine(all.begin() + blocks.begin(world.rank()),
                                    all.begin() + blocks.end(world.rank()));
    const Partition got = Partition::balanced(world, blocks, mine);
    // Serial reference: boundary k is the smallest j with prefix(j) >= ceil(k*total/p).
    std::vector<std::uint64_t> prefix(n + 1, 0);
    std::partial_sum(all.begin(), all.end(), prefix.begin() + 1);
    const std::uint64_t total = prefix[n];
    std::vector<GlobalId> want(p + 1, n);
    want[0] = 0;
    for (int k = 1; k < p; ++k) {
      const std::uint64_t t = (total * k + p - 1) / p;
      want[k] = std::lower_bound(prefix.begin(), prefix.end(), t) - prefix.begin();
    }
    EXPECT_EQ(got.bounds(), want) << "n=" << n;
  }
}

TEST(Mpi, AlltoallvDeliversEverythingInRankOrder) {
  auto world = mpi::Comm::world();
  const int p = world.size(), me = world.rank();
  std::vector<std::uint64_t> counts(p);
  std::vector<std::uint32_t> send;
  for (int r = 0; r < p; ++r) {
    counts[r] = static_cast<std::uint64_t>(me + r + 1);
    for (std::uint64_t k = 0; k < counts[r]; ++k) send.push_back(1000 * me + r);
  }
  std::vector<std::uint64_t> rc;
  auto got = mpi::alltoallv<std::uint32_t>(world, send, counts, &rc);
  std::vector<std::uint32_t> want;
  for (int s = 0; s < p; ++s)
    for (int k = 0; k < s + me + 1; ++k) want.push_back(1000 * s + me);
  EXPECT_EQ(got, want);
}

// The bounded-round exchange (pack and take callbacks) with a cap of 2 items per pair per
// round, so that pairs need different numbers of rounds: every item arrives once, in order.
TEST(Mpi, AlltoallvRoundsDeliversEverythingInOrder) {
  auto world = mpi::Comm::world();
  const int p = world.size(), me = world.rank();
  std::vector<std::uint64_t> counts(p), rcounts(p);
  for (int r = 0; r < p; ++r) {
    counts[r] = static_cast<std::uint64_t>((me + 2 * r) % 5);
    rcounts[r] = static_cast<std::uint64_t>((r + 2 * me) % 5);
  }
  std::vector<std::vector<std::uint64_t>> got(p);
  mpi::alltoallv_rounds<std::uint64_t>(
      world, counts, rcounts, 2,
      [&](int d, std::uint64_t from, std::uint64_t c, std::uint64_t* out) {
        for (std::uint64_t k = 0; k < c; ++k) out[k] = 1000 * me + 100 * d + from + k;
      },
      [&](int s, std::uint64_t from, std::span<const std::uint64_t> items) {
        EXPECT_EQ(from, got[s].size());
        got[s].insert(got[s].end(), items.begin(), items.end());
      });
  for (int s = 0; s < p; ++s) {
    std::vector<std::uint64_t> want;
    for (std::uint64_t k = 0; k < rcounts[s]; ++k) want.push_back(1000 * s + 100 * me + k);
    EXPECT_EQ(got[s], want) << "from rank " << s;
  }
}

// Every rank's rows, in rank order, on every rank, whatever the sizes (some ranks empty).
TEST(Mpi, AllgathervConcatenatesInRankOrder) {
  const mpi::Comm world = mpi::Comm::world();
  const int me = world.rank();
  // Rank r holds r * 3 items (rank 0 none): values r * 1000 + k.
  std::vector<std::uint64_t> mine(static_cast<std::size_t>(me) * 3);
  for (std::size_t k = 0; k < mine.size(); ++k) mine[k] = std::uint64_t(me) * 1000 + k;
  const std::vector<std::uint64_t> all =
      mpi::allgatherv<std::uint64_t>(world, std::span<const std::uint64_t>(mine));
  std::vector<std::uint64_t> want;
  for (int r = 0; r < world.size(); ++r)
    for (int k = 0; k < r * 3; ++k) want.push_back(std::uint64_t(r) * 1000 + k);
  EXPECT_EQ(all, want);
}

enum class Fruit { kApple, kPear, kPlum };
constexpr EnumNames<Fruit, 3> kFruitNames{
    {{{Fruit::kApple, "apple"}, {Fruit::kPear, "pear"}, {Fruit::kPlum, "plum"}}}};

TEST(EnumNames, NamesParseAndRefuse) {
  static_assert(kFruitNames.find("pear") == Fruit::kPear);
  EXPECT_STREQ(kFruitNames.name(Fruit::kPlum), "plum");
  EXPECT_EQ(kFruitNames.parse("apple", "--fruit"), Fruit::kApple);
  EXPECT_EQ(kFruitNames.names(), (std::vector<std::string>{"apple", "pear", "plum"}));
  EXPECT_EQ(kFruitNames.names({Fruit::kPear}), (std::vector<std::string>{"apple", "plum"}));
  EXPECT_EQ(kFruitNames.list(), "apple, pear or plum");
  try {
    kFruitNames.parse("Apple", "f.h5: attribute 'fruit'");
    ADD_FAILURE() << "accepted a name not in the table";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(), "f.h5: attribute 'fruit': 'Apple' is not one of apple, pear or plum");
  }
}

TEST(Mpi, AgreeReportsTheSmallestOrderOnEveryRank) {
  auto world = mpi::Comm::world();
  const int me = world.rank();
  try {
    mpi::agree(world, [&] {
      if (me == world.size() - 1) throw InputError("row " + std::to_string(10 + me), 10 + me);
      if (me == 0 && world.size() > 1) throw InputError("row 99", 99);
    });
    FAIL() << "agree did not throw";
  } catch (const InputError& e) {
    EXPECT_TRUE(e.collective());
    EXPECT_EQ(std::string(e.what()), "row " + std::to_string(10 + world.size() - 1));
  }
  EXPECT_NO_THROW(mpi::agree(world, [] {}));
}

#include <cmath>

#include "solver/newton/vmath.hpp"

namespace {
// Distance in units in the last place between two doubles of the same sign.
double ulps(double a, double b) {
  if (a == b) return 0;
  return std::abs(a - b) / std::abs(std::nextafter(b, a) - b);
}
}  // namespace

TEST(Vmath, ExpNonPositiveAgainstLibm) {
  Rng rng(5, Stream::kLabel, 1);
  double worst = 0;
  for (int i = 0; i < 200000; ++i) {
    const double x =
        i % 2 ? -708.0 * rng.uniform() : -rng.uniform() * std::pow(10.0, -12 * rng.uniform());
    worst = std::max(worst, ulps(vmath::exp_nonpos(x), std::exp(x)));
  }
  EXPECT_LE(worst, 4.0);
  RecordProperty("worst_ulps", std::to_string(worst));
  EXPECT_EQ(vmath::exp_nonpos(0.0), 1.0);
  EXPECT_EQ(vmath::exp_nonpos(-800.0), 0.0);
  EXPECT_EQ(vmath::exp_nonpos(-INFINITY), 0.0);
}

TEST(Vmath, Expm1AndLog1pAgainstLibm) {
  Rng rng(6, Stream::kLabel, 2);
  double worst_e = 0, worst_l = 0;
  for (int i = 0; i < 200000; ++i) {
    const double mag = std::pow(10.0, -15 * rng.uniform());
    const double d = (rng.uniform() < 0.5 ? -1 : 1) * mag;
    worst_e = std::max(worst_e, ulps(vmath::expm1_small(d), std::expm1(d)));
    // log1p on (-0.64, 1.72], where the kernels use it, plus values near 0.
    const double x = i % 3 == 0 ? d * 0.5 : -0.64 + 2.36 * rng.uniform();
    worst_l = std::max(worst_l, ulps(vmath::log1p_pos(x), std::log1p(x)));
  }
  EXPECT_LE(worst_e, 4.0);
  RecordProperty("worst_ulps", std::to_string(worst_e) + " " + std::to_string(worst_l));
  EXPECT_LE(worst_l, 4.0);
  EXPECT_EQ(vmath::log1p_pos(0.0), 0.0);
  EXPECT_EQ(vmath::expm1_small(0.0), 0.0);
}
