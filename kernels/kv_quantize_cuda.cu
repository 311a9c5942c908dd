// K/V quantization on the GPU. The interface, the scale layout and the rounding rules are
// in kv_quantize.h; the CPU implementation in kv_quantize_cpu.cc. One CTA per scale unit
// (page, layer, K or V, KV head): it reduces max |x| over the unit's tokens × head_dim,
// writes the scale, then converts. The conversions are the hardware's round-to-nearest-even
// ones, and x / scale is an IEEE division as on the host, so results are bit-identical.
#include <cuda_runtime.h>

#include <limits>

#include "kernels/cuda_elements.cuh"
#include "kernels/cuda_status.h"
#include "kernels/element_io.h"
#include "kernels/kv_quantize.h"
#include "kernels/numeric.h"

namespace kvtier::kernels {
namespace {

constexpr int kThreads = 256;

struct Unit {
  uint64_t first_row;   // element index of token 0's row, divided by head_dim
  uint64_t row_stride;  // rows between consecutive tokens of the unit (num_kv_heads)
};

// The unit behind scale `index` (layout [page][layer][kv][head]) and its rows: the element
// index of token t, dim d is (first_row + t * row_stride) * head_dim + d.
__device__ __forceinline__ Unit UnitAt(uint64_t index, uint32_t tokens, uint32_t heads) {
  const uint64_t page_layer_kv = index / heads;
  const uint64_t head = index % heads;
  return {(page_layer_kv * tokens) * heads + head, heads};
}

// grid: Scales(); block: kThreads.
__global__ void __launch_bounds__(kThreads)
    QuantizeKernel(const void* src, DType src_dtype, uint32_t tokens, uint32_t heads, uint32_t dim,
                   DType dst_dtype, uint8_t* dst, float* scales) {
  __shared__ float warp_max[kThreads / 32];
  const Unit u = UnitAt(blockIdx.x, tokens, heads);
  const uint32_t n = tokens * dim;
  float amax = 0.0f;
  for (uint32_t e = threadIdx.x; e < n; e += kThreads) {
    const uint64_t i = (u.first_row + uint64_t{e / dim} * u.row_stride) * dim + e % dim;
    amax = fmaxf(amax, fabsf(cuda::LoadElement(src, src_dtype, i)));
  }
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) {
    amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, offset));
  }
  if (threadIdx.x % 32 == 0) warp_max[threadIdx.x / 32] = amax;
  __syncthreads();
  amax = 0.0f;
  for (int w = 0; w < kThreads / 32; ++w) amax = fmaxf(amax, warp_max[w]);
  const float qmax = dst_dtype == DType::kInt8 ? 127.0f : kE4m3Max;
  const float scale = amax > 0.0f ? amax / qmax : 1.0f;
  if (threadIdx.x == 0) scales[blockIdx.x] = scale;
  for (uint32_t e = threadIdx.x; e < n; e += kThreads) {
    const uint64_t i = (u.first_row + uint64_t{e / dim} * u.row_stride) * dim + e % dim;
    cuda::StoreKv(dst, dst_dtype, i, cuda::LoadElement(src, src_dtype, i), scale);
  }
}

// grid: Scales(); block: kThreads.
__global__ void __launch_bounds__(kThreads)
    DequantizeKernel(const uint8_t* src, DType src_dtype, const float* scales, uint32_t tokens,
                     uint32_t heads, uint32_t dim, DType dst_dtype, void* dst) {
  const Unit u = UnitAt(blockIdx.x, tokens, heads);
  const float scale = scales[blockIdx.x];
  const uint32_t n = tokens * dim;
  for (uint32_t e = threadIdx.x; e < n; e += kThreads) {
    const uint64_t i = (u.first_row + uint64_t{e / dim} * u.row_stride) * dim + e % dim;
    cuda::StoreActivation(dst, dst_dtype, i, cuda::LoadElement(src, src_dtype, i) * scale);
  }
}

absl::Status CheckGrid(const KvPageShape& shape) {
  if (shape.Scales() > uint64_t{std::numeric_limits<int32_t>::max()}) {
    return absl::InvalidArgumentError("too many (page, layer, head) units for one launch");
  }
  if (uint64_t{shape.tokens_per_page} * shape.head_dim > std::numeric_limits<uint32_t>::max()) {
    return absl::InvalidArgumentError("a page head of over 2^32 elements");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status QuantizeKvCuda(const void* src, DType src_dtype, const KvPageShape& shape,
                            DType dst_dtype, void* dst, float* scales, const CudaOptions& options) {
  if (absl::Status s = ValidateQuantizeKv(src, src_dtype, shape, dst_dtype, dst, scales);
      !s.ok() || shape.num_pages == 0) {
    return s;
  }
  if (absl::Status s = CheckGrid(shape); !s.ok()) return s;
  QuantizeKernel<<<static_cast<uint32_t>(shape.Scales()), kThreads, 0,
                   static_cast<cudaStream_t>(options.stream)>>>(
      src, src_dtype, shape.tokens_per_page, shape.num_kv_heads, shape.head_dim, dst_dtype,
      static_cast<uint8_t*>(dst), scales);
  return CudaStatus(cudaGetLastError(), "launching K/V quantize");
}

absl::Status DequantizeKvCuda(const void* src, DType src_dtype, const float* scales,
                              const KvPageShape& shape, DType dst_dtype, void* dst,
                              const CudaOptions& options) {
  if (absl::Status s = ValidateDequantizeKv(src, src_dtype, scales, shape, dst_dtype, dst);
      !s.ok() || shape.num_pages == 0) {
    return s;
  }
  if (absl::Status s = CheckGrid(shape); !s.ok()) return s;
  DequantizeKernel<<<static_cast<uint32_t>(shape.Scales()), kThreads, 0,
                     static_cast<cudaStream_t>(options.stream)>>>(
      static_cast<const uint8_t*>(src), src_dtype, scales, shape.tokens_per_page,
      shape.num_kv_heads, shape.head_dim, dst_dtype, dst);
  return CudaStatus(cudaGetLastError(), "launching K/V dequantize");
}

}  // namespace kvtier::kernels
