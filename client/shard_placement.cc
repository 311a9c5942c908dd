#include "client/shard_placement.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "cache_store/checksum.h"

namespace kvtier {
namespace {

// splitmix64's finalizer: a bijection that spreads every input bit over the output.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

std::vector<BlockKey> RoutingKeys(const KvLayout& layout, std::string_view salt,
                                  std::span<const uint32_t> tokens, size_t blocks) {
  const BlockKey ns = NamespaceKey(/*tenant=*/"", layout.Fingerprint(), salt);
  return ChainBlockKeys(ns, tokens, layout.tokens_per_block, blocks);
}

uint64_t ShardNameHash(std::string_view shard_id) {
  return Mix(RangeChecksum(shard_id.data(), shard_id.size()));
}

uint64_t RendezvousWeight(uint64_t shard_hash, const BlockKey& key) {
  // The key is a SHA-256 digest: any 8 of its bytes are uniform. Mixing them with the
  // shard's hash gives each shard an independent weight for the key.
  uint64_t k;
  std::memcpy(&k, key.bytes.data(), sizeof(k));
  return Mix(k ^ Mix(shard_hash + 0x2545f4914f6cdd1dULL));
}

std::vector<uint32_t> RankShards(std::span<const uint64_t> shard_hashes, const BlockKey& key) {
  std::vector<uint64_t> weights(shard_hashes.size());
  for (size_t i = 0; i < shard_hashes.size(); ++i) {
    weights[i] = RendezvousWeight(shard_hashes[i], key);
  }
  std::vector<uint32_t> order(shard_hashes.size());
  std::iota(order.begin(), order.end(), 0u);
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    return weights[a] != weights[b] ? weights[a] > weights[b] : a < b;
  });
  return order;
}

}  // namespace kvtier
