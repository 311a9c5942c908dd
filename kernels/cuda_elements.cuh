// Device-side loads and stores of the element types (CUDA translation units only): the
// GPU counterparts of element_io.h, converting with the hardware's round-to-nearest-even
// so that results match the host conversions in numeric.h bit for bit.
#ifndef KVTIER_KERNELS_CUDA_ELEMENTS_CUH_
#define KVTIER_KERNELS_CUDA_ELEMENTS_CUH_

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>

#include "cache_store/kv_layout.h"

namespace kvtier::kernels::cuda {

// Eight consecutive K/V elements as float. REQUIRES: p aligned to 8 elements' bytes
// (32 for fp32, 16 for fp16/bf16, 8 for fp8/int8).
__device__ __forceinline__ void Load8(const float* p, float out[8]) {
  const float4 a = reinterpret_cast<const float4*>(p)[0];
  const float4 b = reinterpret_cast<const float4*>(p)[1];
  out[0] = a.x, out[1] = a.y, out[2] = a.z, out[3] = a.w;
  out[4] = b.x, out[5] = b.y, out[6] = b.z, out[7] = b.w;
}

__device__ __forceinline__ void Load8(const __half* p, float out[8]) {
  const uint4 v = *reinterpret_cast<const uint4*>(p);
  const __half2* h = reinterpret_cast<const __half2*>(&v);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __half22float2(h[i]);
    out[2 * i] = f.x, out[2 * i + 1] = f.y;
  }
}

__device__ __forceinline__ void Load8(const __nv_bfloat16* p, float out[8]) {
  const uint4 v = *reinterpret_cast<const uint4*>(p);
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&v);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __bfloat1622float2(h[i]);
    out[2 * i] = f.x, out[2 * i + 1] = f.y;
  }
}

__device__ __forceinline__ void Load8(const __nv_fp8_e4m3* p, float out[8]) {
  const uint2 v = *reinterpret_cast<const uint2*>(p);
  const uint32_t words[2] = {v.x, v.y};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const auto pair = static_cast<__nv_fp8x2_storage_t>(words[i / 2] >> (16 * (i % 2)));
    const __half2 h = __half2(__nv_cvt_fp8x2_to_halfraw2(pair, __NV_E4M3));  // exact
    const float2 f = __half22float2(h);
    out[2 * i] = f.x, out[2 * i + 1] = f.y;
  }
}

__device__ __forceinline__ void Load8(const int8_t* p, float out[8]) {
  const uint2 v = *reinterpret_cast<const uint2*>(p);
  const uint32_t words[2] = {v.x, v.y};
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    out[i] = static_cast<float>(static_cast<int8_t>(words[i / 4] >> (8 * (i % 4))));
  }
}

// One element of a runtime-typed activation (fp32, fp16, bf16) or K/V tensor.
__device__ __forceinline__ float LoadElement(const void* base, DType dtype, uint64_t i) {
  switch (dtype) {
    case DType::kFp32:
      return static_cast<const float*>(base)[i];
    case DType::kFp16:
      return __half2float(static_cast<const __half*>(base)[i]);
    case DType::kBf16:
      return __bfloat162float(static_cast<const __nv_bfloat16*>(base)[i]);
    case DType::kFp8E4M3: {
      const auto raw = static_cast<const __nv_fp8_storage_t*>(base)[i];
      return __half2float(__half(__nv_cvt_fp8_to_halfraw(raw, __NV_E4M3)));
    }
    case DType::kInt8:
      return static_cast<float>(static_cast<const int8_t*>(base)[i]);
  }
  return 0.0f;
}

// Stores one fp32/fp16/bf16 element, rounding to nearest even.
__device__ __forceinline__ void StoreActivation(void* base, DType dtype, uint64_t i, float v) {
  switch (dtype) {
    case DType::kFp32:
      static_cast<float*>(base)[i] = v;
      return;
    case DType::kFp16:
      static_cast<__half*>(base)[i] = __float2half_rn(v);
      return;
    case DType::kBf16:
      static_cast<__nv_bfloat16*>(base)[i] = __float2bfloat16_rn(v);
      return;
    default:
      return;  // the launchers validate dtypes
  }
}

// Stores one K/V element of any dtype: activations as StoreActivation, fp8 e4m3 and int8 as
// x / scale rounded as StoreKvRow does on the host (int8 to nearest even, clamped; fp8
// saturating). QuantizeKernel and RopeKvKernel both round here.
__device__ __forceinline__ void StoreKv(void* base, DType dtype, uint64_t i, float v, float scale) {
  switch (dtype) {
    case DType::kFp8E4M3:
      static_cast<__nv_fp8_storage_t*>(base)[i] =
          __nv_cvt_float_to_fp8(v / scale, __NV_SATFINITE, __NV_E4M3);
      return;
    case DType::kInt8:
      static_cast<int8_t*>(base)[i] =
          static_cast<int8_t>(fminf(fmaxf(rintf(v / scale), -127.0f), 127.0f));
      return;
    default:
      StoreActivation(base, dtype, i, v);
  }
}

}  // namespace kvtier::kernels::cuda

#endif  // KVTIER_KERNELS_CUDA_ELEMENTS_CUH_
