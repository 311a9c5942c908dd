// EvictionPolicy: decides which evictable block leaves a full tier first, and how likely a
// block is to be used again (which the store uses to filter demotions to the SSD tier).
//
// One policy instance serves one tier. The store reports, for each block in the tier:
//   OnResident  the block entered the tier (committed, promoted, demoted in, restored);
//   OnAccess    a hit on it (Lookup match or Put of an existing block);
//   SetEvictable whether it may be evicted now (committed, no lease, no reader, not pinned,
//               and, for a policy with leaves_only(), no cached child in this tier);
//   OnLeave     it left the tier; `evicted` tells an eviction/demotion from a removal.
// Victim() names only blocks currently evictable. Blocks are named by dense handles in
// [0, capacity) given at construction, so policies keep per-block state in arrays.
//
// Partitions: the store files each block in a partition and asks for victims by partition
// (VictimOf), comparing partitions' victims with EvictsBefore. A tier holds blocks of many
// sizes in size classes (cache_store/slab_allocator.h); a slot freed in one class does not
// fit a block of another, so each class has its partitions; with tenant quotas each
// (class, tenant) pair has one (cache_store/tenant_ledger.h). The policy's learning and its
// clock are shared by all partitions: a partition only restricts where a victim is sought.
// A partition that must make room within its own share (a tenant held at its guarantee or
// at its limit) asks OwnVictimOf, which a policy may order on the partition's own clock.
//
// Every call is O(1) or O(log n). Not thread-safe: the store calls it under its mutex.
#ifndef KVTIER_CACHE_STORE_EVICTION_POLICY_H_
#define KVTIER_CACHE_STORE_EVICTION_POLICY_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace kvtier {

// What the store knows about a block when it reports it.
struct BlockTraits {
  uint64_t key_fingerprint = 0;  // first 8 bytes of the block key
  uint32_t depth = 0;            // block index in its prompt (0: first block)
  bool prompt_tail = false;      // the padded partial last block of a prompt
  // Blocks after it in the Put that stored it (0: the Put's last; capped at 255). The last
  // blocks of a prompt come back less often than its body: a follow-up turn extends them.
  uint8_t blocks_to_end = 0;
  // Tokens the request generated after its prompt, as the client that stored the block
  // said (PutHeader.output_tokens; 0: not said). A workload mixes requests whose prompts
  // come back (an agent's tool call, a short answer the user follows up) with requests
  // that end a session (a long final answer); the length of the output tells them apart
  // where nothing in the prompt does (docs/policy.md, "T2 admission").
  uint32_t output_tokens = 0;
  // Where the Put that stored it began its new blocks (PutOrigin, below).
  uint8_t origin = 0;
  uint32_t partition = 0;  // the store's; fixed while the block is resident
  // Whose workload the block's class estimates and ghost history follow: the store's id
  // for its tenant's blocks of its size class (with quotas, the partition); fixed while
  // the block is resident.
  uint32_t learner = 0;
  // How many blocks of this size the tier holds (0: unknown). The adaptive policy measures
  // a block's extra life in turnovers of its tier at its size: for a tier of one layout,
  // its capacity in blocks; across sizes, smaller blocks get more ticks of life for the
  // same reuse probability (their value per byte is higher).
  uint32_t tier_capacity = 0;
  // It has shown reuse: a hit since it was stored, or a Put of it after it was evicted
  // (the SSD tier's segmented LRU protects such blocks, cache_store/slru_policy.h).
  bool reused = false;
};

// Where the Put that stored a block began its new blocks: a prompt that continues a cached
// prompt to its end (a conversation's next turn, an agent's next step: its parent block
// was the last, or the last full, block of the Put that stored it) comes back far more
// often than a prompt that branches off a shared prefix (a system prompt, a document),
// and a prompt stored from its first block is a third kind (docs/policy.md).
// kOther also covers a Put whose first new block's parent is not cached.
enum PutOrigin : uint8_t { kOriginOther = 0, kOriginRoot = 1, kOriginContinuation = 2 };
inline constexpr int kPutOrigins = 3;

