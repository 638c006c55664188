// Model and checkpoint files below the CLI (io/model_file, io/checkpoint_file): written by one
// row layout, read back by another, everything equal bit for bit; values chosen so that any
// conversion (float64 -> float32, a lost sign of zero, a flushed subnormal) would show.
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
  hd.kind = "shared";
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
  EXPECT_EQ(m.header.kind, "shared");
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
