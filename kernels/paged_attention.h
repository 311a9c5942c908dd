// Paged decode attention: one new query token per sequence against that sequence's K/V
// pages, one layer at a time. This header is the interface; paged_attention_cpu.cc is the
// multithreaded CPU implementation (the reference the GPU kernel is tested against, and
// the path used on machines without a GPU); paged_attention_cuda.cu is the GPU kernel.
//
// Page layout (DESIGN.md §2): a page is one block payload, layer-major:
//   page = for layer in [0, num_layers): K[tokens_per_page][num_kv_heads][head_dim],
//                                        V[tokens_per_page][num_kv_heads][head_dim]
// page p starts at pages + p * PageBytes(); so a block restored from the store is one
// contiguous copy into a page.
//
// Page table: CSR. Sequence s owns pages page_indices[page_indptr[s] .. page_indptr[s+1])
// in token order; its last page may be partly filled: seq_lens[s] tokens in all, and the
// sequence must own exactly ceil(seq_lens[s] / tokens_per_page) pages.
//
// Shapes: q and out [num_seqs][num_q_heads][head_dim] (row-major); lse (optional)
// [num_seqs][num_q_heads], natural log of the softmax denominator (-inf for an empty
// sequence, whose output is zeros). GQA: query head h reads KV head h / (num_q_heads /
// num_kv_heads). Quantized K/V (fp8 e4m3, int8) carry one float scale per page, layer, K or
// V, and KV head, and value = stored * scale. The scales are either a separate array,
//   scales[((page * num_layers + layer) * 2 + kv) * num_kv_heads + head],
// or, with inline_scales, inside each page after each layer's K and V: K_scale[num_kv_heads]
// then V_scale[num_kv_heads] (the store's compressed block format, cache_store/kv_layout.h;
// the layer then spans LayerBytes() including them).
//
// Errors: a clear INVALID_ARGUMENT / OUT_OF_RANGE naming the problem; nothing is written
// to out or lse unless the arguments are valid. The CPU and CUDA implementations take the
// same arguments and accept the same inputs (ValidateDecodeAttention).
#ifndef KVTIER_KERNELS_PAGED_ATTENTION_H_
#define KVTIER_KERNELS_PAGED_ATTENTION_H_

#include <cstdint>

#include "absl/status/status.h"
#include "cache_store/kv_layout.h"
#include "kernels/backend.h"

namespace kvtier::kernels {

struct KvPagePool {
  const void* pages = nullptr;
  uint32_t num_pages = 0;
  uint32_t num_layers = 0;
  uint32_t tokens_per_page = 0;
  uint32_t num_kv_heads = 0;
  uint32_t head_dim = 0;
  DType dtype = DType::kBf16;
  const float* scales = nullptr;  // fp8/int8 only, unless inline_scales
  bool inline_scales = false;     // fp8/int8: the scales are in the pages (see above)

  uint64_t RowBytes() const { return uint64_t{num_kv_heads} * head_dim * DTypeBytes(dtype); }
  // Bytes from a layer's K to its scales (inline_scales).
  uint64_t ScaleOffset() const { return 2 * tokens_per_page * RowBytes(); }
  uint64_t LayerBytes() const {
    return ScaleOffset() + (InlineScales() ? 2 * uint64_t{num_kv_heads} * sizeof(float) : 0);
  }
  bool InlineScales() const { return inline_scales && IsQuantized(dtype); }
  uint64_t PageBytes() const { return num_layers * LayerBytes(); }
};

struct DecodeAttentionArgs {
  const void* q = nullptr;
  DType q_dtype = DType::kBf16;  // fp32, fp16 or bf16
  void* out = nullptr;
  DType out_dtype = DType::kBf16;  // fp32, fp16 or bf16
  float* lse = nullptr;            // optional
  uint32_t num_seqs = 0;
  uint32_t num_q_heads = 0;
  uint32_t layer = 0;
  float softmax_scale = 0;
  const uint32_t* page_indptr = nullptr;   // [num_seqs + 1]
  const uint32_t* page_indices = nullptr;  // [page_indptr[num_seqs]]
  const uint32_t* seq_lens = nullptr;      // [num_seqs]
};

// Head dims the kernels are built for.
bool SupportedHeadDim(uint32_t head_dim);

// Validates everything the kernels rely on (the page table is read on the host).
absl::Status ValidateDecodeAttention(const KvPagePool& pool, const DecodeAttentionArgs& args);

absl::Status PagedDecodeAttentionCpu(const KvPagePool& pool, const DecodeAttentionArgs& args,
                                     const CpuOptions& options = {});

// The GPU kernel (paged_attention_cuda.cu). pool.pages, pool.scales, q, out and lse are
// device memory; page_indptr, page_indices and seq_lens are host arrays (validated there and
// uploaded). REQUIRES pool.pages 16-byte aligned. Asynchronous (kernels/backend.h).
absl::Status PagedDecodeAttentionCuda(const KvPagePool& pool, const DecodeAttentionArgs& args,
                                      const CudaOptions& options = {});

}  // namespace kvtier::kernels

#endif  // KVTIER_KERNELS_PAGED_ATTENTION_H_
