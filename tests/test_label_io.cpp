// Label files end to end: write (LabelFileWriter + AtomicOutput), open, read, balanced
// partitions, distribute, label statistics, under 1, 2 and 4 ranks, against serial references
// computed here from the same (deterministic) labels.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <numeric>
#include <random>

#include "io/label_file.hpp"
#include "io/output_file.hpp"
#include "solver/base/mpi.hpp"
#include "solver/base/partition.hpp"
#include "solver/eval/label_stats.hpp"
#include "solver/layout/distribute.hpp"
#include "tests/test_util.hpp"

using namespace pref;

namespace {

struct Label {
  std::uint32_t user, comparison;
  float value;
};

constexpr std::uint64_t kUsers = 38;        // even: the median of per-user counts is a mean
constexpr std::uint64_t kComparisons = 29;  // odd

// A skewed random label set, the same on every rank (fixed seed): users with id % 6 == 5 and
// comparisons with id % 7 == 6 have no labels; user 0 answers every other comparison, users
// 1, 5, 9, ... many, the rest few; low comparison ids are popular. Values mix 0, 1, ties 0.5,
// multiples of 1/200 and arbitrary floats (when !quantized). Rows in random order.
std::vector<Label> make_labels(std::uint32_t seed, bool quantized) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> unif(0.0, 1.0);
  std::vector<Label> out;
  for (std::uint32_t u = 0; u < kUsers; ++u) {
    if (u % 6 == 5) continue;
    const double activity = u == 0 ? 10.0 : (u % 4 == 1 ? 0.6 : 0.12);
    for (std::uint32_t c = 0; c < kComparisons; ++c) {
      if (c % 7 == 6) continue;
      if (unif(gen) >= activity * 3.0 / (1.0 + 0.3 * c)) continue;
      float v;
      const double kind = unif(gen);
      if (kind < 0.3)
        v = 0.0f;
      else if (kind < 0.6)
        v = 1.0f;
      else if (kind < 0.75)
        v = 0.5f;
      else if (kind < 0.9 || quantized)
        v = static_cast<float>(static_cast<double>(gen() % 201) / 200.0);
      else
        v = static_cast<float>(0.001 + 0.998 * unif(gen));  // almost never a multiple of 1/200
      out.push_back({u, c, v});
    }
  }
  std::shuffle(out.begin(), out.end(), gen);
  return out;
}

// A path shared by every rank (named after rank 0's pid).
std::string shared_path(const mpi::Comm& comm, const std::string& name) {
  const long pid = mpi::broadcast(comm, static_cast<long>(::getpid()));
  return test::tmp_dir() + "/test_label_io." + std::to_string(pid) + "." +
         std::to_string(comm.size()) + "." + name;
}

void remove_shared(const mpi::Comm& comm, const std::string& path) {
  comm.barrier();
  if (comm.rank() == 0) std::filesystem::remove(path);
}

// Writes labels as a file: rank r writes rows [bounds[r], bounds[r+1]) (bounds: any split).
void write_file(const mpi::Comm& comm, const std::string& path, const std::vector<Label>& labels,
                bool quantized, const std::vector<std::uint64_t>& bounds) {
  io::AtomicOutput out(path, /*overwrite=*/true, comm);
  io::LabelFileWriter w(out.temp_path(), comm, kUsers, kComparisons);
  w.create(io::Split::kTrain, labels.size(), quantized);
  LabelColumns mine;
  const std::uint64_t lo = bounds[comm.rank()], hi = bounds[comm.rank() + 1];
  for (std::uint64_t i = lo; i < hi; ++i)
    mine.push_back(labels[i].user, labels[i].comparison, labels[i].value);
  w.write(io::Split::kTrain, lo, mine);
  w.close();
  out.commit();
}

// Rank 0 writes everything, the other ranks take part with empty ranges.
std::vector<std::uint64_t> all_on_rank0(const mpi::Comm& comm, std::uint64_t n) {
  std::vector<std::uint64_t> b(comm.size() + 1, n);
  b[0] = 0;
  return b;
}

