// The dense decoder operations on the GPU (interface and conventions in decoder_ops.h).
//
// GEMM: one CTA of 8 warps per 64×128 tile of y; the k dimension in steps of 32 through
// shared memory; each warp computes a 32×32 sub-tile with bf16 tensor-core fragments
// (m16n16k16) accumulating in fp32. The k order of every element's sum is fixed by the loop,
// whatever m is. Tiles are staged through shared memory, so an element is written by exactly
// one thread (bounds-checked: m and n need not be multiples of the tile).
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cuda_elements.cuh"
#include "kernels/cuda_status.h"
#include "kernels/decoder_ops.h"

namespace kvtier::kernels {
namespace {

constexpr int kBm = 64, kBn = 128, kBk = 32, kPad = 8;
constexpr int kGemmThreads = 256;  // 8 warps: 2 along m × 4 along n, 32×32 each
constexpr int kRowThreads = 256;

absl::Status Launched(const char* what) { return CudaStatus(cudaGetLastError(), what); }

cudaStream_t StreamOf(const CudaOptions& options) {
  return static_cast<cudaStream_t>(options.stream);
}

__global__ void __launch_bounds__(kGemmThreads)
    GemmBf16Kernel(const __nv_bfloat16* __restrict__ x, const __nv_bfloat16* __restrict__ w,
                   float* __restrict__ y, uint32_t m, uint32_t n, uint32_t k, bool accumulate) {
  using namespace nvcuda;
  __shared__ __align__(32) __nv_bfloat16 a_tile[kBm][kBk + kPad];
  __shared__ __align__(32) __nv_bfloat16 b_tile[kBn][kBk + kPad];
  __shared__ __align__(32) float c_tile[kGemmThreads / 32][32][32];

  const int tid = threadIdx.x;
  const int warp = tid / 32, lane = tid % 32;
  const int warp_m = warp / 4, warp_n = warp % 4;
  const uint64_t m0 = uint64_t{blockIdx.y} * kBm;
  const uint64_t n0 = uint64_t{blockIdx.x} * kBn;

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
#pragma unroll
    for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.0f);
  }

  const uint4 zero = make_uint4(0, 0, 0, 0);
  for (uint32_t k0 = 0; k0 < k; k0 += kBk) {
    {  // x tile: 64 rows × 32 columns = 256 vectors of 8
      const int row = tid / 4, col = (tid % 4) * 8;
      const uint64_t g = m0 + row;
      *reinterpret_cast<uint4*>(&a_tile[row][col]) =
          g < m ? *reinterpret_cast<const uint4*>(x + g * k + k0 + col) : zero;
    }
#pragma unroll
    for (int i = 0; i < 2; ++i) {  // w tile: 128 rows × 32 columns = 512 vectors of 8
      const int row = tid / 4 + i * 64, col = (tid % 4) * 8;
      const uint64_t g = n0 + row;
      *reinterpret_cast<uint4*>(&b_tile[row][col]) =
          g < n ? *reinterpret_cast<const uint4*>(w + g * k + k0 + col) : zero;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kBk; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> b[2];
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        wmma::load_matrix_sync(a[i], &a_tile[warp_m * 32 + i * 16][kk], kBk + kPad);
        // w is [n, k] row-major, which is wᵀ [k, n] column-major: the B operand as it lies.
        wmma::load_matrix_sync(b[i], &b_tile[warp_n * 32 + i * 16][kk], kBk + kPad);
      }
#pragma unroll
      for (int i = 0; i < 2; ++i) {
#pragma unroll
        for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
      }
    }
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < 2; ++i) {
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      wmma::store_matrix_sync(&c_tile[warp][i * 16][j * 16], acc[i][j], 32, wmma::mem_row_major);
    }
  }
  __syncwarp();
  for (int e = lane; e < 32 * 32; e += 32) {
    const int r = e / 32, c = e % 32;
    const uint64_t gr = m0 + warp_m * 32 + r, gc = n0 + warp_n * 32 + c;
    if (gr < m && gc < n) {
      float* out = y + gr * n + gc;
      *out = accumulate ? *out + c_tile[warp][r][c] : c_tile[warp][r][c];
    }
  }
}

