#pragma once
// Cheap 64-bit checksums that do not depend on the rank count: every item (a label, a factor
// row) is hashed together with its global identity, and the hashes are summed modulo 2^64, so
// the total is the same whichever rank holds which items and in whatever order they are added
// (an allreduce with MPI_SUM over uint64 wraps modulo 2^64). Not cryptographic: they detect
// torn, truncated or bit-flipped data and a different data file, not tampering.
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

#include <fmt/core.h>

namespace pref::hash {

// SplitMix64's finalizer: a bijective mix of 64 bits.
constexpr std::uint64_t mix(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Hash of one row of doubles with its global row id (bytes, so -0.0 and NaN payloads count).
inline std::uint64_t row(std::uint64_t id, const double* v, std::size_t n) {
  std::uint64_t h = mix(id ^ 0x70726566726f7721ull);
  for (std::size_t k = 0; k < n; ++k) {
    std::uint64_t bits;
    std::memcpy(&bits, v + k, 8);
    h = mix(h ^ bits);
  }
  return h;
}

// Sum of row hashes of rows [first, first + rows) of a row-major block of `width` columns.
inline std::uint64_t rows(std::uint64_t first, std::span<const double> data, std::size_t width) {
  std::uint64_t s = 0;
  if (width == 0) return s;
  const std::size_t n = data.size() / width;
  for (std::size_t r = 0; r < n; ++r) s += row(first + r, data.data() + r * width, width);
  return s;
}

// Hash of one label (user, comparison, value bits).
inline std::uint64_t label(std::uint64_t user, std::uint64_t comparison, float value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, 4);
  return mix(mix((user << 32) ^ comparison) ^ bits);
}

// FNV-1a over bytes, then mixed (for strings: headers, JSON).
inline std::uint64_t bytes(std::string_view s, std::uint64_t h = 0xcbf29ce484222325ull) {
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return mix(h);
}

inline std::string hex(std::uint64_t h) {
  return fmt::format("{:016x}", h);
}

}  // namespace pref::hash
