// KvLayout: the shape of one KV block, the payload size it implies, and its fingerprint.
//
// A block payload holds all layers of K and V for `tokens_per_block` tokens, layer-major:
//   for layer in [0, num_layers): K[tokens][kv_heads][head_dim], V[tokens][kv_heads][head_dim]
// so one layer of one block (its K then V) is one contiguous range of LayerBytes().
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
  uint32_t num_kv_heads = 0;
  uint32_t head_dim = 0;
  DType dtype = DType::kBf16;
  uint32_t tokens_per_block = 0;

  // OK, or INVALID_ARGUMENT naming the first bad field.
  absl::Status Validate() const;

  // REQUIRES: Validate().ok()
  uint64_t BlockBytes() const;
  // Bytes of one layer (K and V) of one block. REQUIRES: Validate().ok()
  uint64_t LayerBytes() const;
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

}  // namespace kvtier

#endif  // KVTIER_CACHE_STORE_KV_LAYOUT_H_
