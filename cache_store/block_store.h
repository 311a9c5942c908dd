// BlockStore: the cache-store engine. Keeps KV blocks in the T1 arena, finds a prompt's
// longest cached prefix, leases, pins, evicts, and reports events. No gRPC in here.
//
// Guarantees (DESIGN.md §4):
//  - A block becomes visible only when its whole payload was written and its XXH3
//    checksum verified (PendingPut::Commit); an abandoned Put leaves no trace.
//  - A block is served (read handles) only after its checksum verifies again; a block
//    that fails is dropped, counted, and reported as DATA_LOSS, never returned.
//  - Blocks with a live lease, a reader, an in-flight Put referring to them, or a pin are
//    never evicted. When nothing is evictable, Put fails with RESOURCE_EXHAUSTED; memory
//    never grows past the arena.
//  - Keys are derived here from the caller's tenant, so one tenant can neither name nor
//    learn of another's blocks; explicit keys of another tenant behave as unknown keys.
//  - Committed blocks never change; Put of an existing key is an idempotent access.
//
// Thread-safe. One mutex guards the metadata; payload bytes are written and hashed
// outside it (a reserved or referenced slot belongs to its holder).
#ifndef KVTIER_CACHE_STORE_BLOCK_STORE_H_
#define KVTIER_CACHE_STORE_BLOCK_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <queue>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cache_store/block_handles.h"
#include "cache_store/block_key.h"
#include "cache_store/clock.h"
#include "cache_store/event_log.h"
#include "cache_store/eviction_policy.h"
#include "cache_store/kv_layout.h"
#include "cache_store/lease_table.h"
#include "cache_store/pinned_host_tier.h"
#include "cache_store/prefix_index.h"
#include "cache_store/tier.h"

namespace kvtier {

struct BlockStoreOptions {
  PinnedHostTierOptions t1;
  std::string eviction_policy = "lru";
  absl::Duration default_lease_ttl = absl::Seconds(30);
  absl::Duration max_lease_ttl = absl::Minutes(10);
  absl::Duration default_pin_ttl = absl::Minutes(10);
  absl::Duration max_pin_ttl = absl::Hours(24);
  size_t max_active_leases = size_t{1} << 20;
  size_t event_log_capacity = size_t{1} << 16;
  // Longest prompt accepted by Lookup and Put.
  size_t max_prompt_tokens = size_t{1} << 21;
  Clock* clock = nullptr;  // nullptr: Clock::Real()
};

// A prompt as the store sees it: who asks, in which key namespace, and its tokens.
struct PromptRef {
  std::string_view tenant;
  const KvLayout* layout = nullptr;
  std::string_view salt;
  std::span<const uint32_t> tokens;
};

struct LookupOptions {
  bool lease = true;
  absl::Duration lease_ttl = absl::ZeroDuration();  // zero: the store's default
};

struct LookupResult {
  uint32_t total_blocks = 0;
  std::vector<BlockKey> keys;  // matched prefix, in prompt order
  std::vector<Tier> tiers;
  uint64_t lease_id = 0;
  absl::Duration lease_ttl = absl::ZeroDuration();
  uint64_t block_bytes = 0;
  uint32_t matched_blocks() const { return static_cast<uint32_t>(keys.size()); }
};

// Which blocks of a prompt a Put carries.
struct PutSpec {
  PromptRef prompt;
  uint32_t first_block = 0;
  uint32_t num_blocks = 0;
  // Empty, or one XXH3-64 per carried block that the payload must match.
  std::span<const uint64_t> checksums;
};

struct BlockStoreStats {
  uint64_t t1_capacity_bytes = 0;
  uint64_t t1_slot_bytes = 0;
  uint64_t t1_capacity_blocks = 0;
  uint64_t t1_used_blocks = 0;
  uint64_t t1_used_bytes = 0;
  uint64_t t1_reserved_blocks = 0;
  bool t1_locked = false;
  std::string t1_lock_method;
  uint64_t lookups = 0;
  uint64_t lookup_requested_blocks = 0;
  uint64_t lookup_hit_blocks = 0;
  uint64_t lookup_requested_tokens = 0;
  uint64_t lookup_hit_tokens = 0;
  uint64_t put_stored_blocks = 0;
  uint64_t put_existing_blocks = 0;
  uint64_t put_bytes = 0;
  uint64_t put_failures = 0;
  uint64_t fetched_blocks = 0;
  uint64_t fetched_bytes = 0;
  uint64_t evicted_blocks = 0;
  uint64_t deleted_blocks = 0;
  uint64_t checksum_failures = 0;
  uint64_t active_leases = 0;
  uint64_t pinned_blocks = 0;
  std::string eviction_policy;
};

class BlockStore {
 public:
  static absl::StatusOr<std::unique_ptr<BlockStore>> Create(const BlockStoreOptions& options);
  ~BlockStore();
  BlockStore(const BlockStore&) = delete;
  BlockStore& operator=(const BlockStore&) = delete;

  // Longest cached prefix of the prompt's full blocks, with a lease on them (when asked
  // and something matched).
  absl::StatusOr<LookupResult> Lookup(const PromptRef& prompt, const LookupOptions& options)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Reserves slots for the carried blocks that are not cached yet (evicting if needed)
  // and protects those that are. The returned PendingPut receives the payload.
  // REQUIRES: the store outlives the PendingPut.
  absl::StatusOr<std::unique_ptr<PendingPut>> BeginPut(const PutSpec& spec)
      ABSL_LOCKS_EXCLUDED(mu_);
  // BeginPut + Write(payload) + Commit.
  absl::StatusOr<PutResult> Put(const PutSpec& spec, std::span<const uint8_t> payload)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Verified read access to the blocks of a live lease of this tenant.
  absl::StatusOr<std::unique_ptr<BlockReadHandle>> ReadLease(std::string_view tenant,
                                                             uint64_t lease_id)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Verified read access to explicit blocks of this tenant.
  absl::StatusOr<std::unique_ptr<BlockReadHandle>> ReadBlocks(std::string_view tenant,
                                                              std::span<const BlockKey> keys)
      ABSL_LOCKS_EXCLUDED(mu_);

