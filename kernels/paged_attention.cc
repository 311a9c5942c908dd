// Argument validation shared by the CPU and CUDA implementations of paged decode attention.
#include "kernels/paged_attention.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "kernels/element_io.h"

namespace kvtier::kernels {

bool SupportedHeadDim(uint32_t head_dim) {
  return head_dim == 64 || head_dim == 128 || head_dim == 256;
}

absl::Status ValidateDecodeAttention(const KvPagePool& pool, const DecodeAttentionArgs& args) {
  if (pool.num_layers == 0 || pool.tokens_per_page == 0 || pool.num_kv_heads == 0) {
    return absl::InvalidArgumentError(
        "the page pool needs num_layers, tokens_per_page and num_kv_heads > 0");
  }
  if (!SupportedHeadDim(pool.head_dim)) {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported head_dim ", pool.head_dim, " (supported: 64, 128, 256)"));
  }
  if (DTypeBytes(pool.dtype) == 0) return absl::InvalidArgumentError("unknown K/V dtype");
  if (IsQuantized(pool.dtype) && pool.scales == nullptr && !pool.inline_scales) {
    return absl::InvalidArgumentError(
        absl::StrCat("K/V dtype ", DTypeName(pool.dtype), " needs per-page, per-head scales"));
  }
  if (!IsActivationType(args.q_dtype) || !IsActivationType(args.out_dtype)) {
    return absl::InvalidArgumentError(absl::StrCat("q and out must be fp32, fp16 or bf16 (got ",
                                                   DTypeName(args.q_dtype), " and ",
                                                   DTypeName(args.out_dtype), ")"));
  }
  if (args.num_seqs == 0) return absl::OkStatus();  // an empty batch is a no-op
  if (args.q == nullptr || args.out == nullptr || args.page_indptr == nullptr ||
      args.seq_lens == nullptr || (pool.pages == nullptr && pool.num_pages > 0)) {
    return absl::InvalidArgumentError("q, out, page_indptr, seq_lens and pages are required");
  }
  if (args.num_q_heads == 0 || args.num_q_heads % pool.num_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("num_q_heads (", args.num_q_heads,
                                                   ") must be a positive multiple of ",
                                                   "num_kv_heads (", pool.num_kv_heads, ")"));
  }
  if (args.layer >= pool.num_layers) {
    return absl::OutOfRangeError(
        absl::StrCat("layer ", args.layer, " of a ", pool.num_layers, "-layer page pool"));
  }
  if (!(args.softmax_scale > 0) || !std::isfinite(args.softmax_scale)) {
    return absl::InvalidArgumentError("softmax_scale must be positive and finite");
  }
  if (args.page_indptr[0] != 0) return absl::InvalidArgumentError("page_indptr[0] must be 0");
  for (uint32_t s = 0; s < args.num_seqs; ++s) {
    const uint32_t begin = args.page_indptr[s];
    const uint32_t end = args.page_indptr[s + 1];
    if (end < begin) {
      return absl::InvalidArgumentError(absl::StrCat("page_indptr decreases at sequence ", s));
    }
    const uint64_t need =
        (uint64_t{args.seq_lens[s]} + pool.tokens_per_page - 1) / pool.tokens_per_page;
    if (end - begin != need) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sequence ", s, " has ", args.seq_lens[s], " tokens, which need ", need, " pages of ",
          pool.tokens_per_page, ", but its page table lists ", end - begin));
    }
    if (end > begin && args.page_indices == nullptr) {
      return absl::InvalidArgumentError("page_indices is required");
    }
    for (uint32_t i = begin; i < end; ++i) {
      if (args.page_indices[i] >= pool.num_pages) {
        return absl::OutOfRangeError(absl::StrCat("sequence ", s, " names page ",
                                                  args.page_indices[i], " of a pool of ",
                                                  pool.num_pages, " pages"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace kvtier::kernels
