// The BlockStore's options, the requests and results of its Lookup and Put, and its Stats
// (cache_store/block_store.h has the store and its contract).
#ifndef KVTIER_CACHE_STORE_BLOCK_STORE_TYPES_H_
#define KVTIER_CACHE_STORE_BLOCK_STORE_TYPES_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cache_store/block_key.h"
#include "cache_store/clock.h"
#include "cache_store/kv_layout.h"
#include "cache_store/pinned_host_tier.h"
#include "cache_store/ssd_tier.h"
#include "cache_store/tenant_ledger.h"
#include "cache_store/tenant_quota.h"
#include "cache_store/tier.h"

namespace kvtier {

struct BlockStoreOptions {
  PinnedHostTierOptions t1;
  // T2 is off when t2.directory is empty. Its largest block is T1's.
  SsdTierOptions t2;
  // Most blocks held at once (T1 + T2): bounds the metadata. 0: the tiers' capacity in
  // their smallest slots, capped at max(65536, T1 / 32 KiB + T2 / 128 KiB). When it is
  // reached, a new block evicts one (T2's victim first).
  uint64_t max_blocks = 0;
  std::string eviction_policy = "adaptive";  // T1
  std::string t2_eviction_policy = "slru";   // T2 (docs/policy.md: why segmented LRU)
  // Which T1 victims are written to T2 (docs/policy.md, "T2 admission"):
  //   kReuse  those that have shown reuse: hit while in T1, promoted from T2, or
  //           Put again after an earlier eviction (ReturnHistory); and first-time blocks
  //           whose T1 ReuseScore() reaches t2_admit_min_score;
  //   kScore  those whose T1 ReuseScore() reaches t2_admit_min_score (the default until
  //           2026-12-03);
  //   kPredict (default) those that have shown reuse (as kReuse), and the others when
  //           their learned probability of being requested again (ReturnPredictor: per
  //           class, within kPredictHorizonT1Turnovers turnovers of T1) reaches
  //           t2_admit_min_return;
  //   kAll    every victim.
  enum class T2Admission { kReuse, kScore, kAll, kPredict };
  // The default writes fewer blocks than kScore on every workload measured, at a hit rate
  // higher on some and up to 0.2 points lower on others (both promoting on every read);
  // with hits served in place (t2_promote_after_reads, below) it writes a third to 0.6x of
  // what kScore promoting on every read did (docs/policy.md has the trade-off).
  T2Admission t2_admission = T2Admission::kPredict;
  double t2_admit_min_score = 0.05;   // kScore, kReuse
  double t2_admit_min_return = 0.04;  // kPredict
  // kPredict's horizon: a victim that comes back later than this many T1 turnovers (in
  // further victims without shown reuse) counts as one that did not. Memory: about 30
  // bytes per remembered key, so 60 per block T1 holds; with the evicted-key history that
  // shown reuse needs (one key per block the store can hold), well under 0.1% of the
  // cached bytes for KV blocks of 64 KiB and more.
  static constexpr uint64_t kPredictHorizonT1Turnovers = 2;
  // A T2 block promoted to T1 keeps its T2 copy (valid on disk, pinned in T2 while the
  // block is in T1), so that its later demotion writes nothing. It takes T2 space from
  // other blocks. false (default): exclusive tiers.
  bool t2_keep_promoted_copy = false;
  // A T2 block moves to T1 on its Nth read from T2 since it was written there (N =
  // t2_promote_after_reads); the reads before are served from T2 in place: the block is
  // read into a T1 slot that the read owns and frees, and stays in T2 (its SLRU entry
  // moves up on the Lookup as for any hit). 1: every read promotes. 0: never. A
  // promotion is what makes a block's next demotion a second SSD write of the same
  // bytes; docs/policy.md has the trade-off against reads.
  uint32_t t2_promote_after_reads = 8;
  // T2 disk I/O runs on threads of its own (cache_store/io_pool.h), never on the caller's:
  // reads of one Fetch in parallel on the readers, demotion writes queued to the writers.
  // A demotion's bytes are copied out of T1 into the write queue; when the queue holds
  // t2_write_queue_bytes (staged in 4 KiB units), a further demotion is dropped instead
  // (counted). 0: T2 capacity / 4, at most 256 MiB (a T2 block whose write is queued gives
  // its slot back only when the write ends, so the queue must stay small next to T2).
  int t2_read_threads = 8;
  int t2_write_threads = 4;
  uint64_t t2_write_queue_bytes = 0;
  absl::Duration default_lease_ttl = absl::Seconds(30);
  absl::Duration max_lease_ttl = absl::Minutes(10);
  absl::Duration default_pin_ttl = absl::Minutes(10);
  absl::Duration max_pin_ttl = absl::Hours(24);
  size_t max_active_leases = size_t{1} << 20;
  size_t event_log_capacity = size_t{1} << 16;
  // Longest prompt accepted by Lookup and Put.
  size_t max_prompt_tokens = size_t{1} << 21;
  // Per-tenant guarantees and limits in T1 and T2 (cache_store/tenant_quota.h). The default
  // (none) keeps one shared victim order per size class.
  TenantQuotas quotas;
  Clock* clock = nullptr;  // nullptr: Clock::Real()
};

// "reuse", "score", "all" (BlockStoreOptions::T2Admission); INVALID_ARGUMENT otherwise.
absl::StatusOr<BlockStoreOptions::T2Admission> ParseT2Admission(std::string_view name);
std::string_view T2AdmissionName(BlockStoreOptions::T2Admission admission);

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
  // Report every cached full block of the prompt (`present`), not only the longest cached
  // prefix: a shard of a cluster holds a scattered subset of a prompt's blocks.
  bool report_present = false;
};

