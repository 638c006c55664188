#pragma once
// Counter-based randomness (Philox4x32-10, Salmon et al. 2011): every random draw is a pure
// function of (seed, stream, index, draw), so any rank can produce the numbers of any user or
// comparison without communication, and results do not depend on the rank count.
#include <array>
#include <cmath>
#include <cstdint>

namespace pref {

__extension__ typedef unsigned __int128 uint128;  // GCC/Clang extension, used for exact products

using Philox4x32 = std::array<std::uint32_t, 4>;

constexpr Philox4x32 philox4x32_10(Philox4x32 ctr, std::array<std::uint32_t, 2> key) {
  constexpr std::uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr std::uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t p0 = static_cast<std::uint64_t>(kM0) * ctr[0];
    const std::uint64_t p1 = static_cast<std::uint64_t>(kM1) * ctr[2];
    ctr = {static_cast<std::uint32_t>(p1 >> 32) ^ ctr[1] ^ key[0], static_cast<std::uint32_t>(p1),
           static_cast<std::uint32_t>(p0 >> 32) ^ ctr[3] ^ key[1], static_cast<std::uint32_t>(p0)};
    key[0] += kW0;
    key[1] += kW1;
  }
  return ctr;
}

// Streams keep the draws of different purposes independent.
enum class Stream : std::uint32_t {
  kComparisonFactor = 1,
  kUserWeights = 2,
  kUserAnswers = 3,
  kLabel = 4,
  kSplit = 5,
  kNewUserWeights = 6,
  kNewUserAnswers = 7,
  kNewUserLabel = 8,
  kInit = 9,
  kSketch = 10,
  kResponseAttributes = 11,  // generator: a response's hidden attributes
  kEmbeddingMap = 12,        // generator: the linear map from attributes to embeddings
  kEmbeddingNoise = 13,      // generator: a response's embedding noise
  kPairOrder = 14,           // generator: which response of a comparison comes first
};

// The random sequence of one entity (index) in one stream under one seed.
class Rng {
 public:
  Rng(std::uint64_t seed, Stream stream, std::uint64_t index)
      : key_{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)},
        ctr_{static_cast<std::uint32_t>(index), static_cast<std::uint32_t>(index >> 32),
             static_cast<std::uint32_t>(stream), 0} {}

  std::uint32_t next_u32() {
    if (used_ == 4) refill();
    return block_[used_++];
  }
  std::uint64_t next_u64() {
    const std::uint64_t hi = next_u32();
    return (hi << 32) | next_u32();
  }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
  // Uniform in (0, 1]: safe for log().
  double uniform_open0() { return (static_cast<double>(next_u64() >> 11) + 1.0) * 0x1.0p-53; }
  // Uniform integer in [0, n) by Lemire's multiply-shift with rejection (unbiased).
  std::uint64_t below(std::uint64_t n) {
    if (n <= 0xFFFFFFFFull) {
      const std::uint32_t n32 = static_cast<std::uint32_t>(n);
      std::uint64_t m = static_cast<std::uint64_t>(next_u32()) * n32;
      if (static_cast<std::uint32_t>(m) < n32) {
        const std::uint32_t t = static_cast<std::uint32_t>(-n32) % n32;
        while (static_cast<std::uint32_t>(m) < t) m = static_cast<std::uint64_t>(next_u32()) * n32;
      }
      return m >> 32;
    }
    uint128 m = static_cast<uint128>(next_u64()) * n;
    if (static_cast<std::uint64_t>(m) < n) {
      const std::uint64_t t = -n % n;
      while (static_cast<std::uint64_t>(m) < t) m = static_cast<uint128>(next_u64()) * n;
    }
    return static_cast<std::uint64_t>(m >> 64);
  }
  // Standard normal (Box-Muller; the second value of each pair is kept for the next call).
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double r = std::sqrt(-2.0 * std::log(uniform_open0()));
    const double t = 2.0 * M_PI * uniform();
    spare_ = r * std::sin(t);
    has_spare_ = true;
    return r * std::cos(t);
  }

 private:
  void refill() {
    block_ = philox4x32_10(ctr_, key_);
    ++ctr_[3];
    used_ = 0;
  }
  std::array<std::uint32_t, 2> key_;
  Philox4x32 ctr_;
  Philox4x32 block_{};
  int used_ = 4;
  bool has_spare_ = false;
  double spare_ = 0.0;
};

}  // namespace pref