// Sum over the block of one value per thread (kRowThreads threads), in a fixed order.
__device__ float BlockSum(float v) {
  __shared__ float partial[kRowThreads / 32];
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  __syncthreads();  // partial may still be read by a previous call
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = v;
  __syncthreads();
  float sum = 0.0f;
  for (int i = 0; i < kRowThreads / 32; ++i) sum += partial[i];
  return sum;
}

// grid: m rows.
__global__ void __launch_bounds__(kRowThreads)
    RmsNormKernel(const float* __restrict__ x, const float* __restrict__ weight, float eps,
                  uint32_t n, __nv_bfloat16* __restrict__ out) {
  const float* row = x + uint64_t{blockIdx.x} * n;
  float sq = 0.0f;
  for (uint32_t i = threadIdx.x; i < n; i += kRowThreads) sq += row[i] * row[i];
  const float total = BlockSum(sq);
  const float scale = rsqrtf(total / static_cast<float>(n) + eps);
  __nv_bfloat16* o = out + uint64_t{blockIdx.x} * n;
  for (uint32_t i = threadIdx.x; i < n; i += kRowThreads) {
    o[i] = __float2bfloat16_rn(row[i] * scale * weight[i]);
  }
}

// grid: m rows.
__global__ void __launch_bounds__(kRowThreads)
    EmbedKernel(const __nv_bfloat16* __restrict__ embed, uint32_t vocab, uint32_t hidden,
                const uint32_t* __restrict__ tokens, float* __restrict__ x) {
  const uint32_t token = tokens[blockIdx.x];
  float* row = x + uint64_t{blockIdx.x} * hidden;
  for (uint32_t i = threadIdx.x; i < hidden; i += kRowThreads) {
    row[i] = token < vocab ? __bfloat162float(embed[uint64_t{token} * hidden + i]) : 0.0f;
  }
}

struct RopeKvShape {
  uint32_t q_heads, kv_heads, head_dim, tokens_per_page;
  uint64_t page_bytes, layer_bytes;
  DType dtype;
  const float* kv_scales;  // quantized pools: this layer's [2][kv_heads]; else null
  uint64_t scale_offset;   // bytes from a layer's K to its inline scales
};

// (a, b) rotated by the angle of frequency pair i at `position`, as the reference decoder
// computes it: the frequency in float from a double power, the angle and its cosine and sine
// in double, the rotation in float without fused multiply-adds.
__device__ __forceinline__ float2 Rotate(float a, float b, uint32_t i, uint32_t position,
                                         uint32_t dim, float theta) {
  const float inv_freq =
      static_cast<float>(pow(static_cast<double>(theta), -2.0 * i / static_cast<double>(dim)));
  const double angle = static_cast<double>(position) * static_cast<double>(inv_freq);
  const float c = static_cast<float>(cos(angle));
  const float s = static_cast<float>(sin(angle));
  return make_float2(__fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s)),
                     __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s)));
}

