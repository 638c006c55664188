// Model, checkpoint and scores files below the CLI (io/model_file, io/checkpoint_file,
// io/scores_file): written by one row layout, read back by another, everything equal bit for
// bit; values chosen so that any conversion (float64 -> float32, a lost sign of zero, a flushed
// subnormal) would show. Cross-file identity (io/provenance) and the run's inputs
// (io/output_file's RunFiles).
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "io/checkpoint_file.hpp"
#include "io/hdf5.hpp"
#include "io/model_file.hpp"
#include "io/output_file.hpp"
#include "io/provenance.hpp"
#include "io/scores_file.hpp"
#include "solver/base/hash.hpp"
#include "solver/base/mpi.hpp"
#include "solver/base/partition.hpp"
#include "tests/test_util.hpp"

using namespace pref;

namespace {

std::string shared_path(const mpi::Comm& comm, const std::string& name) {
  const long pid = mpi::broadcast(comm, static_cast<long>(::getpid()));
  return test::tmp_dir() + "/test_file_round_trips." + std::to_string(pid) + "." +
         std::to_string(comm.size()) + "." + name;
}

// Entry (g, c) of a factor matrix, `salt` telling matrices apart; includes values that survive
// only an exact float64 round trip.
double entry(std::uint64_t g, int c, int salt) {
  switch ((g + c + salt) % 7) {
    case 0:
      return -0.0;
    case 1:
      return std::numeric_limits<double>::denorm_min() * static_cast<double>(g + 1);
    case 2:
      return std::numeric_limits<double>::max() / static_cast<double>(c + 1);
    case 3:
      return 1.0 / 3.0 + static_cast<double>(g);
    default:
      return std::ldexp(static_cast<double>(g * 31 + c * 7 + salt), -40) - 0.5;
  }
}

// This rank's rows of a part (row-major, J columns).
std::vector<double> rows_of(const Partition& part, int me, int J, int salt) {
  std::vector<double> out(part.count(me) * J);
  for (std::uint64_t i = 0; i < part.count(me); ++i)
    for (int c = 0; c < J; ++c) out[i * J + c] = entry(part.begin(me) + i, c, salt);
  return out;
}

// Bitwise equality (so -0.0 != 0.0), with the first difference named.
void expect_bits(const std::vector<double>& got, const std::vector<double>& want,
                 const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t i = 0; i < got.size(); ++i)
    ASSERT_EQ(std::bit_cast<std::uint64_t>(got[i]), std::bit_cast<std::uint64_t>(want[i]))
        << what << " element " << i << ": " << got[i] << " != " << want[i];
}

// The writer's layout: uneven, the last rank (of two or more) empty. The reader's: uniform.
Partition writer_layout(std::uint64_t n, int p) {
  std::vector<GlobalId> b(p + 1, n);
  b[0] = 0;
  for (int r = 1; r < p - 1; ++r) b[r] = n * r / (2 * p);
  if (p > 1) b[p - 1] = n;
  return Partition(b);
}

void remove_on_root(const mpi::Comm& comm, const std::string& path) {
  comm.barrier();
  if (comm.rank() == 0) std::filesystem::remove(path);
}

}  // namespace

