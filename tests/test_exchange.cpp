// Exchange plans below the fit (solver/layout/exchange.hpp): IdSet against std::set, and
// GhostPlan's fetch and reduce against a naive reference built from every rank's requests
// (allgathered), with uneven owner ranges (some empty), ranks that need nothing, and several row
// widths.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "solver/base/mpi.hpp"
#include "solver/base/partition.hpp"
#include "solver/layout/exchange.hpp"

using namespace pref;

namespace {

// A seeded generator's draw in [0, n): the same on every rank for the same seed.
struct Draw {
  std::mt19937_64 gen;
  explicit Draw(std::uint64_t seed) : gen(seed) {}
  std::uint64_t below(std::uint64_t n) { return gen() % n; }
};

// The ids rank r needs in a problem of n ids: a seeded random subset, with duplicates and in
// no order (as label partners come), none at all on rank 1 of 4 ranks or more.
std::vector<std::uint32_t> needed(int r, int p, std::uint32_t n, std::uint64_t seed) {
  std::vector<std::uint32_t> out;
  if (p >= 4 && r == 1) return out;
  Draw rng(seed * 1000 + static_cast<std::uint64_t>(r));
  const std::uint64_t k = 1 + rng.below(2 * n);
  for (std::uint64_t i = 0; i < k; ++i) out.push_back(static_cast<std::uint32_t>(rng.below(n)));
  return out;
}

// Owner ranges of uneven sizes, the first (of two or more ranks) empty.
Partition uneven_owners(std::uint32_t n, int p) {
  std::vector<GlobalId> b(p + 1, 0);
  for (int r = 1; r <= p; ++r)
    b[r] = r == 1 && p > 1 ? 0 : n * (std::uint64_t(r) * r) / (std::uint64_t(p) * p);
  b[p] = n;
  return Partition(b);
}

// The value of column c of row g that owners hold: exact in double.
double owner_value(std::uint64_t g, int c) {
  return static_cast<double>(g * 1000 + c);
}
// What rank r adds for row g, column c in a reduce: exact sums in any order.
double contribution(int r, std::uint64_t g, int c) {
  return static_cast<double>((r + 1) * 100000 + g * 10 + c);
}

}  // namespace

TEST(IdSet, SortedAndIndexMatchAStdSet) {
  const std::vector<std::uint32_t> a = {70, 3, 64, 63, 3, 200, 127, 128};
  const std::vector<std::uint32_t> b = {5, 200, 1000, 64};
  const IdSet s({a, b});
  std::set<std::uint32_t> ref(a.begin(), a.end());
  ref.insert(b.begin(), b.end());
  const std::vector<std::uint32_t> want(ref.begin(), ref.end());
  EXPECT_EQ(s.sorted(), want);
  for (std::size_t k = 0; k < want.size(); ++k) EXPECT_EQ(s.index_of(want[k]), k) << want[k];
}

TEST(IdSet, EmptyAndExtremeIds) {
  EXPECT_TRUE(IdSet().sorted().empty());
  const std::vector<std::uint32_t> none;
  EXPECT_TRUE(IdSet({none}).sorted().empty());
  // Ids at the top of the range: the span is computed without overflow.
  const std::vector<std::uint32_t> top = {UINT32_MAX, UINT32_MAX - 70, UINT32_MAX - 1};
  const IdSet s({top});
  EXPECT_EQ(s.sorted(), (std::vector<std::uint32_t>{UINT32_MAX - 70, UINT32_MAX - 1, UINT32_MAX}));
  EXPECT_EQ(s.index_of(UINT32_MAX - 70), 0u);
  EXPECT_EQ(s.index_of(UINT32_MAX), 2u);
  const std::vector<std::uint32_t> zero = {0};
  EXPECT_EQ(IdSet({zero}).sorted(), zero);
}

TEST(IdSet, RandomSetsMatchAStdSet) {
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    Draw rng(seed);
    const std::uint32_t lo = static_cast<std::uint32_t>(rng.below(1u << 20));
    const std::uint32_t span = 1 + static_cast<std::uint32_t>(rng.below(5000));
    std::vector<std::uint32_t> ids(rng.below(3000));
    for (auto& g : ids) g = lo + static_cast<std::uint32_t>(rng.below(span));
    const IdSet s({ids});
    const std::set<std::uint32_t> ref(ids.begin(), ids.end());
    const std::vector<std::uint32_t> want(ref.begin(), ref.end());
    ASSERT_EQ(s.sorted(), want) << "seed " << seed;
    for (std::size_t k = 0; k < want.size(); ++k)
      ASSERT_EQ(s.index_of(want[k]), k) << "seed " << seed << " id " << want[k];
  }
}