// grid: m rows.
__global__ void __launch_bounds__(kRowThreads)
    RopeKvKernel(const float* __restrict__ qkv, const uint32_t* __restrict__ positions,
                 const uint32_t* __restrict__ page_of_row, uint8_t* __restrict__ pages,
                 uint32_t layer, float theta, RopeKvShape s, float* __restrict__ q_out) {
  const uint32_t r = blockIdx.x;
  const uint32_t half = s.head_dim / 2;
  const uint32_t qdim = s.q_heads * s.head_dim, kvdim = s.kv_heads * s.head_dim;
  const float* in = qkv + uint64_t{r} * (qdim + 2 * kvdim);
  const uint32_t position = positions[r];
  const uint32_t slot = position % s.tokens_per_page;
  uint8_t* layer_base =
      pages + uint64_t{page_of_row[r]} * s.page_bytes + uint64_t{layer} * s.layer_bytes;
  const uint64_t k_row = uint64_t{slot} * kvdim;
  const uint64_t v_row = uint64_t{s.tokens_per_page + slot} * kvdim;
  // q heads, then k heads: one rotation pair per work item.
  const uint32_t pairs = (s.q_heads + s.kv_heads) * half;
  for (uint32_t p = threadIdx.x; p < pairs; p += kRowThreads) {
    const uint32_t head = p / half, i = p % half;
    if (head < s.q_heads) {
      const uint64_t base = uint64_t{head} * s.head_dim;
      const float2 v = Rotate(in[base + i], in[base + i + half], i, position, s.head_dim, theta);
      q_out[uint64_t{r} * qdim + base + i] = v.x;
      q_out[uint64_t{r} * qdim + base + i + half] = v.y;
    } else {
      const uint64_t base = uint64_t{head - s.q_heads} * s.head_dim;
      const float2 v =
          Rotate(in[qdim + base + i], in[qdim + base + i + half], i, position, s.head_dim, theta);
      const float ks = s.kv_scales != nullptr ? s.kv_scales[head - s.q_heads] : 1.0f;
      cuda::StoreKv(layer_base, s.dtype, k_row + base + i, v.x, ks);
      cuda::StoreKv(layer_base, s.dtype, k_row + base + i + half, v.y, ks);
    }
  }
  for (uint32_t e = threadIdx.x; e < kvdim; e += kRowThreads) {
    const float vs = s.kv_scales != nullptr ? s.kv_scales[s.kv_heads + e / s.head_dim] : 1.0f;
    cuda::StoreKv(layer_base, s.dtype, v_row + e, in[qdim + kvdim + e], vs);
  }
  if (s.kv_scales != nullptr) {
    // The page carries the scales its elements were stored with (every row of the page
    // writes the same values).
    float* scales = reinterpret_cast<float*>(layer_base + s.scale_offset);
    for (uint32_t j = threadIdx.x; j < 2 * s.kv_heads; j += kRowThreads) scales[j] = s.kv_scales[j];
  }
}

__global__ void SiluMulKernel(const float* __restrict__ gate_up, uint32_t m, uint32_t n,
                              __nv_bfloat16* __restrict__ out) {
  const uint64_t total = uint64_t{m} * n;
  for (uint64_t e = blockIdx.x * uint64_t{blockDim.x} + threadIdx.x; e < total;
       e += uint64_t{gridDim.x} * blockDim.x) {
    const uint64_t r = e / n, i = e % n;
    const float g = gate_up[r * 2 * n + i], u = gate_up[r * 2 * n + n + i];
    out[e] = __float2bfloat16_rn(g / (1.0f + expf(-g)) * u);
  }
}

bool Aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

absl::Status GemmBf16Cuda(const uint16_t* x, const uint16_t* w, float* y, uint32_t m, uint32_t n,
                          uint32_t k, bool accumulate, const CudaOptions& options) {
  if (x == nullptr || w == nullptr || y == nullptr) {
    return absl::InvalidArgumentError("gemm: x, w and y are required");
  }
  if (k == 0 || k % kBk != 0) {
    return absl::InvalidArgumentError(absl::StrCat("gemm: k = ", k, " must be a multiple of 32"));
  }
  if (!Aligned16(x) || !Aligned16(w)) {
    return absl::InvalidArgumentError("gemm: x and w must be 16-byte aligned");
  }
  if (m == 0 || n == 0) return absl::OkStatus();
  if ((m + kBm - 1) / kBm > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("gemm: m = ", m, " rows is too many"));
  }
  const dim3 grid((n + kBn - 1) / kBn, (m + kBm - 1) / kBm);
  GemmBf16Kernel<<<grid, kGemmThreads, 0, StreamOf(options)>>>(
      reinterpret_cast<const __nv_bfloat16*>(x), reinterpret_cast<const __nv_bfloat16*>(w), y, m, n,
      k, accumulate);
  return Launched("GemmBf16Kernel");
}

absl::Status RmsNormToBf16Cuda(const float* x, const float* weight, float eps, uint32_t m,
                               uint32_t n, uint16_t* out, const CudaOptions& options) {
  if (x == nullptr || weight == nullptr || out == nullptr || n == 0) {
    return absl::InvalidArgumentError("rms norm: x, weight, out and a width are required");
  }
  if (m == 0) return absl::OkStatus();
  RmsNormKernel<<<m, kRowThreads, 0, StreamOf(options)>>>(x, weight, eps, n,
                                                          reinterpret_cast<__nv_bfloat16*>(out));
  return Launched("RmsNormKernel");
}

