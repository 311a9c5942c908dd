// Helpers for engine tests: a small layout, deterministic prompts, and block payloads
// derived from their keys so that any reader can check the bytes it got.
#ifndef KVTIER_TESTS_CACHE_STORE_TEST_BLOCKS_H_
#define KVTIER_TESTS_CACHE_STORE_TEST_BLOCKS_H_

#include <cstdint>
#include <string_view>
#include <vector>

#include "cache_store/block_store.h"

namespace kvtier::testing {

// 2 layers, 2 KV heads, head_dim 16, fp16, 4 tokens per block: 1 KiB per block.
KvLayout SmallLayout();

// Options for a store of `slots` 4 KiB slots, unlocked, on the given clock.
BlockStoreOptions SmallStoreOptions(uint32_t slots, Clock* clock = nullptr);

// n tokens whose values depend on seed.
std::vector<uint32_t> Tokens(size_t n, uint32_t seed);

// Keys of the prompt's full blocks, as the store derives them.
std::vector<BlockKey> KeysOf(std::string_view tenant, const KvLayout& layout,
                             const std::vector<uint32_t>& tokens, std::string_view salt = "");

// Payload bytes of one block, a pure function of its key.
std::vector<uint8_t> PayloadFor(const BlockKey& key, uint64_t size);

// Concatenated payloads of blocks [first, first + n) of the prompt.
std::vector<uint8_t> PayloadsFor(std::string_view tenant, const KvLayout& layout,
                                 const std::vector<uint32_t>& tokens, uint32_t first, uint32_t n);

// The layer checksums of `n` consecutive blocks of `layout` in `payload`, block by block.
std::vector<uint64_t> LayerChecksumsOf(const KvLayout& layout, const std::vector<uint8_t>& payload,
                                       uint32_t n);
// The block checksum of one block's bytes (cache_store/checksum.h).
uint64_t BlockChecksumOf(const KvLayout& layout, const uint8_t* block);

// Puts blocks [first, first + n) of the prompt with layer checksums; returns the result.
absl::StatusOr<PutResult> PutBlocks(BlockStore& store, std::string_view tenant,
                                    const KvLayout& layout, const std::vector<uint32_t>& tokens,
                                    uint32_t first, uint32_t n);

}  // namespace kvtier::testing

#endif  // KVTIER_TESTS_CACHE_STORE_TEST_BLOCKS_H_