TEST(ModelFile, RoundTripIsExact) {
  auto world = mpi::Comm::world();
  const int p = world.size(), me = world.rank();
  const std::uint64_t users = 53, comparisons = 11;
  const int J = 3;
  io::ModelHeader hd;
  hd.users = users;
  hd.comparisons = comparisons;
  hd.rank = J;
  hd.kind = io::ModelKind::kShared;
  hd.attributes["tol"] = 1e-6;
  hd.attributes["max_sweeps"] = std::int64_t{-42};
  hd.attributes["init"] = std::string("svd");
  hd.attributes["empty"] = std::string();
  hd.history_json = "{\"sweep\":0}\n{\"sweep\":1,\"objective\":1.5}\n";
  const std::string path = shared_path(world, "model.h5");
  const Partition wu = writer_layout(users, p), wz = writer_layout(comparisons, p);
  io::write_model(path, world, hd, wu, rows_of(wu, me, J, 1), wz, rows_of(wz, me, J, 2));

  const Partition ru = Partition::uniform(users, p), rz = Partition::uniform(comparisons, p);
  const io::ModelFile m = io::read_model(path, world, ru, rz);
  EXPECT_EQ(m.header.users, users);
  EXPECT_EQ(m.header.comparisons, comparisons);
  EXPECT_EQ(m.header.rank, static_cast<std::uint32_t>(J));
  EXPECT_EQ(m.header.kind, io::ModelKind::kShared);
  expect_bits(m.U, rows_of(ru, me, J, 1), "user factors");
  expect_bits(m.Z, rows_of(rz, me, J, 2), "comparison factors");

  // The attributes and the history, which read_model leaves to their readers (fit, evaluate).
  {
    const h5::Handle f = h5::open_file(path, world);
    const hid_t h = f.get();
    EXPECT_EQ(h5::read_attribute<double>(h, "tol", path), 1e-6);
    EXPECT_EQ(h5::read_attribute<std::int64_t>(h, "max_sweeps", path), -42);
    EXPECT_EQ(h5::read_string_attribute(h, "init", path), "svd");
    EXPECT_EQ(h5::read_string_attribute(h, "empty", path), "");
    const h5::Handle d = h5::open_dataset(h, "history", path);
    const auto shape = h5::shape_of(d.get(), path);
    ASSERT_EQ(shape.dims.size(), 1u);
    ASSERT_EQ(shape.dims[0], 2u);
    const std::size_t width = shape.type_size;
    std::string buf(2 * width, '\0');
    h5::read_rows_raw(d.get(), h5::string_type(width, path).get(), 0, 2, buf.data(), world, path);
    EXPECT_EQ(std::string(buf.c_str(), strnlen(buf.c_str(), width)), "{\"sweep\":0}");
    EXPECT_EQ(buf.substr(width, width), "{\"sweep\":1,\"objective\":1.5}");
  }
  remove_on_root(world, path);
}

TEST(CheckpointFile, RoundTripIsExactWithAndWithoutPreviousFactors) {
  auto world = mpi::Comm::world();
  const int p = world.size(), me = world.rank();
  const std::uint64_t users = 40, comparisons = 9;
  const int J = 2;
  for (bool previous : {false, true}) {
    io::CheckpointHeader hd;
    hd.users = users;
    hd.comparisons = comparisons;
    hd.rank = J;
    hd.sweep = 7;
    hd.user_half_done = previous;
    hd.attributes["mu_user"] = -0.0;
    hd.attributes["tiny"] = std::numeric_limits<double>::denorm_min();
    hd.attributes["seed"] = std::int64_t{-9'000'000'000'000'000'000};
    hd.attributes["data_path"] = std::string("/some/where/data.h5");
    hd.attributes["empty"] = std::string();
    hd.history_json = "{\"sweep\":1}\n\n{\"sweep\":2,\"note\":\"a\\nb\"}\n";
    hd.pending_json = previous ? "{\"sweep\":8}" : "";
    const std::string path = shared_path(world, previous ? "ckpt_prev.h5" : "ckpt.h5");
    const Partition wu = writer_layout(users, p), wz = writer_layout(comparisons, p);
    const std::vector<double> U = rows_of(wu, me, J, 3), Z = rows_of(wz, me, J, 4);
    const std::vector<double> Up = rows_of(wu, me, J, 5), Zp = rows_of(wz, me, J, 6);
    io::CheckpointFactors factors = {{"user_factors", &U}, {"comparison_factors", &Z}};
    if (previous) {
      factors["previous_user_factors"] = &Up;
      factors["previous_comparison_factors"] = &Zp;
    }
    io::write_checkpoint(path, world, hd, wu, wz, factors);

    const Partition ru = Partition::uniform(users, p), rz = Partition::uniform(comparisons, p);
    const io::Checkpoint ck = io::read_checkpoint(path, world, ru, rz);
    EXPECT_EQ(ck.header.users, users);
    EXPECT_EQ(ck.header.comparisons, comparisons);
    EXPECT_EQ(ck.header.rank, static_cast<std::uint32_t>(J));
    EXPECT_EQ(ck.header.sweep, 7);
    EXPECT_EQ(ck.header.user_half_done, previous);
    EXPECT_EQ(ck.header.history_json, hd.history_json);
    EXPECT_EQ(ck.header.pending_json, hd.pending_json);
    ASSERT_EQ(ck.header.attributes.size(), hd.attributes.size());
    for (const auto& [name, v] : hd.attributes) {
      ASSERT_TRUE(ck.header.attributes.count(name)) << name;
      const auto& got = ck.header.attributes.at(name);
      ASSERT_EQ(got.index(), v.index()) << name;
      if (const auto* d = std::get_if<double>(&v))
        EXPECT_EQ(std::bit_cast<std::uint64_t>(std::get<double>(got)),
                  std::bit_cast<std::uint64_t>(*d))
            << name;
      else
        EXPECT_EQ(got, v) << name;
    }
    expect_bits(ck.factors.at("user_factors"), rows_of(ru, me, J, 3), "U");
    expect_bits(ck.factors.at("comparison_factors"), rows_of(rz, me, J, 4), "Z");
    ASSERT_EQ(ck.factors.size(), previous ? 4u : 2u);
    if (previous) {
      expect_bits(ck.factors.at("previous_user_factors"), rows_of(ru, me, J, 5), "U_prev");
      expect_bits(ck.factors.at("previous_comparison_factors"), rows_of(rz, me, J, 6), "Z_prev");
    }
    remove_on_root(world, path);
  }
}