struct LookupResult {
  uint32_t total_blocks = 0;
  // The longest cached prefix of the prompt, in blocks.
  uint32_t prefix_blocks = 0;
  // The blocks described (and leased): the cached prefix, or with report_present every
  // cached block, in prompt order; `present` holds their indices in the prompt then.
  std::vector<BlockKey> keys;
  std::vector<Tier> tiers;
  std::vector<uint32_t> present;
  uint64_t lease_id = 0;
  absl::Duration lease_ttl = absl::ZeroDuration();
  uint64_t block_bytes = 0;
  uint32_t matched_blocks() const { return prefix_blocks; }
};

// Which blocks of a prompt a Put carries.
struct PutSpec {
  PromptRef prompt;
  uint32_t first_block = 0;
  uint32_t num_blocks = 0;
  // Empty, or the carried blocks' indices in the prompt (strictly ascending; then
  // num_blocks equals their count and first_block is 0) instead of the run
  // [first_block, first_block + num_blocks).
  std::span<const uint32_t> block_indices;
  // Empty, or the layer checksums (cache_store/checksum.h) of every carried block, block
  // by block (num_blocks x num_layers), that the payload must match.
  std::span<const uint64_t> layer_checksums;
  // The last carried block is the prompt's partial tail, padded to a full block (engines
  // that store it say so; the policy expects such blocks to come back rarely).
  bool last_block_partial = false;
  // Tokens the request generated after the prompt (PutHeader.output_tokens; 0: not said).
  // A hint for T2 admission (BlockTraits::output_tokens), never used for correctness.
  uint32_t output_tokens = 0;
};

// What blocks of one layout occupy.
struct LayoutUsage {
  uint64_t layout_fingerprint = 0;
  uint64_t block_bytes = 0;
  uint64_t t1_blocks = 0;
  uint64_t t1_bytes = 0;  // payload
  uint64_t t2_blocks = 0;
  uint64_t t2_bytes = 0;
};