  absl::Status Release(std::string_view tenant, uint64_t lease_id) ABSL_LOCKS_EXCLUDED(mu_);
  // Pins every block until now + ttl (zero: default; capped at the maximum). Returns the
  // TTL granted. NOT_FOUND and no change if any key is not a block of this tenant.
  absl::StatusOr<absl::Duration> Pin(std::string_view tenant, std::span<const BlockKey> keys,
                                     absl::Duration ttl) ABSL_LOCKS_EXCLUDED(mu_);
  // Returns how many of the blocks were pinned. NOT_FOUND and no change as for Pin.
  absl::StatusOr<uint32_t> Unpin(std::string_view tenant, std::span<const BlockKey> keys)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Removes the blocks. NOT_FOUND and no change as for Pin.
  absl::StatusOr<uint32_t> Delete(std::string_view tenant, std::span<const BlockKey> keys)
      ABSL_LOCKS_EXCLUDED(mu_);

  BlockStoreStats Stats() const ABSL_LOCKS_EXCLUDED(mu_);
  EventLog& events() { return events_; }
  uint64_t slot_bytes() const { return t1_->slot_bytes(); }

 private:
  friend class PendingPut;
  friend class BlockReadHandle;

  struct Entry {
    enum class State : uint8_t { kFree, kLive, kDropped };
    State state = State::kFree;
    BlockKey key;
    std::optional<BlockKey> parent;
    std::string tenant;
    uint64_t layout_fingerprint = 0;
    uint32_t num_layers = 0;
    uint64_t size = 0;
    uint64_t checksum = 0;
    uint32_t refs = 0;  // leases + readers + Puts that protect it
    absl::Time pinned_until = absl::InfinitePast();
  };

  BlockStore(const BlockStoreOptions& options, std::unique_ptr<PinnedHostTier> t1,
             std::unique_ptr<EvictionPolicy> policy);

  absl::Status ValidatePrompt(const PromptRef& prompt) const;
  absl::Duration ClampTtl(absl::Duration requested, absl::Duration def, absl::Duration max) const;

  // Expires leases and pins whose time has come. Every locked operation starts with it,
  // so within one operation a pin is either live or already swept.
  void Sweep(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Evictable(const Entry& e) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Ref(uint32_t handle) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Unref(uint32_t handle) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FreeSlot(uint32_t handle) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Takes a free slot, evicting the policy's victim if none is free.
  std::optional<uint32_t> AllocateSlot() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Unindexes a live block; its slot is freed now or when its last reference goes.
  void RemoveEntry(uint32_t handle, BlockEvent::Reason reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Handles of this tenant's live blocks, or NOT_FOUND naming the first missing key.
  absl::StatusOr<std::vector<uint32_t>> FindOwned(std::string_view tenant,
                                                  std::span<const BlockKey> keys) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // References the blocks and describes them; verification comes after, unlocked.
  std::unique_ptr<BlockReadHandle> OpenLocked(std::vector<uint32_t> handles)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Verifies every block's checksum; drops the ones that fail and returns DATA_LOSS.
  absl::StatusOr<std::unique_ptr<BlockReadHandle>> VerifyOrDrop(
      std::unique_ptr<BlockReadHandle> read) ABSL_LOCKS_EXCLUDED(mu_);

  // Called by PendingPut and BlockReadHandle.
  absl::StatusOr<PutResult> CommitPut(PendingPut& put) ABSL_LOCKS_EXCLUDED(mu_);
  void AbortPut(PendingPut& put) ABSL_LOCKS_EXCLUDED(mu_);
  void AbortPutLocked(PendingPut& put) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReleaseRead(std::span<const uint32_t> handles) ABSL_LOCKS_EXCLUDED(mu_);

  const BlockStoreOptions options_;
  Clock* const clock_;
  EventLog events_;

  // Allocate/Free need mu_; slot addresses are fixed for the arena's life, so the bytes
  // of a slot one holds are read and written without it.
  const std::unique_ptr<PinnedHostTier> t1_;
  mutable absl::Mutex mu_;
  std::unique_ptr<EvictionPolicy> policy_ ABSL_GUARDED_BY(mu_);
  PrefixIndex index_ ABSL_GUARDED_BY(mu_);
  LeaseTable leases_ ABSL_GUARDED_BY(mu_);
  // Indexed by T1 slot: a committed block's handle is its slot.
  std::vector<Entry> entries_ ABSL_GUARDED_BY(mu_);
  // (pinned_until, handle); stale records are skipped when popped.
  std::priority_queue<std::pair<absl::Time, uint32_t>, std::vector<std::pair<absl::Time, uint32_t>>,
                      std::greater<>>
      pin_expiry_ ABSL_GUARDED_BY(mu_);
  uint64_t used_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t used_blocks_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t reserved_blocks_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t pinned_blocks_ ABSL_GUARDED_BY(mu_) = 0;
  BlockStoreStats counters_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kvtier

#endif  // KVTIER_CACHE_STORE_BLOCK_STORE_H_
