// KvLayout: the shape of one KV block, the payload size it implies, and its fingerprint.
//
// A block payload holds every layer of `tokens_per_block` tokens, layer-major, so one layer
// of one block is one contiguous range of LayerBytes(). Two kinds of layout:
//  - K/V heads (kKvHeads; Llama, Mistral, Qwen...): per layer
//      K[tokens][kv_heads][head_dim], V[tokens][kv_heads][head_dim]            (dtype)
//    and, for the quantized dtypes (fp8_e4m3, int8) only, their scales right after:
//      K_scale[kv_heads], V_scale[kv_heads]                                     (fp32)
//    (the per-block-per-head scales of kernels/kv_quantize.h: x = stored * scale).
//  - MLA (kMla; DeepSeek-V2/V3): one compressed latent per token per layer, no K and V:
//      latent[tokens][kv_lora_rank + rope_dim]                                  (dtype)
//    and, quantized, two fp32 scales after it: {scale of the kv_lora_rank part, scale of
//    the rope_dim part}.
// LayerBytes() = element bytes + scale bytes; BlockBytes() = LayerBytes() * num_layers. So
// a compressed block is one self-contained buffer in every tier and on the wire, and its
// per-layer checksums cover the scales.
//
// Blocks are shared only between requests whose layouts have equal fingerprints. The
// fingerprint covers every field, so two models with different shapes, dtypes or ids
// never share blocks. Value type; thread-compatible.
#ifndef KVTIER_CACHE_STORE_KV_LAYOUT_H_
#define KVTIER_CACHE_STORE_KV_LAYOUT_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace kvtier {

enum class LayoutKind : uint8_t {
  kKvHeads = 1,
  kMla = 2,
};

enum class DType : uint8_t {
  kFp32 = 1,
  kFp16 = 2,
  kBf16 = 3,
  kFp8E4M3 = 4,
  kInt8 = 5,
};

// Bytes per element; 0 for a value outside the enum.
uint32_t DTypeBytes(DType dtype);
const char* DTypeName(DType dtype);
// fp8_e4m3 and int8: elements that carry scales in the payload.
constexpr bool IsQuantized(DType dtype) {
  return dtype == DType::kFp8E4M3 || dtype == DType::kInt8;
}

// Upper bounds that keep a malformed layout from asking for absurd allocations.
inline constexpr uint32_t kMaxLayers = 1024;
inline constexpr uint32_t kMaxKvHeads = 1024;
inline constexpr uint32_t kMaxHeadDim = 4096;
inline constexpr uint32_t kMaxTokensPerBlock = 65536;
inline constexpr uint64_t kMaxBlockBytes = uint64_t{1} << 30;
inline constexpr size_t kMaxModelIdLength = 256;

struct KvLayout {
  std::string model_id;
  uint32_t num_layers = 0;
  uint32_t num_kv_heads = 0;  // kKvHeads only (0 for kMla)
  uint32_t head_dim = 0;      // kKvHeads only (0 for kMla)
  DType dtype = DType::kBf16;
  uint32_t tokens_per_block = 0;
  LayoutKind kind = LayoutKind::kKvHeads;
  uint32_t kv_lora_rank = 0;  // kMla only: the compressed K/V latent's width
  uint32_t rope_dim = 0;      // kMla only: the decoupled rotary key's width

  // OK, or INVALID_ARGUMENT naming the first bad field.
  absl::Status Validate() const;

  // REQUIRES: Validate().ok()
  uint64_t BlockBytes() const;
  // Bytes of one layer of one block: elements then scales. REQUIRES: Validate().ok()
  uint64_t LayerBytes() const;
  // The element part of LayerBytes(): K and V, or the latent.
  uint64_t LayerElementBytes() const;
  // The scale part of LayerBytes() (0 unless the dtype is quantized): fp32 scales for K
  // and V of each KV head, or for the latent's two parts.
  uint64_t LayerScaleBytes() const;
  bool quantized() const { return IsQuantized(dtype); }
  // 64-bit digest (SHA-256 prefix) of every field. REQUIRES: Validate().ok()
  uint64_t Fingerprint() const;

  std::string DebugString() const;
};

// The layout of Llama-3-8B (32 layers, 8 KV heads, head_dim 128): with bf16 and 16 tokens
// per block, 2 MiB blocks. The default of the demo and kvtierctl, and the shape benchmarks
// and tests use for "real-sized" blocks.
inline KvLayout Llama3_8BLayout(DType dtype = DType::kBf16, uint32_t tokens_per_block = 16) {
  return KvLayout{.model_id = "llama-3-8b",
                  .num_layers = 32,
                  .num_kv_heads = 8,
                  .head_dim = 128,
                  .dtype = dtype,
                  .tokens_per_block = tokens_per_block};
}

// DeepSeek-V3's MLA cache (61 layers, kv_lora_rank 512, rope_dim 64): with bf16 and 16
// tokens per block, 1,124,352-byte blocks.
inline KvLayout DeepSeekV3MlaLayout(DType dtype = DType::kBf16, uint32_t tokens_per_block = 16) {
  return KvLayout{.model_id = "deepseek-v3",
                  .num_layers = 61,
                  .dtype = dtype,
                  .tokens_per_block = tokens_per_block,
                  .kind = LayoutKind::kMla,
                  .kv_lora_rank = 512,
                  .rope_dim = 64};
}

}  // namespace kvtier

#endif  // KVTIER_CACHE_STORE_KV_LAYOUT_H_
