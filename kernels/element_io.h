// Reading and writing rows of fp32/fp16/bf16/fp8/int8 elements as float (host code).
#ifndef KVTIER_KERNELS_ELEMENT_IO_H_
#define KVTIER_KERNELS_ELEMENT_IO_H_

#include <cmath>
#include <cstdint>
#include <cstring>

#include "cache_store/kv_layout.h"
#include "kernels/numeric.h"

namespace kvtier::kernels {

// out[i] = element i of the row at `src` (dtype) times `scale`.
inline void LoadRow(const void* src, DType dtype, uint32_t n, float scale, float* out) {
  switch (dtype) {
    case DType::kFp32: {
      std::memcpy(out, src, n * sizeof(float));
      if (scale != 1.0f) {
        for (uint32_t i = 0; i < n; ++i) out[i] *= scale;
      }
      return;
    }
    case DType::kFp16: {
      const auto* p = static_cast<const uint16_t*>(src);
      for (uint32_t i = 0; i < n; ++i) out[i] = HalfToFloat(p[i]) * scale;
      return;
    }
    case DType::kBf16: {
      const auto* p = static_cast<const uint16_t*>(src);
      for (uint32_t i = 0; i < n; ++i) out[i] = Bf16ToFloat(p[i]) * scale;
      return;
    }
    case DType::kFp8E4M3: {
      const auto* p = static_cast<const uint8_t*>(src);
      for (uint32_t i = 0; i < n; ++i) out[i] = E4m3ToFloat(p[i]) * scale;
      return;
    }
    case DType::kInt8: {
      const auto* p = static_cast<const int8_t*>(src);
      for (uint32_t i = 0; i < n; ++i) out[i] = static_cast<float>(p[i]) * scale;
      return;
    }
  }
}

// Writes n floats as fp32/fp16/bf16.
inline void StoreRow(const float* in, uint32_t n, DType dtype, void* dst) {
  switch (dtype) {
    case DType::kFp32:
      std::memcpy(dst, in, n * sizeof(float));
      return;
    case DType::kFp16: {
      auto* p = static_cast<uint16_t*>(dst);
      for (uint32_t i = 0; i < n; ++i) p[i] = FloatToHalf(in[i]);
      return;
    }
    case DType::kBf16: {
      auto* p = static_cast<uint16_t*>(dst);
      for (uint32_t i = 0; i < n; ++i) p[i] = FloatToBf16(in[i]);
      return;
    }
    default:
      return;  // callers validate the dtype first
  }
}

// Writes n floats as a row of K/V of any dtype: fp32/fp16/bf16 as StoreRow; fp8 e4m3 and
// int8 as round(x / scale) (int8 to nearest even, clamped to [-127, 127]; fp8 saturating).
// QuantizeKvCpu and the decoders' K/V stores both round here.
inline void StoreKvRow(const float* in, uint32_t n, DType dtype, float scale, void* dst) {
  switch (dtype) {
    case DType::kFp8E4M3: {
      auto* p = static_cast<uint8_t*>(dst);
      for (uint32_t i = 0; i < n; ++i) p[i] = FloatToE4m3(in[i] / scale);
      return;
    }
    case DType::kInt8: {
      auto* p = static_cast<int8_t*>(dst);
      for (uint32_t i = 0; i < n; ++i) {
        const float q = std::nearbyint(in[i] / scale);
        p[i] = static_cast<int8_t>(q > 127.0f ? 127.0f : (q < -127.0f ? -127.0f : q));
      }
      return;
    }
    default:
      StoreRow(in, n, dtype, dst);
  }
}

inline bool IsActivationType(DType d) {
  return d == DType::kFp32 || d == DType::kFp16 || d == DType::kBf16;
}
using ::kvtier::IsQuantized;  // cache_store/kv_layout.h

}  // namespace kvtier::kernels

#endif  // KVTIER_KERNELS_ELEMENT_IO_H_
