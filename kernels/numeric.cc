#include "kernels/numeric.h"

#include <array>
#include <bit>
#include <cmath>
#include <limits>

namespace kvtier::kernels {
namespace {

// Rounds a non-negative value to the nearest integer, ties to even.
float RoundHalfEven(float x) { return std::nearbyint(x); }  // default FE_TONEAREST

constexpr float Pow2(int e) {
  float v = 1.0f;
  for (; e > 0; --e) v *= 2.0f;
  for (; e < 0; ++e) v *= 0.5f;
  return v;
}

constexpr std::array<float, 256> MakeE4m3Table() {
  std::array<float, 256> t{};
  for (int v = 0; v < 256; ++v) {
    const int e = (v >> 3) & 0xF;
    const int m = v & 7;
    float mag = 0;
    if (e == 15 && m == 7) {
      mag = std::numeric_limits<float>::quiet_NaN();
    } else if (e == 0) {
      mag = static_cast<float>(m) / 8.0f * Pow2(-6);
    } else {
      mag = (1.0f + static_cast<float>(m) / 8.0f) * Pow2(e - 7);
    }
    t[v] = (v & 0x80) ? -mag : mag;
  }
  return t;
}

constexpr std::array<float, 256> kE4m3Values = MakeE4m3Table();

}  // namespace

float HalfToFloatSlow(uint16_t h) {
  const uint32_t sign = (h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1F;
  const uint32_t mant = h & 0x3FF;
  if (exp == 0) {
    const float mag = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -mag : mag;
  }
  if (exp == 31) {
    return std::bit_cast<float>(sign | 0x7F800000u | (mant << 13));  // inf or NaN
  }
  return std::bit_cast<float>(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t FloatToHalf(float f) {
  const uint32_t bits = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const float a = std::fabs(f);
  if (std::isnan(f)) return sign | 0x7E00;
  if (a >= 65520.0f) return sign | 0x7C00;  // rounds to infinity
  if (a < std::ldexp(1.0f, -14)) {          // subnormal (or zero): units of 2^-24
    return sign | static_cast<uint16_t>(RoundHalfEven(std::ldexp(a, 24)));
  }
  int e;
  const float frac = std::frexp(a, &e);  // a = frac * 2^e, frac in [0.5, 1)
  int exp = e - 1;                       // a = (2 * frac) * 2^exp
  float mant = RoundHalfEven((2.0f * frac - 1.0f) * 1024.0f);
  if (mant == 1024.0f) {
    mant = 0;
    ++exp;
  }
  return sign | static_cast<uint16_t>(((exp + 15) << 10) | static_cast<uint16_t>(mant));
}

uint16_t FloatToBf16(float f) {
  uint32_t bits = std::bit_cast<uint32_t>(f);
  if (std::isnan(f)) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7FFF + ((bits >> 16) & 1);  // round to nearest even
  return static_cast<uint16_t>(bits >> 16);
}

const std::array<float, 256>& kE4m3Table = kE4m3Values;

uint8_t FloatToE4m3(float f) {
  if (std::isnan(f)) return 0x7F;
  const uint8_t sign = std::signbit(f) ? 0x80 : 0;
  const float a = std::fabs(f);
  if (a >= kE4m3Max) return sign | 0x7E;
  if (a < std::ldexp(1.0f, -6)) {  // subnormal: units of 2^-9; 8 units is the first normal
    return sign | static_cast<uint8_t>(RoundHalfEven(std::ldexp(a, 9)));
  }
  int e;
  const float frac = std::frexp(a, &e);
  int exp = e - 1;
  float mant = RoundHalfEven((2.0f * frac - 1.0f) * 8.0f);
  if (mant == 8.0f) {
    mant = 0;
    ++exp;
  }
  if (exp > 8 || (exp == 8 && mant == 7.0f)) return sign | 0x7E;  // saturate at 448
  return sign | static_cast<uint8_t>(((exp + 7) << 3) | static_cast<uint8_t>(mant));
}

}  // namespace kvtier::kernels
