#include "tests/cache_store/test_blocks.h"

#include <cstring>

#include "cache_store/checksum.h"

namespace kvtier::testing {

KvLayout SmallLayout() {
  return KvLayout{.model_id = "tiny",
                  .num_layers = 2,
                  .num_kv_heads = 2,
                  .head_dim = 16,
                  .dtype = DType::kFp16,
                  .tokens_per_block = 4};
}

BlockStoreOptions SmallStoreOptions(uint32_t slots, Clock* clock) {
  BlockStoreOptions o;
  o.t1 = {.capacity_bytes = uint64_t{slots} * 4096,
          .min_slot_bytes = 4096,
          .lock_mode = MemoryLockMode::kNone};
  o.clock = clock;
  return o;
}

std::vector<uint32_t> Tokens(size_t n, uint32_t seed) {
  std::vector<uint32_t> t(n);
  for (size_t i = 0; i < n; ++i) t[i] = seed * 100003u + static_cast<uint32_t>(i);
  return t;
}

std::vector<BlockKey> KeysOf(std::string_view tenant, const KvLayout& layout,
                             const std::vector<uint32_t>& tokens, std::string_view salt) {
  return ChainBlockKeys(NamespaceKey(tenant, layout.Fingerprint(), salt), tokens,
                        layout.tokens_per_block);
}

std::vector<uint8_t> PayloadFor(const BlockKey& key, uint64_t size) {
  uint64_t x;
  std::memcpy(&x, key.bytes.data(), sizeof(x));
  std::vector<uint8_t> out(size);
  for (uint64_t i = 0; i < size; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    out[i] = static_cast<uint8_t>(x >> 56);
  }
  return out;
}

std::vector<uint8_t> PayloadsFor(std::string_view tenant, const KvLayout& layout,
                                 const std::vector<uint32_t>& tokens, uint32_t first, uint32_t n) {
  std::vector<BlockKey> keys = KeysOf(tenant, layout, tokens);
  std::vector<uint8_t> all;
  for (uint32_t b = first; b < first + n; ++b) {
    std::vector<uint8_t> p = PayloadFor(keys[b], layout.BlockBytes());
    all.insert(all.end(), p.begin(), p.end());
  }
  return all;
}

std::vector<uint64_t> LayerChecksumsOf(const KvLayout& layout, const std::vector<uint8_t>& payload,
                                       uint32_t n) {
  std::vector<uint64_t> sums(uint64_t{n} * layout.num_layers);
  for (uint32_t i = 0; i < n; ++i) {
    ComputeLayerChecksums(
        payload.data() + i * layout.BlockBytes(), layout.LayerBytes(),
        std::span(sums).subspan(uint64_t{i} * layout.num_layers, layout.num_layers));
  }
  return sums;
}

uint64_t BlockChecksumOf(const KvLayout& layout, const uint8_t* block) {
  std::vector<uint64_t> sums(layout.num_layers);
  return ComputeLayerChecksums(block, layout.LayerBytes(), sums);
}

absl::StatusOr<PutResult> PutBlocks(BlockStore& store, std::string_view tenant,
                                    const KvLayout& layout, const std::vector<uint32_t>& tokens,
                                    uint32_t first, uint32_t n) {
  std::vector<uint8_t> payload = PayloadsFor(tenant, layout, tokens, first, n);
  const std::vector<uint64_t> sums = LayerChecksumsOf(layout, payload, n);
  PutSpec spec{.prompt = {.tenant = tenant, .layout = &layout, .tokens = tokens},
               .first_block = first,
               .num_blocks = n,
               .layer_checksums = sums};
  return store.Put(spec, payload);
}

}  // namespace kvtier::testing