TEST(GhostPlan, FetchAndReduceMatchANaiveReference) {
  auto world = mpi::Comm::world();
  const int p = world.size(), me = world.rank();
  for (std::uint32_t n : {1u, 37u, 1000u}) {
    for (std::uint64_t seed : {1u, 2u}) {
      const Partition owners = uneven_owners(n, p);
      const std::vector<std::uint32_t> mine = needed(me, p, n, seed);
      const GhostPlan plan(world, IdSet({mine}), owners);

      // The ghosts: this rank's needed ids, sorted and unique, indexed in that order.
      const std::set<std::uint32_t> ref(mine.begin(), mine.end());
      const std::vector<std::uint32_t> want(ref.begin(), ref.end());
      ASSERT_EQ(plan.ids(), want) << "n " << n;
      ASSERT_EQ(plan.ghosts(), want.size());
      std::uint64_t remote = 0;
      for (std::size_t k = 0; k < want.size(); ++k) {
        EXPECT_EQ(plan.index_of(want[k]), k);
        if (owners.owner(want[k]) != me) ++remote;
      }
      EXPECT_EQ(plan.remote_rows(), remote);

      for (int width : {1, 3}) {
        // fetch: every ghost row is its owner's row.
        std::vector<double> local(owners.count(me) * width);
        for (std::uint64_t i = 0; i < owners.count(me); ++i)
          for (int c = 0; c < width; ++c)
            local[i * width + c] = owner_value(owners.begin(me) + i, c);
        std::vector<double> ghost;
        plan.fetch(world, local, width, ghost);
        ASSERT_EQ(ghost.size(), want.size() * width);
        for (std::size_t k = 0; k < want.size(); ++k)
          for (int c = 0; c < width; ++c)
            ASSERT_EQ(ghost[k * width + c], owner_value(want[k], c))
                << "n " << n << " width " << width << " ghost " << k;

        // reduce: an owner's row is the sum of the contributions of every rank needing it.
        std::vector<double> contrib(want.size() * width);
        for (std::size_t k = 0; k < want.size(); ++k)
          for (int c = 0; c < width; ++c) contrib[k * width + c] = contribution(me, want[k], c);
        std::vector<double> sums(owners.count(me) * width, -1.0);  // overwritten, not added to
        plan.reduce(world, contrib, width, sums);
        std::vector<double> expect(owners.count(me) * width, 0.0);
        for (int r = 0; r < p; ++r) {
          const std::vector<std::uint32_t> theirs = needed(r, p, n, seed);
          for (std::uint32_t g : std::set<std::uint32_t>(theirs.begin(), theirs.end())) {
            if (owners.owner(g) != me) continue;
            for (int c = 0; c < width; ++c)
              expect[(g - owners.begin(me)) * width + c] += contribution(r, g, c);
          }
        }
        ASSERT_EQ(sums, expect) << "n " << n << " width " << width;
      }
    }
  }
}

TEST(GhostPlan, ReduceIsTheTransposeOfFetch) {
  // <fetch(x), y> over all ghosts equals <x, reduce(y)> over all owners, on random data: holds
  // for any plan only if both move each row between the same pair of slots.
  auto world = mpi::Comm::world();
  const int me = world.rank();
  const std::uint32_t n = 500;
  const Partition owners = Partition::uniform(n, world.size());
  const std::vector<std::uint32_t> mine = needed(me, world.size(), n, 9);
  const GhostPlan plan(world, IdSet({mine}), owners);
  const int width = 2;
  Draw rng(11000 + static_cast<std::uint64_t>(me));
  std::vector<double> x(owners.count(me) * width), y(plan.ghosts() * width);
  for (auto& v : x) v = static_cast<double>(rng.below(64));
  for (auto& v : y) v = static_cast<double>(rng.below(64));
  std::vector<double> fx, ry(x.size());
  plan.fetch(world, x, width, fx);
  plan.reduce(world, y, width, ry);
  const double a =
      mpi::allreduce_sum(world, std::inner_product(fx.begin(), fx.end(), y.begin(), 0.0));
  const double b =
      mpi::allreduce_sum(world, std::inner_product(x.begin(), x.end(), ry.begin(), 0.0));
  EXPECT_EQ(a, b);
  EXPECT_GT(a, 0.0);
}