TEST(CheckpointFile, ReadingForOtherDataSaysSo) {
  // The round trip above is not vacuous: a reader whose partitions do not match is told so.
  auto world = mpi::Comm::world();
  const int p = world.size(), me = world.rank();
  io::CheckpointHeader hd;
  hd.users = 12;
  hd.comparisons = 5;
  hd.rank = 1;
  const Partition u = Partition::uniform(12, p), z = Partition::uniform(5, p);
  const std::string path = shared_path(world, "ckpt_other.h5");
  const std::vector<double> U = rows_of(u, me, 1, 0), Z = rows_of(z, me, 1, 0);
  io::write_checkpoint(path, world, hd, u, z, {{"user_factors", &U}, {"comparison_factors", &Z}});
  // (the resume refuses it, naming both shapes: solver/cli/checkpoint.cpp)
  const io::Checkpoint other = io::read_checkpoint(path, world, Partition::uniform(13, p), z);
  EXPECT_FALSE(other.shape_matches);
  EXPECT_TRUE(other.factors.empty());
  EXPECT_TRUE(io::read_checkpoint(path, world, u, z).shape_matches);
  remove_on_root(world, path);
}

// The scores file (io/scores_file): written by every rank's rows, read back the same.
TEST(ScoresFile, RoundTripOfScoresAndBest) {
  const mpi::Comm world = mpi::Comm::world();
  const int me = world.rank();
  constexpr std::uint64_t kUsers = 11, kResponses = 6, kPrompts = 3;
  const Partition users = Partition::uniform(kUsers, world.size());
  for (const bool best : {false, true}) {
    const std::string path = shared_path(world, best ? "best.h5" : "scores.h5");
    io::ScoresHeader hd;
    hd.users = kUsers;
    hd.first_user = 4;
    hd.responses = kResponses;
    hd.prompts = kPrompts;
    hd.rank = 2;
    hd.items = "embeddings";
    hd.model = "m.h5";
    hd.responses_file = "r.h5";
    hd.source = "fitted";
    hd.best = best;
    const std::uint64_t cols = best ? kPrompts : kResponses;
    std::vector<float> s(users.count(me) * cols);
    std::vector<std::uint32_t> b(users.count(me) * cols);
    for (std::size_t k = 0; k < s.size(); ++k) {
      s[k] = static_cast<float>(users.begin(me) * cols + k) * 0.25f - 3.0f;
      b[k] = static_cast<std::uint32_t>((users.begin(me) * cols + k) % kResponses);
    }
    {
      io::ScoresWriter w(path, world, hd);
      if (best)
        w.write_best(users.begin(me), users.count(me), b, s);
      else
        w.write_scores(users.begin(me), users.count(me), s);
      w.close();
    }
    const io::ScoresFile f = io::open_scores(path, world);
    EXPECT_EQ(f.header.users, kUsers);
    EXPECT_EQ(f.header.first_user, 4u);
    EXPECT_EQ(f.header.items, "embeddings");
    EXPECT_EQ(f.header.best, best);
    // Read back in another layout: every rank all rows.
    std::vector<float> all_s;
    std::vector<std::uint32_t> all_b;
    if (best)
      io::read_best(f, 0, kUsers, all_b, all_s, world);
    else
      all_s = io::read_scores(f, 0, kUsers, world);
    for (std::uint64_t k = 0; k < kUsers * cols; ++k) {
      EXPECT_EQ(all_s[k], static_cast<float>(k) * 0.25f - 3.0f) << k;
      if (best) {
        EXPECT_EQ(all_b[k], k % kResponses) << k;
      }
    }
    world.barrier();
    if (me == 0) std::filesystem::remove(path);
  }
}