absl::Status EmbedCuda(const uint16_t* embed, uint32_t vocab, uint32_t hidden,
                       const uint32_t* tokens, uint32_t m, float* x, const CudaOptions& options) {
  if (embed == nullptr || tokens == nullptr || x == nullptr || hidden == 0) {
    return absl::InvalidArgumentError("embed: the table, tokens, output and width are required");
  }
  if (m == 0) return absl::OkStatus();
  EmbedKernel<<<m, kRowThreads, 0, StreamOf(options)>>>(
      reinterpret_cast<const __nv_bfloat16*>(embed), vocab, hidden, tokens, x);
  return Launched("EmbedKernel");
}

absl::Status RopeAndStoreKvCuda(const KvPagePool& pool, const RopeKvArgs& args,
                                const CudaOptions& options) {
  if (args.qkv == nullptr || args.q_out == nullptr || args.positions == nullptr ||
      args.page_of_row == nullptr || pool.pages == nullptr) {
    return absl::InvalidArgumentError("rope/kv: qkv, q_out, positions, page_of_row and pages");
  }
  if (IsQuantized(pool.dtype) ? !pool.InlineScales() || args.kv_scales == nullptr
                              : pool.dtype != DType::kFp32 && pool.dtype != DType::kFp16 &&
                                    pool.dtype != DType::kBf16) {
    return absl::InvalidArgumentError(
        "rope/kv: the pool's dtype must be fp32, fp16 or bf16, or fp8_e4m3/int8 with inline "
        "scales and kv_scales");
  }
  if (pool.head_dim == 0 || pool.head_dim % 2 != 0 || pool.num_kv_heads == 0 ||
      args.num_q_heads == 0 || args.num_q_heads % pool.num_kv_heads != 0) {
    return absl::InvalidArgumentError("rope/kv: bad head counts or head_dim");
  }
  if (args.layer >= pool.num_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("rope/kv: layer ", args.layer, " of a ", pool.num_layers, "-layer pool"));
  }
  if (args.m == 0) return absl::OkStatus();
  const RopeKvShape shape{.q_heads = args.num_q_heads,
                          .kv_heads = pool.num_kv_heads,
                          .head_dim = pool.head_dim,
                          .tokens_per_page = pool.tokens_per_page,
                          .page_bytes = pool.PageBytes(),
                          .layer_bytes = pool.LayerBytes(),
                          .dtype = pool.dtype,
                          .kv_scales = IsQuantized(pool.dtype)
                                           ? args.kv_scales + uint64_t{args.layer} * 2 * pool.num_kv_heads
                                           : nullptr,
                          .scale_offset = pool.ScaleOffset()};
  RopeKvKernel<<<args.m, kRowThreads, 0, StreamOf(options)>>>(
      args.qkv, args.positions, args.page_of_row,
      static_cast<uint8_t*>(const_cast<void*>(pool.pages)), args.layer, args.rope_theta, shape,
      args.q_out);
  return Launched("RopeKvKernel");
}

absl::Status SiluMulToBf16Cuda(const float* gate_up, uint32_t m, uint32_t n, uint16_t* out,
                               const CudaOptions& options) {
  if (gate_up == nullptr || out == nullptr || n == 0) {
    return absl::InvalidArgumentError("silu·mul: gate_up, out and a width are required");
  }
  if (m == 0) return absl::OkStatus();
  const uint64_t total = uint64_t{m} * n;
  const uint32_t blocks = static_cast<uint32_t>(std::min<uint64_t>((total + 255) / 256, 65535));
  SiluMulKernel<<<blocks, 256, 0, StreamOf(options)>>>(gate_up, m, n,
                                                       reinterpret_cast<__nv_bfloat16*>(out));
  return Launched("SiluMulKernel");
}

}  // namespace kvtier::kernels
