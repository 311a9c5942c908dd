// The dense operations of a Llama-architecture decoder layer on the GPU: what the worker's
// CudaDecoder (worker/cuda_decoder.h) runs around the paged attention kernel. The CPU
// counterparts are the reference decoder's own loops (worker/reference_decoder.cc); the GPU
// tests (tests/kernels/decoder_ops_cuda_test.cc) check each operation against a plain loop
// on the host, and the whole decoder against the reference decoder.
//
// Conventions (Hugging Face Llama): activations are row-major [rows, features]; a linear
// layer's weight is W [out, in], row-major, and computes y = x · Wᵀ. Weights and the inputs
// of linear layers are bf16 (the tensor cores' input type); accumulations, residual
// streams and everything else are fp32. bf16 conversions round to nearest even.
//
// Every launcher validates its shapes on the host (INVALID_ARGUMENT naming the problem) and
// queues its kernel on options.stream (asynchronous, kernels/backend.h). All pointers are
// device memory unless said otherwise. A build without CUDA returns UNIMPLEMENTED.
//
// Determinism: every output element is computed by a fixed sequence of operations that
// depends only on its own inputs, never on how many rows share the launch, so running a
// token alone or in a batch gives the same bits (the worker's restore-equals-recompute
// promise rests on it).
#ifndef KVTIER_KERNELS_DECODER_OPS_H_
#define KVTIER_KERNELS_DECODER_OPS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/backend.h"
#include "kernels/paged_attention.h"

namespace kvtier::kernels {

// y[m, n] (fp32) = x[m, k] (bf16) · w[n, k]ᵀ (bf16), or y += that when accumulate.
// REQUIRES k % 32 == 0; x, w 16-byte aligned. The k-sum of each element runs in the
// same order whatever m is.
absl::Status GemmBf16Cuda(const uint16_t* x, const uint16_t* w, float* y, uint32_t m, uint32_t n,
                          uint32_t k, bool accumulate, const CudaOptions& options = {});

// out[r] (bf16) = x[r] · rsqrt(mean(x[r]²) + eps) ⊙ weight, for rows r < m of width n.
absl::Status RmsNormToBf16Cuda(const float* x, const float* weight, float eps, uint32_t m,
                               uint32_t n, uint16_t* out, const CudaOptions& options = {});

// x[r] (fp32) = embed[tokens[r]] (bf16 table [vocab, hidden]). tokens is a device array;
// the caller checked them against vocab (an out-of-range id writes zeros).
absl::Status EmbedCuda(const uint16_t* embed, uint32_t vocab, uint32_t hidden,
                       const uint32_t* tokens, uint32_t m, float* x,
                       const CudaOptions& options = {});

// Attention input of m tokens: qkv [m, (q_heads + 2 · kv_heads) · head_dim] fp32 (the
// fused q, k, v projections). Rotates q and k with rotate_half RoPE at positions[r]
// (angle = position · theta^(-2i/head_dim), computed in double as the reference decoder
// does), writes q to q_out [m, q_heads · head_dim] fp32, and K and V into `pool` at
// `layer`: page page_of_row[r], slot positions[r] % tokens_per_page, in the pool's dtype:
// fp32, fp16 or bf16, or fp8_e4m3 / int8 for a pool with inline scales, quantized with
// kv_scales (device [num_layers][2][kv_heads], K's then V's, the pool's fixed per-layer,
// per-head scales), which are also written into the page. positions and page_of_row are
// device arrays.
struct RopeKvArgs {
  const float* qkv = nullptr;
  uint32_t m = 0;
  uint32_t num_q_heads = 0;
  const uint32_t* positions = nullptr;
  const uint32_t* page_of_row = nullptr;
  uint32_t layer = 0;
  float rope_theta = 10000.0f;
  float* q_out = nullptr;
  const float* kv_scales = nullptr;  // quantized pools only
};
absl::Status RopeAndStoreKvCuda(const KvPagePool& pool, const RopeKvArgs& args,
                                const CudaOptions& options = {});

// out[r, i] (bf16) = silu(gate_up[r, i]) · gate_up[r, n + i] for i < n, where gate_up is
// [m, 2n] fp32 (the fused gate and up projections).
absl::Status SiluMulToBf16Cuda(const float* gate_up, uint32_t m, uint32_t n, uint16_t* out,
                               const CudaOptions& options = {});

}  // namespace kvtier::kernels

#endif  // KVTIER_KERNELS_DECODER_OPS_H_