// The checksum of factors does not depend on how the rows are spread over the ranks, and is the
// hash of all rows computed by one process.
TEST(Provenance, FactorChecksumIsTheSameAtAnyLayout) {
  const mpi::Comm world = mpi::Comm::world();
  const int J = 3;
  const Partition rows = Partition::uniform(37, world.size());
  const std::vector<double> mine = rows_of(rows, world.rank(), J, 5);
  const Partition one = Partition::uniform(37, 1);
  const std::vector<double> all = rows_of(one, 0, J, 5);
  const std::uint64_t distributed = io::factor_checksum(world, rows, mine, J);
  EXPECT_EQ(distributed, hash::rows(0, all, J));
  std::vector<double> changed = all;
  changed[17] = std::nextafter(changed[17], 2.0);
  EXPECT_NE(hash::rows(0, changed, J), distributed);
}

TEST(Provenance, DerivedFileOfAnotherModelIsRefusedNamingBoth) {
  io::Provenance p{"m1.h5", "00000000000000aa", "d.h5", "00000000000000bb"};
  bool unchecked = true;
  EXPECT_NO_THROW(io::require_same_model("a.h5", "--adapted", p, "m1.h5", "--model",
                                         "00000000000000aa", &unchecked));
  EXPECT_FALSE(unchecked);
  try {
    io::require_same_model("a.h5", "--adapted", p, "m2.h5", "--model", "00000000000000cc");
    ADD_FAILURE() << "accepted another model";
  } catch (const InputError& e) {
    const std::string m = e.what();
    for (const char* n :
         {"a.h5", "m1.h5", "m2.h5", "00000000000000aa", "00000000000000cc", "--adapted", "--model"})
      EXPECT_NE(m.find(n), std::string::npos) << n << " not in: " << m;
  }
  // A file written before checksums were recorded: not checked, and said so.
  p.model_checksum.clear();
  EXPECT_NO_THROW(io::require_same_model("a.h5", "--adapted", p, "m2.h5", "--model",
                                         "00000000000000cc", &unchecked));
  EXPECT_TRUE(unchecked);
}

// With a RunFiles in scope, an input of the run is never an output, by any name.
TEST(RunFiles, AnInputIsNeverReplaced) {
  const mpi::Comm world = mpi::Comm::world();
  const std::string input = shared_path(world, "input.txt");
  const std::string link = shared_path(world, "link.txt");
  if (world.rank() == 0) {
    test::write_text(input, "data");
    std::filesystem::remove(link);
    std::filesystem::create_symlink(input, link);
  }
  world.barrier();
  {
    io::RunFiles run;
    io::note_input(input, "--data");
    EXPECT_THROW(io::AtomicOutput(link, /*overwrite=*/true, world), InputError);
    EXPECT_THROW(io::AtomicOutput(input, /*overwrite=*/true, world), InputError);
    const std::string out = shared_path(world, "out.txt");
    io::AtomicOutput o(out, /*overwrite=*/true, world);
    // An output reserved by the run is not an input either (a symbolic link to it neither),
    // once it exists.
    if (world.rank() == 0) test::write_text(out, "old");
    world.barrier();
    EXPECT_THROW(io::note_input(out, "--model"), InputError);
  }
  // Without a RunFiles (library use) nothing is noted.
  io::note_input(input, "--data");
  EXPECT_NO_THROW(io::AtomicOutput(input, /*overwrite=*/true, world));
  EXPECT_EQ(test::read_bytes(input), "data");
  world.barrier();
  if (world.rank() == 0) {
    std::filesystem::remove(input);
    std::filesystem::remove(link);
    std::filesystem::remove(shared_path(world, "out.txt"));
  }
}
