// Scalar conversions between float and the storage types of K/V and activations:
// fp16 (IEEE binary16), bf16, fp8 e4m3 (OCP "E4M3FN": bias 7, max 448, no infinities,
// NaN = S.1111.111) and symmetric int8. Round to nearest even; fp8 saturates to ±448.
// Host code; the CUDA kernels use the device intrinsics of the same formats.
#ifndef KVTIER_KERNELS_NUMERIC_H_
#define KVTIER_KERNELS_NUMERIC_H_

#include <cstdint>

namespace kvtier::kernels {

float HalfToFloat(uint16_t h);
uint16_t FloatToHalf(float f);
float Bf16ToFloat(uint16_t b);
uint16_t FloatToBf16(float f);
float E4m3ToFloat(uint8_t v);
uint8_t FloatToE4m3(float f);  // saturating
inline constexpr float kE4m3Max = 448.0f;

}  // namespace kvtier::kernels

#endif  // KVTIER_KERNELS_NUMERIC_H_