// Serial reference of Partition::balanced: boundary k is the smallest j with
// w_0 + ... + w_{j-1} >= ceil(k * total / p).
std::vector<GlobalId> serial_bounds(const std::vector<std::uint64_t>& w, int p) {
  const std::uint64_t total = std::accumulate(w.begin(), w.end(), std::uint64_t{0});
  std::vector<GlobalId> b(p + 1, w.size());
  b[0] = 0;
  if (total == 0) return Partition::uniform(w.size(), p).bounds();
  for (int k = 1; k < p; ++k) {
    const std::uint64_t target = (total * k + p - 1) / p;
    std::uint64_t sum = 0;
    GlobalId j = 0;
    while (sum < target) sum += w[j++];
    b[k] = j;
  }
  return b;
}

// Every range's weight is at most total/p + the largest single weight.
void expect_balanced(const Partition& part, const std::vector<std::uint64_t>& w, int p,
                     const char* what) {
  const std::uint64_t total = std::accumulate(w.begin(), w.end(), std::uint64_t{0});
  const std::uint64_t max_w = *std::max_element(w.begin(), w.end());
  ASSERT_EQ(part.parts(), p);
  ASSERT_EQ(part.size(), w.size());
  for (int r = 0; r < p; ++r) {
    std::uint64_t s = 0;
    for (GlobalId g = part.begin(r); g < part.end(r); ++g) s += w[g];
    EXPECT_LE(s, total / p + max_w) << what << " range " << r;
  }
}

using Row = std::vector<std::pair<std::uint32_t, float>>;

// Rows of the reference matrix by user and by comparison, each sorted by partner; duplicates
// averaged (sum in double, then divided by the count).
struct Reference {
  std::vector<Row> by_user, by_comparison;
  std::uint64_t labels = 0, ties = 0;
};

Reference make_reference(const std::vector<Label>& labels) {
  std::map<std::pair<std::uint32_t, std::uint32_t>, std::pair<double, int>> cells;
  for (const Label& l : labels) {
    auto& c = cells[{l.user, l.comparison}];
    c.first += l.value;
    ++c.second;
  }
  Reference ref;
  ref.by_user.resize(kUsers);
  ref.by_comparison.resize(kComparisons);
  for (const auto& [key, sum] : cells) {
    const float v = static_cast<float>(sum.first / sum.second);
    ref.by_user[key.first].push_back({key.second, v});
    ref.by_comparison[key.second].push_back({key.first, v});
    ++ref.labels;
    ref.ties += v == 0.5f;
  }
  for (auto& r : ref.by_comparison) std::sort(r.begin(), r.end());
  return ref;
}

Row csr_row(const Csr& csr, std::size_t r) {
  Row out;
  for (std::uint64_t k = csr.ptr[r]; k < csr.ptr[r + 1]; ++k)
    out.push_back({csr.col[k], csr.val[k]});
  return out;
}

// This rank's rows of both orientations against the reference.
void expect_matches(const mpi::Comm& comm, const LabelMatrix& m, const Reference& ref) {
  const int me = comm.rank();
  ASSERT_EQ(m.by_user.rows(), m.parts.users.count(me));
  ASSERT_EQ(m.by_comparison.rows(), m.parts.comparisons.count(me));
  for (std::size_t r = 0; r < m.by_user.rows(); ++r) {
    const GlobalId u = m.parts.users.begin(me) + r;
    EXPECT_EQ(csr_row(m.by_user, r), ref.by_user[u]) << "user " << u << " on rank " << me;
  }
  for (std::size_t r = 0; r < m.by_comparison.rows(); ++r) {
    const GlobalId c = m.parts.comparisons.begin(me) + r;
    EXPECT_EQ(csr_row(m.by_comparison, r), ref.by_comparison[c])
        << "comparison " << c << " on rank " << me;
  }
  EXPECT_EQ(m.labels, ref.labels);
  EXPECT_EQ(mpi::allreduce_sum(comm, static_cast<std::uint64_t>(m.by_user.nnz())), ref.labels);
  EXPECT_EQ(mpi::allreduce_sum(comm, static_cast<std::uint64_t>(m.by_comparison.nnz())),
            ref.labels);
}

CountSummary serial_summary(std::vector<std::uint64_t> c) {
  CountSummary s;
  std::sort(c.begin(), c.end());
  const std::size_t n = c.size();
  s.min = c.front();
  s.max = c.back();
  s.median = n % 2 ? static_cast<double>(c[n / 2])
                   : (static_cast<double>(c[n / 2 - 1]) + static_cast<double>(c[n / 2])) / 2;
  s.mean = static_cast<double>(std::accumulate(c.begin(), c.end(), std::uint64_t{0})) /
           static_cast<double>(n);
  return s;
}

