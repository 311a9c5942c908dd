// Where a cluster of kvtier-store shards keeps each block: rendezvous (highest random
// weight) hashing of the block's routing key over the shards' names.
//
// Routing keys are the chained block keys (cache_store/block_key.h) of the prompt under a
// namespace without the tenant: a client cannot know the key a store derives from its
// authenticated tenant, and it does not need to, since placement only decides which
// shards are asked. The same prompt, layout and salt land on the same shards from every
// client, and the stores still derive and check the real keys themselves.
//
// Rendezvous hashing moves only the keys a shard gains or loses when shards come and go:
// adding a fourth shard to three moves about a quarter of the keys, all of them to it.
#ifndef KVTIER_CLIENT_SHARD_PLACEMENT_H_
#define KVTIER_CLIENT_SHARD_PLACEMENT_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cache_store/block_key.h"
#include "cache_store/kv_layout.h"

namespace kvtier {

// The routing keys of the prompt's first `blocks` full blocks.
std::vector<BlockKey> RoutingKeys(const KvLayout& layout, std::string_view salt,
                                  std::span<const uint32_t> tokens, size_t blocks);

// The weight of a shard for a key; the shard of the highest weight owns the key.
uint64_t RendezvousWeight(uint64_t shard_hash, const BlockKey& key);
// The hash of a shard's name that RendezvousWeight takes.
uint64_t ShardNameHash(std::string_view shard_id);

// Indices into shard_hashes, highest weight first: the first R are the key's owners.
// Ties (equal weights) are broken by index, so the order is a total one.
std::vector<uint32_t> RankShards(std::span<const uint64_t> shard_hashes, const BlockKey& key);

}  // namespace kvtier

#endif  // KVTIER_CLIENT_SHARD_PLACEMENT_H_
