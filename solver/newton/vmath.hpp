#pragma once
// exp and log1p on the ranges the Newton kernels need, as straight-line polynomial code that the
// compiler vectorizes across labels (libm's calls are scalar and were half of a half-step's
// time). Accuracy: a few ulp, checked against libm over the whole range in tests/test_base.cpp.
// Pure arithmetic, so results are the same on every run and rank.
#include <bit>
#include <cstdint>

namespace pref::vmath {

// exp(x) for x <= 0; 0 below -708 (where exp is subnormal: 1 + exp(x) is then exactly 1).
[[gnu::always_inline]] inline double exp_nonpos(double x) {
  const double xc = x < -708.0 ? -708.0 : x;
  // Round x / ln2 to the nearest integer k with the 1.5 * 2^52 shifter (exact for |k| < 2^51).
  constexpr double kShift = 6755399441055744.0;
  const double t = xc * 1.4426950408889634 + kShift;
  const double kf = t - kShift;
  const std::int64_t k = std::bit_cast<std::int64_t>(t) - std::bit_cast<std::int64_t>(kShift);
  // r = x - k ln2 in two pieces (Cody-Waite), |r| <= ln2 / 2.
  const double r = (xc - kf * 6.93147180369123816490e-01) - kf * 1.90821492927058770002e-10;
  // Taylor series of exp(r) to degree 13: truncation below 5e-18.
  double p = 1.0 / 6227020800.0;
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  const double scale = std::bit_cast<double>(static_cast<std::uint64_t>(k + 1023) << 52);
  return x < -708.0 ? 0.0 : p * scale;
}

// expm1(x) for |x| <= 1 by its Taylor series to degree 19 (truncation below 1e-17 relative).
[[gnu::always_inline]] inline double expm1_small(double x) {
  double p = 1.0 / 121645100408832000.0;  // 1/19!
  p = p * x + 1.0 / 6402373705728000.0;
  p = p * x + 1.0 / 355687428096000.0;
  p = p * x + 1.0 / 20922789888000.0;
  p = p * x + 1.0 / 1307674368000.0;
  p = p * x + 1.0 / 87178291200.0;
  p = p * x + 1.0 / 6227020800.0;
  p = p * x + 1.0 / 479001600.0;
  p = p * x + 1.0 / 39916800.0;
  p = p * x + 1.0 / 3628800.0;
  p = p * x + 1.0 / 362880.0;
  p = p * x + 1.0 / 40320.0;
  p = p * x + 1.0 / 5040.0;
  p = p * x + 1.0 / 720.0;
  p = p * x + 1.0 / 120.0;
  p = p * x + 1.0 / 24.0;
  p = p * x + 1.0 / 6.0;
  p = p * x + 0.5;
  p = p * x + 1.0;
  return p * x;
}

// log1p(x) for x > -1 and 1 + x normal: log(1 + x) = k ln2 + 2 atanh(s), with
// 1 + x = m 2^k, m in [sqrt(1/2), sqrt(2)), s = (m - 1) / (m + 1); when k = 0, s = x / (2 + x)
// exactly in terms of x (no rounding of 1 + x), so small x keep full relative precision.
[[gnu::always_inline]] inline double log1p_pos(double x) {
  const double v = 1.0 + x;
  const std::uint64_t bits = std::bit_cast<std::uint64_t>(v);
  // The exponent as a double without an int64 -> double conversion (which AVX2 lacks): the
  // biased exponent e (0..2047) becomes the low bits of 2^52 + e.
  constexpr double kTwo52 = 4503599627370496.0;
  double kf = std::bit_cast<double>((bits >> 52) | 0x4330000000000000ull) - kTwo52 - 1023.0;
  std::uint64_t mbits = (bits & 0x000FFFFFFFFFFFFFull) | 0x3FF0000000000000ull;  // m in [1, 2)
  const bool high = std::bit_cast<double>(mbits) > 1.4142135623730951;
  mbits = high ? mbits - 0x0010000000000000ull : mbits;  // m / 2
  kf = high ? kf + 1.0 : kf;
  const double m = std::bit_cast<double>(mbits);
  const double s = kf == 0 ? x / (2.0 + x) : (m - 1.0) / (m + 1.0);
  const double s2 = s * s;
  // 2 atanh(s) = 2 s (1 + s^2/3 + s^4/5 + ...), |s| <= 0.1716: terms to s^22 (below 1e-18).
  double p = 1.0 / 23;
  p = p * s2 + 1.0 / 21;
  p = p * s2 + 1.0 / 19;
  p = p * s2 + 1.0 / 17;
  p = p * s2 + 1.0 / 15;
  p = p * s2 + 1.0 / 13;
  p = p * s2 + 1.0 / 11;
  p = p * s2 + 1.0 / 9;
  p = p * s2 + 1.0 / 7;
  p = p * s2 + 1.0 / 5;
  p = p * s2 + 1.0 / 3;
  p = p * s2 + 1.0;
  constexpr double kLn2Hi = 6.93147180369123816490e-01, kLn2Lo = 1.90821492927058770002e-10;
  return kf * kLn2Hi + (2.0 * s * p + kf * kLn2Lo);
}

}  // namespace pref::vmath