void expect_summary(const CountSummary& got, const CountSummary& want, const char* what) {
  EXPECT_EQ(got.min, want.min) << what;
  EXPECT_EQ(got.max, want.max) << what;
  EXPECT_EQ(got.median, want.median) << what;
  EXPECT_NEAR(got.mean, want.mean, 1e-12 * std::max(1.0, want.mean)) << what;
}

std::vector<std::uint64_t> counts_of(const std::vector<Row>& rows) {
  std::vector<std::uint64_t> c;
  for (auto& r : rows) c.push_back(r.size());
  return c;
}

}  // namespace

TEST(LabelIo, WriteReadPartitionDistribute) {
  auto world = mpi::Comm::world();
  const int p = world.size(), me = world.rank();
  const std::vector<Label> labels = make_labels(12345, /*quantized=*/false);
  const std::uint64_t n = labels.size();
  ASSERT_GT(n, 150u);
  // The set has what it is meant to have: unlabelled users and comparisons, ties, values that
  // the one-byte encoding cannot hold.
  const Reference ref = make_reference(labels);
  ASSERT_EQ(ref.labels, n) << "the generator made a duplicate";
  EXPECT_GT(ref.ties, 0u);
  EXPECT_TRUE(std::any_of(labels.begin(), labels.end(),
                          [](const Label& l) { return !io::is_quantizable(l.value); }));
  const auto per_user = counts_of(ref.by_user), per_comparison = counts_of(ref.by_comparison);
  EXPECT_EQ(*std::min_element(per_user.begin(), per_user.end()), 0u);
  EXPECT_EQ(*std::min_element(per_comparison.begin(), per_comparison.end()), 0u);

  const std::string path = shared_path(world, "basic.h5");
  write_file(world, path, labels, /*quantized=*/false, all_on_rank0(world, n));
  EXPECT_TRUE(std::filesystem::exists(path));

  const io::LabelFile f = io::LabelFile::open(path, world);
  EXPECT_EQ(f.users(), kUsers);
  EXPECT_EQ(f.comparisons(), kComparisons);
  EXPECT_EQ(f.labels(io::Split::kTrain), n);
  EXPECT_FALSE(f.has(io::Split::kValidation));

  // read: this rank's even share of rows, in file order, values exact.
  const LabelColumns cols = f.read(io::Split::kTrain, world);
  const Partition rows = Partition::uniform(n, p);
  ASSERT_EQ(cols.first_row, rows.begin(me));
  ASSERT_EQ(cols.size(), rows.count(me));
  for (std::size_t i = 0; i < cols.size(); ++i) {
    const Label& l = labels[cols.first_row + i];
    ASSERT_EQ(cols.user[i], l.user) << "row " << cols.first_row + i;
    ASSERT_EQ(cols.comparison[i], l.comparison) << "row " << cols.first_row + i;
    ASSERT_EQ(cols.value[i], l.value) << "row " << cols.first_row + i;
  }

  // balanced partitions: the serial boundaries, and balanced.
  const Partitions parts = balanced_partitions(world, cols, kUsers, kComparisons);
  const auto wu = counts_of(ref.by_user), wc = counts_of(ref.by_comparison);
  EXPECT_EQ(parts.users.bounds(), serial_bounds(wu, p));
  EXPECT_EQ(parts.comparisons.bounds(), serial_bounds(wc, p));
  expect_balanced(parts.users, wu, p, "users");
  expect_balanced(parts.comparisons, wc, p, "comparisons");

  // distribute: both orientations hold exactly the reference rows.
  const LabelMatrix m =
      distribute(world, cols, parts, kUsers, kComparisons, Duplicates::kError, path);
  expect_matches(world, m, ref);

  // statistics.
  const SplitStats st = split_stats(world, m);
  EXPECT_EQ(st.labels, n);
  EXPECT_EQ(st.ties, ref.ties);
  expect_summary(st.per_user, serial_summary(wu), "per user");
  expect_summary(st.per_comparison, serial_summary(wc), "per comparison");
  remove_shared(world, path);
}