// The output length in the buckets the policies learn by: 0 not said | 1-31 (a tool call,
// a classification, a short answer) | 32-127 | 128-511 | 512+ (a long answer).
inline constexpr int kOutputTokensBuckets = 5;
inline int OutputTokensBucket(uint32_t output_tokens) {
  if (output_tokens == 0) return 0;
  if (output_tokens < 32) return 1;
  if (output_tokens < 128) return 2;
  if (output_tokens < 512) return 3;
  return 4;
}

class EvictionPolicy {
 public:
  virtual ~EvictionPolicy() = default;

  virtual std::string_view name() const = 0;
  // True when the policy evicts only blocks without a cached child (the store then keeps
  // parents with cached children out of the evictable set).
  virtual bool leaves_only() const = 0;

  // REQUIRES: handle < capacity and not resident.
  virtual void OnResident(uint32_t handle, const BlockTraits& traits) = 0;
  // REQUIRES: handle resident.
  virtual void OnAccess(uint32_t handle, const BlockTraits& traits) = 0;
  // REQUIRES: handle resident. No-op when the state does not change.
  virtual void SetEvictable(uint32_t handle, bool evictable) = 0;
  // No-op when the handle is not resident.
  virtual void OnLeave(uint32_t handle, bool evicted) = 0;
  // A reference to a block this tier does not hold, served by the tier below without
  // bringing the block here (a T2 hit served in place): `traits` as this tier would rank
  // it, `access_count` its accesses so far, this one included. A policy that learns from
  // the stream of references sees the whole stream this way, not only the part its own
  // choices left to it. Default: ignored.
  virtual void OnReferenceBelow(const BlockTraits& traits, uint32_t access_count) {
    (void)traits;
    (void)access_count;
  }

  virtual bool IsResident(uint32_t handle) const = 0;
  virtual bool IsEvictable(uint32_t handle) const = 0;
  // The block to evict next (not removed), or nullopt when nothing is evictable: of all
  // partitions, and of one partition.
  virtual std::optional<uint32_t> Victim() const = 0;
  virtual std::optional<uint32_t> VictimOf(uint32_t partition) const = 0;
  // The block a partition gives up when it must make room for itself within its own share
  // (a tenant held at its guarantee or at its limit): the partition is then a cache of its
  // own, and a policy may order it on the partition's own clock rather than the tier's, so
  // that other tenants' traffic does not change which of its blocks goes. Default:
  // VictimOf.
  virtual std::optional<uint32_t> OwnVictimOf(uint32_t partition) const {
    return VictimOf(partition);
  }
  // Whether evictable block `a` goes before evictable block `b` (of any partitions).
  virtual bool EvictsBefore(uint32_t a, uint32_t b) const = 0;
  // Estimated probability in [0, 1] that this resident block is used again.
  virtual double ReuseScore(uint32_t handle) const = 0;
  // Evictable blocks.
  virtual size_t evictable_size() const = 0;
  // Turnovers of life a block sure to return gets over one sure not to, now (the adaptive
  // policy's tuned weight); 0 for a policy without one.
  virtual double bonus_weight() const { return 0.0; }
};

// Policies by name: "lru", "slru" (SlruPolicy), "adaptive", and "adaptive:-INGREDIENT,..."
// (AdaptivePolicy with ingredients turned off, for ablations: AdaptivePolicy::ParseAblation).
// `handles` bounds the handle values; the tier holds at most `tier_blocks` blocks at once.
// INVALID_ARGUMENT for an unknown name.
absl::StatusOr<std::unique_ptr<EvictionPolicy>> MakeEvictionPolicy(std::string_view name,
                                                                   uint32_t handles,
                                                                   uint32_t tier_blocks);

}  // namespace kvtier

#endif  // KVTIER_CACHE_STORE_EVICTION_POLICY_H_
