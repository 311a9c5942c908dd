// Chained block keys (DESIGN.md §2).
//
//   ns        = SHA-256("kvtier.ns.v1" ‖ u32le(|tenant|) ‖ tenant ‖ u64le(layout fingerprint)
//                       ‖ u32le(|salt|) ‖ salt)
//   key(0)    = SHA-256(ns ‖ u32le tokens of block 0)
//   key(i)    = SHA-256(key(i-1) ‖ u32le tokens of block i)
//
// A block's key therefore names its whole prefix, its tenant and its layout: two tenants
// never derive the same key, and equal keys mean equal prefixes. Only full blocks are
// keyed. The server derives keys itself from the caller's authenticated tenant; clients
// use the same functions for routing and sharding. Pure functions; thread-safe.
#ifndef KVTIER_CACHE_STORE_BLOCK_KEY_H_
#define KVTIER_CACHE_STORE_BLOCK_KEY_H_

#include <array>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace kvtier {

struct BlockKey {
  static constexpr size_t kSize = 32;
  std::array<uint8_t, kSize> bytes{};

  // INVALID_ARGUMENT unless `raw` is exactly kSize bytes.
  static absl::StatusOr<BlockKey> FromBytes(std::string_view raw);
  std::string_view AsBytes() const {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
  }
  std::string ToHex() const;
  // First 8 hex digits, for logs and messages.
  std::string ShortHex() const;

  friend bool operator==(const BlockKey& a, const BlockKey& b) = default;
  template <typename H>
  friend H AbslHashValue(H h, const BlockKey& k) {
    // The key is already a uniform digest: its first 8 bytes are as good as any hash.
    uint64_t prefix;
    std::memcpy(&prefix, k.bytes.data(), sizeof(prefix));
    return H::combine(std::move(h), prefix);
  }
};

// The namespace key (key "-1" of the chain).
BlockKey NamespaceKey(std::string_view tenant, uint64_t layout_fingerprint, std::string_view salt);

// Key of the block that follows `parent` and holds `block_tokens`.
BlockKey NextBlockKey(const BlockKey& parent, std::span<const uint32_t> block_tokens);

// Keys of the first min(max_blocks, tokens.size() / tokens_per_block) full blocks.
// REQUIRES: tokens_per_block > 0
std::vector<BlockKey> ChainBlockKeys(const BlockKey& ns, std::span<const uint32_t> tokens,
                                     uint32_t tokens_per_block, size_t max_blocks = SIZE_MAX);

}  // namespace kvtier

#endif  // KVTIER_CACHE_STORE_BLOCK_KEY_H_