TEST(LabelIo, QuantizedValuesWrittenByEveryRank) {
  auto world = mpi::Comm::world();
  const int p = world.size();
  const std::vector<Label> labels = make_labels(777, /*quantized=*/true);
  const std::uint64_t n = labels.size();
  for (const Label& l : labels) ASSERT_TRUE(io::is_quantizable(l.value)) << l.value;
  EXPECT_FALSE(io::is_quantizable(0.3137f));
  EXPECT_FALSE(io::is_quantizable(1.5f));
  EXPECT_FALSE(io::is_quantizable(-0.005f));
  // Uneven ranges: rank r writes a share growing with r (rank 0 possibly none).
  std::vector<std::uint64_t> bounds(p + 1, 0);
  for (int r = 1; r <= p; ++r) bounds[r] = n * r * r / (p * p);
  const std::string path = shared_path(world, "quantized.h5");
  write_file(world, path, labels, /*quantized=*/true, bounds);

  // The value column is one byte with a denominator, as the format says.
  if (world.rank() == 0) {
    test::H5Id h = test::h5_open(path);
    test::H5Id d(H5Dopen2(h, "/labels/value", H5P_DEFAULT), H5Dclose);
    test::H5Id t(H5Dget_type(d), H5Tclose);
    EXPECT_EQ(H5Tget_class(t), H5T_INTEGER);
    EXPECT_EQ(H5Tget_size(t), 1u);
    const auto raw = test::h5_read<std::uint32_t>(h, "/labels/value");
    ASSERT_EQ(raw.size(), n);
    for (std::uint64_t i = 0; i < n; ++i)
      EXPECT_EQ(static_cast<float>(raw[i] / 200.0), labels[i].value) << "row " << i;
  }
  world.barrier();

  const io::LabelFile f = io::LabelFile::open(path, world);
  const LabelColumns cols = f.read(io::Split::kTrain, world);
  for (std::size_t i = 0; i < cols.size(); ++i) {
    ASSERT_EQ(cols.user[i], labels[cols.first_row + i].user);
    ASSERT_EQ(cols.comparison[i], labels[cols.first_row + i].comparison);
    ASSERT_EQ(cols.value[i], labels[cols.first_row + i].value) << "row " << cols.first_row + i;
  }
  const Partitions parts = balanced_partitions(world, cols, kUsers, kComparisons);
  const LabelMatrix m =
      distribute(world, cols, parts, kUsers, kComparisons, Duplicates::kError, path);
  expect_matches(world, m, make_reference(labels));
  remove_shared(world, path);
}

TEST(LabelIo, DuplicatesAreAnErrorOrAveraged) {
  auto world = mpi::Comm::world();
  std::vector<Label> labels = make_labels(4242, /*quantized=*/false);
  // Repeat some pairs once or twice with other values (all >= 0.001 or 0, so that a sum of
  // three of them in double is exact whatever the order, and the mean is one rounding).
  std::mt19937 gen(99);
  const std::size_t base = labels.size();
  for (std::size_t k = 0; k < base; k += 7) {
    const int copies = 1 + static_cast<int>(gen() % 2);
    for (int j = 0; j < copies; ++j)
      labels.push_back({labels[k].user, labels[k].comparison,
                        static_cast<float>(0.001 + 0.998 * (gen() % 100000) / 100000.0)});
  }
  std::shuffle(labels.begin(), labels.end(), gen);
  const Reference ref = make_reference(labels);
  ASSERT_LT(ref.labels, labels.size());

  // The pair an error must name: the smallest (user, comparison) with duplicates, and its first
  // two rows.
  std::map<std::pair<std::uint32_t, std::uint32_t>, std::vector<std::uint64_t>> rows_of;
  for (std::uint64_t i = 0; i < labels.size(); ++i)
    rows_of[{labels[i].user, labels[i].comparison}].push_back(i);
  std::string want;
  for (const auto& [key, rows] : rows_of)
    if (rows.size() > 1) {
      want = "user " + std::to_string(key.first) + ", comparison " + std::to_string(key.second) +
             " (rows " + std::to_string(rows[0]) + " and " + std::to_string(rows[1]) + ")";
      break;
    }

  const std::string path = shared_path(world, "duplicates.h5");
  write_file(world, path, labels, false, all_on_rank0(world, labels.size()));
  const io::LabelFile f = io::LabelFile::open(path, world);
  const LabelColumns cols = f.read(io::Split::kTrain, world);
  const Partitions parts = balanced_partitions(world, cols, kUsers, kComparisons);
  try {
    distribute(world, cols, parts, kUsers, kComparisons, Duplicates::kError, "dup.h5: /labels");
    ADD_FAILURE() << "duplicates were accepted";
  } catch (const InputError& e) {
    EXPECT_TRUE(e.collective());
    const std::string msg = e.what();
    EXPECT_TRUE(test::contains(msg, "dup.h5: /labels")) << msg;
    EXPECT_TRUE(test::contains(msg, want)) << msg << "\nexpected: " << want;
  }
  const LabelMatrix m =
      distribute(world, cols, parts, kUsers, kComparisons, Duplicates::kMean, path);
  expect_matches(world, m, ref);
  const SplitStats st = split_stats(world, m);
  EXPECT_EQ(st.labels, ref.labels);
  EXPECT_EQ(st.ties, ref.ties);
  expect_summary(st.per_user, serial_summary(counts_of(ref.by_user)), "per user");
  remove_shared(world, path);
}