struct BlockStoreStats {
  uint64_t t1_capacity_bytes = 0;
  // The smallest slot, and how many blocks of at most that size the tier holds (an upper
  // bound on its capacity in blocks; exact for a store of one layout whose blocks are
  // that size).
  uint64_t t1_slot_bytes = 0;
  uint64_t t1_capacity_blocks = 0;
  uint64_t max_block_bytes = 0;
  uint64_t t1_slab_bytes = 0;
  uint64_t t1_slabs = 0;
  uint64_t t1_free_slabs = 0;
  uint64_t t1_used_blocks = 0;
  uint64_t t1_used_bytes = 0;       // payload
  uint64_t t1_allocated_bytes = 0;  // the slots the payload occupies (and reserved ones)
  uint64_t max_blocks = 0;
  uint64_t t1_reserved_blocks = 0;
  bool t1_locked = false;
  std::string t1_lock_method;
  bool t2_enabled = false;
  bool t2_direct_io = false;
  uint64_t t2_capacity_bytes = 0;
  uint64_t t2_slot_bytes = 0;  // as for T1; a T2 slot includes a 4 KiB record header
  uint64_t t2_capacity_blocks = 0;
  uint64_t t2_slab_bytes = 0;
  uint64_t t2_slabs = 0;
  uint64_t t2_free_slabs = 0;
  uint64_t t2_used_blocks = 0;
  uint64_t t2_used_bytes = 0;
  uint64_t t2_allocated_bytes = 0;
  uint64_t lookups = 0;
  uint64_t lookup_requested_blocks = 0;
  uint64_t lookup_hit_blocks = 0;
  uint64_t lookup_hit_blocks_t1 = 0;
  uint64_t lookup_hit_blocks_t2 = 0;
  uint64_t lookup_requested_tokens = 0;
  uint64_t lookup_hit_tokens = 0;
  // Presence lookups (a sharded client's; LookupOptions::report_present) are not hit-rate
  // samples of this store: what one shard holds of a prompt is not the cluster's hit.
  uint64_t presence_lookups = 0;
  uint64_t presence_requested_blocks = 0;
  uint64_t presence_held_blocks = 0;
  uint64_t put_stored_blocks = 0;
  // Of put_stored_blocks, those whose Put reported the request's output length
  // (PutSpec::output_tokens > 0): how much of the traffic gives T2 admission that signal.
  uint64_t put_output_reported_blocks = 0;
  uint64_t put_existing_blocks = 0;
  uint64_t put_bytes = 0;
  uint64_t put_failures = 0;
  uint64_t fetched_blocks = 0;
  uint64_t fetched_bytes = 0;
  uint64_t evicted_blocks = 0;
  uint64_t deleted_blocks = 0;
  uint64_t checksum_failures = 0;
  uint64_t checksum_failures_t2 = 0;
  // T2 movement and health.
  uint64_t demoted_blocks = 0;
  uint64_t demotion_rejected_blocks = 0;  // kept off the SSD by the admission filter
  // Demotions that wrote nothing: the block's T2 copy from its promotion was still valid.
  uint64_t clean_demotions = 0;
  uint64_t t2_copy_blocks = 0;  // T1 blocks that hold such a copy now
  // Demotions dropped because the write queue was full, and the bytes queued now.
  uint64_t t2_write_queue_drops = 0;
  uint64_t t2_write_queue_bytes = 0;
  uint64_t promoted_blocks = 0;
  uint64_t t2_evicted_blocks = 0;
  uint64_t t2_write_errors = 0;
  uint64_t t2_read_errors = 0;
  uint64_t t2_bytes_written = 0;
  uint64_t t2_bytes_read = 0;
  uint64_t t2_writes = 0;
  uint64_t t2_reads = 0;
  double t2_write_seconds = 0;
  double t2_read_seconds = 0;
  uint64_t t2_recovered_blocks = 0;
  uint64_t t2_recovery_drops = 0;
  // Slabs moved from one size class to another, and the blocks evicted to empty them.
  uint64_t t1_slab_moves = 0;
  uint64_t t1_slab_move_evictions = 0;
  uint64_t t2_slab_moves = 0;
  // New blocks that evicted one because max_blocks was reached.
  uint64_t block_limit_evictions = 0;
  uint64_t active_leases = 0;
  uint64_t pinned_blocks = 0;
  // By layout, the most bytes first (at most kMaxLayoutsReported).
  std::vector<LayoutUsage> layouts;
  // By tenant, the most bytes first (at most kMaxTenantsReported), and how many hold any.
  std::vector<TenantUsage> tenants;
  uint64_t tenants_holding = 0;
  bool quotas_enabled = false;
  std::string eviction_policy;
  std::string t2_eviction_policy;
  // T1's policy's bonus weight now (EvictionPolicy::bonus_weight).
  double t1_bonus_weight = 0;
};

}  // namespace kvtier

#endif  // KVTIER_CACHE_STORE_BLOCK_STORE_TYPES_H_
