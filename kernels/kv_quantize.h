// K/V quantization for compressed offload: pages (block payloads, layout in
// paged_attention.h) of fp32/fp16/bf16 to fp8 e4m3 or int8 and back, with one float scale
// per page, layer, K or V, and KV head (the scale layout KvPagePool::scales expects):
//   scale = max |x| over the head's tokens and dims / (448 for fp8, 127 for int8)
//   stored = round(x / scale)   (int8: clamped to [-127, 127]; fp8: saturating)
// A head of zeros gets scale 1. Round-trip error bound per element: scale / 2 for int8,
// and |x| / 16 + 2^-10 * scale for fp8 (3 mantissa bits; subnormal step 2^-9 * scale).
#ifndef KVTIER_KERNELS_KV_QUANTIZE_H_
#define KVTIER_KERNELS_KV_QUANTIZE_H_

#include <cstdint>

#include "absl/status/status.h"
#include "cache_store/kv_layout.h"
#include "kernels/backend.h"

namespace kvtier::kernels {

struct KvPageShape {
  uint32_t num_pages = 0;
  uint32_t num_layers = 0;
  uint32_t tokens_per_page = 0;
  uint32_t num_kv_heads = 0;
  uint32_t head_dim = 0;
  uint64_t Elements() const {
    return uint64_t{num_pages} * num_layers * 2 * tokens_per_page * num_kv_heads * head_dim;
  }
  uint64_t Scales() const { return uint64_t{num_pages} * num_layers * 2 * num_kv_heads; }
};

// The checks both implementations make: a non-empty shape, the dtype pair, the pointers.
absl::Status ValidateQuantizeKv(const void* src, DType src_dtype, const KvPageShape& shape,
                                DType dst_dtype, const void* dst, const float* scales);
absl::Status ValidateDequantizeKv(const void* src, DType src_dtype, const float* scales,
                                  const KvPageShape& shape, DType dst_dtype, const void* dst);

// src: Elements() values of src_dtype (fp32/fp16/bf16); dst: Elements() bytes;
// scales: Scales() floats.
absl::Status QuantizeKvCpu(const void* src, DType src_dtype, const KvPageShape& shape,
                           DType dst_dtype, void* dst, float* scales, int threads = 0);
// The inverse: src of src_dtype (fp8/int8) with its scales, to dst_dtype (fp32/fp16/bf16).
absl::Status DequantizeKvCpu(const void* src, DType src_dtype, const float* scales,
                             const KvPageShape& shape, DType dst_dtype, void* dst, int threads = 0);

// GPU kernels (kv_quantize_cuda.cu), bit-identical to the CPU ones: same scales, same
// rounding (nearest even; fp8 saturating). All pointers are device memory. Asynchronous.
absl::Status QuantizeKvCuda(const void* src, DType src_dtype, const KvPageShape& shape,
                            DType dst_dtype, void* dst, float* scales,
                            const CudaOptions& options = {});
absl::Status DequantizeKvCuda(const void* src, DType src_dtype, const float* scales,
                              const KvPageShape& shape, DType dst_dtype, void* dst,
                              const CudaOptions& options = {});

}  // namespace kvtier::kernels

#endif  // KVTIER_KERNELS_KV_QUANTIZE_H_