// distribute and balanced_partitions on label sets of other shapes than make_labels' (given as
// columns, no file): many labels per id in file order, in reverse and shuffled (the exchange
// places a row's labels by source rank and sorts only rows out of order), and ids far more
// numerous than labels (per-id counts sent id by id, owners found by search, labels placed
// without the per-source slots). Against a serial reference computed here.
TEST(LabelIo, DistributeLabelSetsOfEveryShape) {
  auto world = mpi::Comm::world();
  const int p = world.size(), me = world.rank();
  struct Shape {
    const char* name;
    std::uint32_t users, comparisons, per_user;
    int order;  // 0: by (user, comparison), 1: reversed, 2: shuffled
  };
  const Shape shapes[] = {{"dense, file order", 300, 50, 40, 0},
                          {"dense, reversed", 300, 50, 40, 1},
                          {"dense, shuffled", 300, 50, 40, 2},
                          {"sparse users, shuffled", 400000, 3000, 0, 2},
                          {"sparse users, file order", 400000, 3000, 0, 0}};
  for (const Shape& sh : shapes) {
    SCOPED_TRACE(sh.name);
    std::mt19937 gen(7);
    std::vector<Label> labels;
    if (sh.per_user) {
      for (std::uint32_t u = 0; u < sh.users; ++u)
        for (std::uint32_t c = 0; c < sh.comparisons; ++c)
          if (gen() % sh.comparisons < sh.per_user * (u % 3 == 0 ? 1 : 0.3))
            labels.push_back({u, c, static_cast<float>(gen() % 3) / 2});
    } else {
      // About one label per comparison, each from a different user spread over many ids.
      for (std::uint32_t c = 0; c < sh.comparisons; ++c)
        labels.push_back(
            {static_cast<std::uint32_t>(gen() % sh.users), c, static_cast<float>(gen() % 2)});
      std::sort(labels.begin(), labels.end(), [](const Label& a, const Label& b) {
        return a.user != b.user ? a.user < b.user : a.comparison < b.comparison;
      });
      labels.erase(std::unique(labels.begin(), labels.end(),
                               [](const Label& a, const Label& b) {
                                 return a.user == b.user && a.comparison == b.comparison;
                               }),
                   labels.end());
    }
    if (sh.order == 1) std::reverse(labels.begin(), labels.end());
    if (sh.order == 2) std::shuffle(labels.begin(), labels.end(), gen);
    std::vector<std::map<std::uint32_t, float>> by_user(sh.users), by_comparison(sh.comparisons);
    for (const Label& l : labels) {
      by_user[l.user][l.comparison] = l.value;
      by_comparison[l.comparison][l.user] = l.value;
    }
    const Partition rows = Partition::uniform(labels.size(), p);
    LabelColumns mine;
    mine.first_row = rows.begin(me);
    for (std::uint64_t i = rows.begin(me); i < rows.end(me); ++i)
      mine.push_back(labels[i].user, labels[i].comparison, labels[i].value);
    const Partitions parts = balanced_partitions(world, mine, sh.users, sh.comparisons);
    std::vector<std::uint64_t> wu(sh.users), wc(sh.comparisons);
    for (std::uint32_t u = 0; u < sh.users; ++u) wu[u] = by_user[u].size();
    for (std::uint32_t c = 0; c < sh.comparisons; ++c) wc[c] = by_comparison[c].size();
    EXPECT_EQ(parts.users.bounds(), serial_bounds(wu, p));
    EXPECT_EQ(parts.comparisons.bounds(), serial_bounds(wc, p));
    const LabelMatrix m = distribute(world, std::move(mine), parts, sh.users, sh.comparisons,
                                     Duplicates::kError, "shape");
    EXPECT_EQ(m.labels, labels.size());
    auto expect_rows = [&](const Csr& csr, const Partition& part,
                           const std::vector<std::map<std::uint32_t, float>>& ref) {
      ASSERT_EQ(csr.rows(), part.count(me));
      for (std::size_t r = 0; r < csr.rows(); ++r) {
        const auto& want = ref[part.begin(me) + r];
        const Row got = csr_row(csr, r);
        ASSERT_EQ(got, Row(want.begin(), want.end())) << "row " << part.begin(me) + r;
      }
    };
    expect_rows(m.by_user, parts.users, by_user);
    expect_rows(m.by_comparison, parts.comparisons, by_comparison);
  }
}

