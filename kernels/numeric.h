// Scalar conversions between float and the storage types of K/V and activations:
// fp16 (IEEE binary16), bf16, fp8 e4m3 (OCP "E4M3FN": bias 7, max 448, no infinities,
// NaN = S.1111.111) and symmetric int8. Round to nearest even; fp8 saturates to ±448.
// Host code; the CUDA kernels use the device intrinsics of the same formats.
#ifndef KVTIER_KERNELS_NUMERIC_H_
#define KVTIER_KERNELS_NUMERIC_H_

#include <array>
#include <bit>
#include <cstdint>

namespace kvtier::kernels {

// Decoding runs once per K/V element in the CPU kernels, so it is inline.
inline float Bf16ToFloat(uint16_t b) {
  return std::bit_cast<float>(static_cast<uint32_t>(b) << 16);
}
float HalfToFloatSlow(uint16_t h);  // subnormals, infinities, NaN
inline float HalfToFloat(uint16_t h) {
  const uint32_t exp = (h >> 10) & 0x1F;
  if (exp == 0 || exp == 31) return HalfToFloatSlow(h);
  return std::bit_cast<float>((static_cast<uint32_t>(h & 0x8000u) << 16) | ((exp + 112) << 23) |
                              (static_cast<uint32_t>(h & 0x3FF) << 13));
}
extern const std::array<float, 256>& kE4m3Table;
inline float E4m3ToFloat(uint8_t v) { return kE4m3Table[v]; }
uint16_t FloatToHalf(float f);
uint16_t FloatToBf16(float f);
uint8_t FloatToE4m3(float f);  // saturating
inline constexpr float kE4m3Max = 448.0f;

}  // namespace kvtier::kernels

#endif  // KVTIER_KERNELS_NUMERIC_H_