TEST(LabelIo, BadRowIsReportedByEveryRankWithTheSmallestRow) {
  auto world = mpi::Comm::world();
  std::vector<Label> labels = make_labels(5, false);
  const std::uint64_t n = labels.size();
  labels[n - 3].user = kUsers + 4;  // on the last rank
  labels[n / 2].comparison = kComparisons;
  labels[n / 2 + 1].value = 1.25f;
  const std::string path = shared_path(world, "badrow.h5");
  write_file(world, path, labels, false, all_on_rank0(world, n));
  const io::LabelFile f = io::LabelFile::open(path, world);
  try {
    f.read(io::Split::kTrain, world);
    ADD_FAILURE() << "bad rows were accepted";
  } catch (const InputError& e) {
    EXPECT_TRUE(e.collective());
    const std::string msg = e.what();
    EXPECT_TRUE(test::contains(msg, path + ": /labels/comparison: row " + std::to_string(n / 2)))
        << msg;
    EXPECT_EQ(e.order(), n / 2);
  }
  remove_shared(world, path);
}

TEST(LabelStats, SummaryOfLargeCountsMatchesSerial) {
  // Counts up to ~10^6 so that the two-level histogram has wide buckets; several sizes (odd,
  // even, fewer counts than ranks).
  auto world = mpi::Comm::world();
  for (std::uint64_t n : {1ull, 3ull, 1000ull, 1001ull}) {
    std::vector<std::uint64_t> all(n);
    for (std::uint64_t i = 0; i < n; ++i)
      all[i] = (i * 7919 + 13) % 1000003 + (i % 97 == 0 ? 5000000 : 0);
    const Partition part = Partition::uniform(n, world.size());
    std::vector<std::uint64_t> mine(all.begin() + part.begin(world.rank()),
                                    all.begin() + part.end(world.rank()));
    expect_summary(summarize_counts(world, mine), serial_summary(all),
                   ("n=" + std::to_string(n)).c_str());
  }
}

TEST(LabelIo, ResponseStructureWithFloat16Embedding) {
  // A version-2 file as h5py would write it (float16 embedding, int64 ids), read by every rank:
  // the tables whole, the embedding by any rows, as the float values stored.
  auto world = mpi::Comm::world();
  const std::string path = shared_path(world, "responses_f16.h5");
  constexpr std::uint64_t kR = 9, kD = 3, kM = 6;
  std::vector<float> emb(kR * kD);
  for (std::uint64_t i = 0; i < emb.size(); ++i)
    emb[i] = 0.125f * static_cast<float>(i) - 1.0f + (i == 5 ? 0.0001f : 0.0f);  // one inexact
  if (world.rank() == 0) {
    test::H5Id f = test::h5_create(path);
    test::h5_write_string_attr(f, "/", "format", "pref-labels");
    test::h5_write_attr<std::int64_t>(f, "/", "format_version", 2);
    test::h5_write_attr<std::int64_t>(f, "/", "users", 2);
    test::h5_write_attr<std::int64_t>(f, "/", "comparisons", kM);
    test::h5_write(f, "/labels/user", std::vector<std::int64_t>{0, 1, 1});
    test::h5_write(f, "/labels/comparison", std::vector<std::int64_t>{0, 2, 5});
    test::h5_write(f, "/labels/value", std::vector<float>{1, 0, 0.5});
    test::h5_write(f, "/responses/prompt", std::vector<std::int64_t>{0, 0, 0, 1, 1, 1, 2, 2, 2});
    test::h5_write_attr<std::int64_t>(f, "/responses", "responses", kR);
    test::h5_write_attr<std::int64_t>(f, "/responses", "prompts", 3);
    test::h5_write(f, "/comparisons/first", std::vector<std::int64_t>{0, 1, 3, 5, 6, 8});
    test::h5_write(f, "/comparisons/second", std::vector<std::int64_t>{1, 2, 4, 3, 7, 6});
    test::H5Id f16 = test::h5_float16_type();
    test::h5_write_matrix(f, "/responses/embedding", emb, kR, f16);
  }
  world.barrier();
  {
    const io::LabelFile f = io::LabelFile::open(path, world);
    EXPECT_EQ(f.version(), 2u);
    ASSERT_TRUE(f.has_responses());
    const io::ResponseTable& t = f.responses();
    EXPECT_EQ(t.responses, kR);
    EXPECT_EQ(t.prompts, 3u);
    EXPECT_EQ(t.embedding_dim, kD);
    EXPECT_EQ(t.prompt, (std::vector<std::uint32_t>{0, 0, 0, 1, 1, 1, 2, 2, 2}));
    EXPECT_EQ(t.first, (std::vector<std::uint32_t>{0, 1, 3, 5, 6, 8}));
    EXPECT_EQ(t.second, (std::vector<std::uint32_t>{1, 2, 4, 3, 7, 6}));
    // Rank k reads rows k .. k+1 (overlapping reads are allowed).
    const std::uint64_t r0 = static_cast<std::uint64_t>(world.rank()) % (kR - 1);
    const std::vector<float> got = f.read_embedding(r0, 2, world);
    ASSERT_EQ(got.size(), 2 * kD);
    for (std::uint64_t i = 0; i < 2 * kD; ++i) {
      const std::uint64_t k = r0 * kD + i;
      // Multiples of 1/8 in [-1, 2.25] are exact in float16; 0.0001 more is rounded away.
      EXPECT_EQ(got[i], 0.125f * static_cast<float>(k) - 1.0f) << "value " << k;
    }
    f.check_embedding(world);
    LabelColumns c = f.read(io::Split::kTrain, world);
    EXPECT_EQ(mpi::allreduce_sum(world, static_cast<std::uint64_t>(c.size())), 3u);
  }
  remove_shared(world, path);
}

TEST(LabelIo, WriterWritesVersionOneUnlessResponses) {
  auto world = mpi::Comm::world();
  for (bool responses : {false, true}) {
    const std::string path = shared_path(world, responses ? "w_v2.h5" : "w_v1.h5");
    {
      io::LabelFileWriter w(path, world, 4, 3, responses);
      w.create(io::Split::kTrain, 2, true);
      LabelColumns cols;
      if (world.rank() == 0) {
        cols.push_back(0, 1, 1.0f);
        cols.push_back(3, 2, 0.5f);
      }
      w.write(io::Split::kTrain, 0, cols);
      if (responses) {
        w.create_responses(4, 2, 0);
        const bool r0 = world.rank() == 0;
        std::vector<std::uint32_t> prompt =
            r0 ? std::vector<std::uint32_t>{0, 0, 1, 1} : std::vector<std::uint32_t>{};
        w.write_responses(0, prompt, {});
        std::vector<std::uint32_t> a =
            r0 ? std::vector<std::uint32_t>{0, 2, 3} : std::vector<std::uint32_t>{};
        std::vector<std::uint32_t> b =
            r0 ? std::vector<std::uint32_t>{1, 3, 2} : std::vector<std::uint32_t>{};
        w.write_pairs(0, a, b);
      }
      w.close();
    }
    const io::LabelFile f = io::LabelFile::open(path, world);
    EXPECT_EQ(f.version(), responses ? 2u : 1u);
    EXPECT_EQ(f.has_responses(), responses);
    if (responses) {
      EXPECT_EQ(f.responses().first, (std::vector<std::uint32_t>{0, 2, 3}));
      EXPECT_EQ(f.responses().second, (std::vector<std::uint32_t>{1, 3, 2}));
      EXPECT_EQ(f.responses().embedding_dim, 0u);
    }
    remove_shared(world, path);
  }
}
