// BlockStore: the cache-store engine. Keeps KV blocks in the T1 arena and, when
// configured, the T2 SSD slab; finds a prompt's longest cached prefix, leases, pins,
// evicts, demotes and promotes, and reports events. No gRPC in here.
//
// Tiers are exclusive: a block lives in T1 or in T2. A block evicted from T1 is demoted to
// T2 when T2's admission accepts it (by default: it has shown reuse, or ReturnPredictor's
// learned probability that its class comes back reaches t2_admit_min_return), otherwise it
// leaves the store. A T2 block that is read is promoted
// back to T1 (read from disk straight into a T1 slot). Disk I/O never runs under the mutex:
// the thread whose Put or read needs it does it between two locked sections.
//
// Space (block_store_space.cc): each tier's slots come in size classes of slabs
// (cache_store/slab_allocator.h), so blocks of every layout up to the tier's largest share
// it. A block that needs a slot of a full class evicts that class's policy victim, unless
// another class's victim is worth less per byte (its tail block idles longer, weighted by
// its size, by more than kRebalanceMargin): then a whole slab of that class is emptied
// (its blocks demoted or dropped as any victim) and joins the class that needs it.
//
// Tenants (cache_store/tenant_ledger.h): each tenant's payload bytes per tier are counted,
// blocks of Puts in flight included. With quotas (BlockStoreOptions::quotas) a tenant at
// its limit in a tier makes room by evicting its own blocks (its own victim of the size
// class it needs, else of any size), and no allocation evicts another tenant's block when
// that would leave the other tenant below its guarantee; a tenant below its own guarantee
// takes room from other tenants' blocks before it evicts its own (it grows into its share
// even when its blocks are older). Within those bounds victims are chosen as without quotas. A tenant that can neither take a free slot nor evict gets
// RESOURCE_EXHAUSTED naming its limit.
//
// Guarantees (DESIGN.md §4):
//  - A block becomes visible only when its whole payload was written and its XXH3
//    checksum verified (PendingPut::Commit); an abandoned Put leaves no trace.
//  - A block is served only once its bytes verify again: T2 blocks as they are loaded,
//    T1 blocks layer by layer as the reader sends them (BlockReadHandle::Verify/CopyOut).
//    A block that fails is dropped, counted, and reported as DATA_LOSS, never served.
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

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <queue>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cache_store/block_handles.h"
#include "cache_store/block_key.h"
#include "cache_store/block_store_types.h"
#include "cache_store/clock.h"
#include "cache_store/event_log.h"
#include "cache_store/io_pool.h"
#include "cache_store/eviction_policy.h"
#include "cache_store/kv_layout.h"
#include "cache_store/lease_table.h"
#include "cache_store/pinned_host_tier.h"
#include "cache_store/prefix_index.h"
#include "cache_store/return_history.h"
#include "cache_store/return_predictor.h"
#include "cache_store/stale_records.h"
#include "cache_store/ssd_tier.h"
#include "cache_store/tenant_ledger.h"
#include "cache_store/tenant_quota.h"
#include "cache_store/tier.h"

namespace kvtier {

class BlockStore {
 public:
  static constexpr size_t kMaxLayoutsReported = 64;
  static constexpr size_t kMaxTenantsReported = 64;
  // A slab moves to a class only when that class's tail block is worth this many times
  // more per byte than the donor's (hysteresis: slabs do not flap between classes).
  static constexpr double kRebalanceMargin = 2.0;

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

  // The asynchronous forms of ReadLease and ReadBlocks: `done` runs exactly once, on the
  // calling thread when no block needs the disk (or on failure before any read), else on
  // a T2 reader thread once the last disk read of the blocks ends. It must not block.
  using ReadDone =
      absl::AnyInvocable<void(absl::StatusOr<std::unique_ptr<BlockReadHandle>>) &&>;
  void ReadLeaseAsync(std::string_view tenant, uint64_t lease_id, ReadDone done)
      ABSL_LOCKS_EXCLUDED(mu_);
  void ReadBlocksAsync(std::string_view tenant, std::span<const BlockKey> keys, ReadDone done)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Streaming forms: `opened` runs exactly once, on the calling thread, as soon as the
  // blocks are referenced and their disk reads started, with a handle on which T2 blocks
  // become Loaded (or Failed) one by one as their reads end (BlockReadHandle::Loaded,
  // SetListener), so that a reader can send block 0 while block 5 is still on the disk.
  // The handle is shared with the reads until the last one ends. A read whose blocks'
  // layer checksums are not all known yet (a block recovered from T2 and never read since)
  // opens only once every read has ended, as the non-streaming forms do.
  using ReadOpened =
      absl::AnyInvocable<void(absl::StatusOr<std::shared_ptr<BlockReadHandle>>) &&>;
  void ReadLeaseStreaming(std::string_view tenant, uint64_t lease_id, ReadOpened opened)
      ABSL_LOCKS_EXCLUDED(mu_);
  void ReadBlocksStreaming(std::string_view tenant, std::span<const BlockKey> keys,
                           ReadOpened opened) ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until every demotion queued so far is on disk (or failed). For tests and
  // benchmarks; the store never needs it.
  void FlushT2Writes() ABSL_LOCKS_EXCLUDED(mu_);
  // Bytes of demotions queued now, and the most the queue takes.
  uint64_t t2_write_queue_bytes() const ABSL_LOCKS_EXCLUDED(mu_);
  // T2 work in flight that holds slots: the queued demotions' bytes.
  uint64_t t2_io_backlog_bytes() const ABSL_LOCKS_EXCLUDED(mu_);
  uint64_t t2_write_queue_limit() const { return write_queue_limit_; }

  // Verified read access to the blocks of a live lease of this tenant. Waits for the disk;
  // not to be called from a T2 I/O thread.
  absl::StatusOr<std::unique_ptr<BlockReadHandle>> ReadLease(std::string_view tenant,
                                                             uint64_t lease_id)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Verified read access to explicit blocks of this tenant.
  absl::StatusOr<std::unique_ptr<BlockReadHandle>> ReadBlocks(std::string_view tenant,
                                                              std::span<const BlockKey> keys)
      ABSL_LOCKS_EXCLUDED(mu_);

  absl::Status Release(std::string_view tenant, uint64_t lease_id) ABSL_LOCKS_EXCLUDED(mu_);
  // Pins every block until now + ttl (zero: default; capped at the maximum). Returns the
  // TTL granted. NOT_FOUND and no change if any key is not a block of this tenant, unless
  // skip_missing (a shard of a cluster is sent every key): then the blocks it does not hold
  // are skipped and *pinned counts the others.
  absl::StatusOr<absl::Duration> Pin(std::string_view tenant, std::span<const BlockKey> keys,
                                     absl::Duration ttl, bool skip_missing = false,
                                     uint32_t* pinned = nullptr) ABSL_LOCKS_EXCLUDED(mu_);
  // Returns how many of the blocks were pinned. NOT_FOUND and no change as for Pin.
  absl::StatusOr<uint32_t> Unpin(std::string_view tenant, std::span<const BlockKey> keys,
                                 bool skip_missing = false) ABSL_LOCKS_EXCLUDED(mu_);
  // Removes the blocks. NOT_FOUND and no change as for Pin.
  absl::StatusOr<uint32_t> Delete(std::string_view tenant, std::span<const BlockKey> keys,
                                  bool skip_missing = false) ABSL_LOCKS_EXCLUDED(mu_);

  BlockStoreStats Stats() const ABSL_LOCKS_EXCLUDED(mu_);
  // What the eviction and admission policies know of the cached block `key` (its traits in
  // its tier now), or nullopt when it is not cached. For diagnostics and tests.
  std::optional<BlockTraits> TraitsOfKey(const BlockKey& key) ABSL_LOCKS_EXCLUDED(mu_);
  // What one tenant holds and its quota (zero usage when it holds nothing).
  TenantUsage UsageOf(std::string_view tenant) const ABSL_LOCKS_EXCLUDED(mu_);
  EventLog& events() { return events_; }
  uint64_t max_block_bytes() const { return t1_->max_block_bytes(); }

 private:
  friend class PendingPut;
  friend class BlockReadHandle;

  static constexpr uint32_t kNone = UINT32_MAX;
  // The T2 slot owner tag of a stale record (MarkStaleT2).
  static constexpr uint32_t kStaleOwner = UINT32_MAX - 1;

  class StagedBlock;
  struct Entry {
    // kMoving: being written to T2; out of the index and the policies until it lands.
    enum class State : uint8_t { kFree, kLive, kDropped, kMoving };
    State state = State::kFree;
    Tier tier = Tier::kHostDram;
    uint32_t slot = kNone;  // in its tier
    BlockKey key;
    std::optional<BlockKey> parent;
    std::string tenant;
    uint32_t tenant_id = kNone;  // in ledger_, referenced while the entry is not free
    uint64_t layout_fingerprint = 0;
    uint32_t num_layers = 0;
    uint32_t depth = 0;
    bool prompt_tail = false;
    uint8_t blocks_to_end = 0;  // blocks after it in the Put that stored it (capped)
    uint8_t origin = kOriginOther;  // PutOrigin of the Put that stored it

    uint32_t output_tokens = 0;  // as the Put that stored it said (PutSpec::output_tokens)
    // Reuse shown, for T2 admission: hits while resident (saturating), and whether it was
    // Put again after an eviction dropped it (ReturnHistory).
    uint8_t hits = 0;
    bool returned = false;
    // Reads of it from T2 since it entered T2 (saturating): t2_promote_after_reads.
    uint8_t t2_served = 0;
    uint64_t size = 0;
    uint64_t checksum = 0;
    // One per layer. Empty for a block recovered from T2 until it is first read (the read
    // computes them while it verifies the block checksum).
    std::vector<uint64_t> layer_sums;
    uint32_t refs = 0;  // leases + readers + Puts that protect it
    absl::Time pinned_until = absl::InfinitePast();
    // Prefix tree: the parent entry this one is counted in (valid while the parent's
    // generation is unchanged), and cached children per tier.
    uint32_t parent_handle = kNone;
    uint32_t parent_generation = 0;
    uint32_t generation = 0;
    std::array<uint32_t, 3> children{};  // indexed by Tier
    uint64_t last_access = 0;            // access_tick_ when it was last stored or hit
    // Disk reads of this block's T2 slot in flight. When the block is promoted while
    // others still read the old slot, the slot is retired and released by the last one.
    uint32_t t2_reads = 0;
    std::vector<uint32_t> retired_t2_slots;  // stale (RetireT2Slot) once released
    bool deleted = false;  // removed by a Delete: its released T2 slots are invalidated
    // A T1 block's valid copy in T2 (kept from its promotion; BlockStoreOptions::
    // t2_keep_promoted_copy): pinned, outside the T2 policy, charged to the tenant's T2.
    uint32_t t2_copy = kNone;
    // A T2 block whose write is still queued: its bytes, which readers use until the
    // write ends. Writes in flight of this block (each also counts in t2_reads): the
    // entry is freed only after them, but it may be evicted, promoted or deleted meanwhile.
    std::shared_ptr<const StagedBlock> pending;
    uint32_t writes = 0;
  };

  // Memory a queued demotion of a block of `size` bytes takes (O_DIRECT-aligned).
  static uint64_t StagedBytes(uint64_t size) {
    return (size + SsdTier::kAlign - 1) / SsdTier::kAlign * SsdTier::kAlign;
  }
  // A demoted block's bytes, copied out of T1, on their way to T2 (O_DIRECT-aligned).
  class StagedBlock {
   public:
    explicit StagedBlock(uint64_t size);
    ~StagedBlock();
    StagedBlock(const StagedBlock&) = delete;
    StagedBlock& operator=(const StagedBlock&) = delete;
    uint8_t* data() const { return data_; }
    uint64_t size() const { return size_; }

   private:
    uint8_t* data_;
    uint64_t size_;
  };

  // A T1 victim on its way to T2. Its bytes stay where they are in T1 until the caller
  // copies them into `staging` (RunDemotions, before it uses the slot: in the slot handed
  // to the caller, or in a slab held by the caller's Reservation); the write is queued
  // after (FinishDemotions).
  struct Demotion {
    uint32_t handle;
    const uint8_t* source;
    uint32_t t2_slot;
    SsdRecord record;
    absl::Status status;
    std::shared_ptr<StagedBlock> staging;
  };
  // What one operation's T1 allocations set in motion: the demotions to run before it
  // writes into its slots, and the slabs it emptied for another class (held until the
  // demotions that read them are done).
  struct Reservation {
    std::vector<Demotion> demotions;
    std::vector<uint32_t> held_slabs;
    // T1 slots of demoted blocks this operation does not use (a tenant at its limit evicted
    // a block of another size): freed once the demotions that read them are done.
    std::vector<uint32_t> free_after;
    bool empty() const { return demotions.empty() && held_slabs.empty() && free_after.empty(); }
  };
  // A T2 block being promoted into a reserved T1 slot.
  struct Promotion {
    size_t view;  // index in the read handle
    uint32_t handle;
    uint32_t t1_slot;  // kNone: no T1 room, read into a staging buffer instead
    uint32_t t2_slot;
    // The block moves into t1_slot when verified; false: it stays in T2 and the read owns
    // t1_slot (BlockStoreOptions::t2_promote_after_reads).
    bool promote = true;
    // The block's queued write (Entry::pending): its bytes are copied, not read.
    std::shared_ptr<const StagedBlock> staged;
    uint8_t* dst = nullptr;
    absl::Status status;
    bool verified = false;  // read and verified (SettleLoaded)
    bool dropped = false;   // failed in a streaming read: dropped and counted at once
    double seconds = 0;
  };
  // A read on its way through the disk (LoadAsync): the last disk read to end finishes it.
  // The handle is `read` until a streaming read opens, then shared with its reader.
  struct ReadJob {
    std::unique_ptr<BlockReadHandle> read;
    std::shared_ptr<BlockReadHandle> shared;
    std::vector<Promotion> promotions;
    Reservation reservation;
    ReadDone done;        // non-streaming
    ReadOpened opened;    // streaming
    bool streaming = false;  // opened already, blocks loading one by one
    std::atomic<size_t> remaining{0};
    BlockReadHandle& handle() { return read != nullptr ? *read : *shared; }
    // Hands over the result: `done` or, if not called yet, `opened`.
    void Deliver(absl::StatusOr<std::unique_ptr<BlockReadHandle>> result);
  };
  // References the blocks of a lease, or of keys, for a read.
  absl::StatusOr<std::unique_ptr<ReadJob>> OpenLeaseJob(std::string_view tenant,
                                                        uint64_t lease_id)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::unique_ptr<ReadJob>> OpenBlocksJob(std::string_view tenant,
                                                         std::span<const BlockKey> keys)
      ABSL_LOCKS_EXCLUDED(mu_);

  BlockStore(const BlockStoreOptions& options, std::unique_ptr<PinnedHostTier> t1,
             std::unique_ptr<SsdTier> t2, std::unique_ptr<EvictionPolicy> t1_policy,
             std::unique_ptr<EvictionPolicy> t2_policy, uint32_t handles);

  absl::Status ValidatePrompt(const PromptRef& prompt) const;
  absl::Duration ClampTtl(absl::Duration requested, absl::Duration def, absl::Duration max) const;
  void Recover() ABSL_LOCKS_EXCLUDED(mu_);

  EvictionPolicy* PolicyFor(Tier tier) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return tier == Tier::kHostDram ? t1_policy_.get() : t2_policy_.get();
  }
  BlockTraits TraitsOf(const Entry& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The block's traits as `tier` would rank it in its size class `cls` (TraitsOf: its own
  // tier and class).
  BlockTraits TraitsIn(const Entry& e, Tier tier, int cls) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The PutOrigin of a Put whose first new block is keys[first_new]: a root at block 0; a
  // continuation when its parent is cached and was the last or last full block of the Put
  // that stored it (blocks_to_end <= 1); otherwise (a branch off a longer prefix, or a
  // parent not cached) other.
  PutOrigin OriginOf(const std::vector<BlockKey>& keys, uint32_t first_new) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  SlabAllocator& SlotsOf(Tier tier) const {
    return tier == Tier::kHostDram ? t1_->slots() : t2_->slots();
  }
  // Bookkeeping of a block entering or leaving a tier's accounts (used bytes and blocks,
  // per layout).
  void Account(const Entry& e, int sign) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A hit or a store: the policy's OnAccess and the rebalancer's clock.
  void Touch(uint32_t handle) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Per tier and size class: how long its blocks have been idle, on average (the
  // rebalancer compares classes by it).
  struct ClassIdle {
    uint64_t blocks = 0;
    uint64_t last_access_sum = 0;
  };
  ClassIdle& IdleOf(Tier tier, int cls) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::vector<ClassIdle>& v = idle_[static_cast<int>(tier)];
    if (v.size() <= static_cast<size_t>(cls)) v.resize(cls + 1);
    return v[cls];
  }
  static BlockEvent EventFor(const Entry& e, BlockEvent::Type type, BlockEvent::Reason reason);
  // Expires leases and pins whose time has come. Every locked operation starts with it,
  // so within one operation a pin is either live or already swept.
  void Sweep(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Brings the tier policy's idea of whether the block is evictable up to date.
  void SyncEvictable(uint32_t handle) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Ref(uint32_t handle) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Unref(uint32_t handle) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void LinkParent(uint32_t handle) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UnlinkParent(uint32_t handle) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // REQUIRES: a handle reserved with ReserveHandle (or free handles for recovery).
  uint32_t NewHandle() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Promises a handle to a block about to be stored, evicting a block (T2's victim first)
  // when every handle is taken or promised. False when nothing can be evicted.
  // The victim is one `tenant` may evict (see VictimFor).
  bool ReserveHandle(uint32_t tenant) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Frees the entry's slot in its tier and the handle.
  void FreeEntry(uint32_t handle) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Indexes a block that just became resident in `tier` and tells the policy.
  void AddResident(uint32_t handle) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Takes a T1 slot for `bytes`, evicting if none is free (see Space above). A victim that
  // T2 admits is queued in `r`; the caller runs its demotions (RunDemotions) before using
  // the slot, then FinishDemotions. nullopt when nothing can be evicted (or the size has no
  // class).
  // `tenant` is the block's: at its limit it evicts its own blocks first, and it evicts no
  // other tenant's below that tenant's guarantee.
  std::optional<uint32_t> AllocateT1(uint64_t bytes, uint32_t tenant, Reservation& r)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::optional<uint32_t> AllocateT2(uint64_t bytes, uint32_t tenant)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The policy's first victim of size class `cls` that may make room for `tenant`'s block:
  // its own, or another tenant's that keeps its guarantee without it (TenantLedger::Yields).
  // cls < 0: of any class.
  std::optional<uint32_t> VictimFor(Tier tier, int cls, uint32_t tenant) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The tenant's own first victim, of class `cls` if it has one there, else of any class.
  std::optional<uint32_t> OwnVictim(Tier tier, int cls, uint32_t tenant) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A T1 victim leaves: to T2 (queued in r) when T2 admits it, otherwise out of the store
  // (its slot freed). A demoted block's bytes stay in its slot until the write: the slot is
  // freed in the allocator when `free_slot` (a slab the caller then holds), else returned
  // to the caller, still allocated, to write into after RunDemotions.
  std::optional<uint32_t> EvictT1(uint32_t handle, Reservation& r, bool free_slot)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The slab to empty for class `cls` of this tier, or nullopt when `cls` should evict its
  // own victim (or nothing can be emptied).
  std::optional<uint32_t> SlabToMove(Tier tier, int cls, uint32_t tenant) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether every block in the slab may be evicted now, for `tenant`.
  bool Drainable(Tier tier, uint32_t slab, uint32_t tenant) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RunDemotions(Reservation& r) ABSL_LOCKS_EXCLUDED(mu_);
  void FinishDemotions(Reservation& r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Removes a live block from the index and its policy; its slot is freed now or when its
  // last reference goes.
  void RemoveEntry(uint32_t handle, BlockEvent::Reason reason) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Handles of this tenant's live blocks, or NOT_FOUND naming the first missing key.
  absl::StatusOr<std::vector<uint32_t>> FindOwned(std::string_view tenant,
                                                  std::span<const BlockKey> keys,
                                                  bool skip_missing) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // References the blocks and describes them; T2 blocks get a T1 slot reserved for their
  // promotion. Disk reads and verification come after, unlocked.
  std::unique_ptr<BlockReadHandle> OpenLocked(std::vector<uint32_t> handles,
                                              std::vector<Promotion>& promotions,
                                              Reservation& reservation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Reads T2 blocks (on the reader threads; a block whose write is queued is copied from
  // the queue), then FinishLoad.
  void LoadAsync(std::unique_ptr<ReadJob> job) ABSL_LOCKS_EXCLUDED(mu_);
  // A T2 block's bytes are in place (or its read failed): verifies them, computing its
  // layer checksums, and marks the block loaded or failed on the handle.
  void SettleLoaded(ReadJob& job, Promotion& p);
  // A streaming read's block that failed: counted and dropped now, before its reader hears
  // of it, so that the block is a miss by the time the reader reports DATA_LOSS.
  void DropFailedLoad(Promotion& p) ABSL_LOCKS_EXCLUDED(mu_);
  // Completes promotions, drops the blocks that failed (DATA_LOSS), and hands the result
  // to job->done (a streaming read has it already: its reader sees Failed blocks).
  void FinishLoad(std::unique_ptr<ReadJob> job) ABSL_LOCKS_EXCLUDED(mu_);
  // A demotion queued for the disk: the block, its T2 slot, its record and bytes.
  struct QueuedWrite {
    uint32_t handle;
    uint32_t slot;
    SsdRecord record;
    std::shared_ptr<StagedBlock> staging;
  };
  // On a writer thread: writes queued demotions into adjacent slots (one disk write;
  // SsdTier::WriteRun), then settles each block.
  void WriteDemotions(std::vector<QueuedWrite>& run) ABSL_LOCKS_EXCLUDED(mu_);
  // A queued demotion's write ended with `status`: the block is in T2 (or dropped), its
  // staging goes, its slots are retired.
  void SettleDemotion(QueuedWrite& write, const absl::Status& status) ABSL_LOCKS_EXCLUDED(mu_);
  // Whether T2 takes this T1 victim (BlockStoreOptions::t2_admission).
  bool AdmitToT2(uint32_t handle, const BlockTraits& traits) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A T1 block with a T2 copy goes back to T2 into that copy, writing nothing.
  void DemoteToCopy(uint32_t handle) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Gives up a T1 block's T2 copy (the block leaves, or is deleted: then the copy's header
  // is overwritten so that a restart cannot bring it back).
  void ReleaseCopy(uint32_t handle, bool invalidate) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Stale T2 records (cache_store/stale_records.h): a slot a promoted block left keeps its
  // valid record and stays allocated (no header write per promotion; a restart may bring
  // the block back, verified). MarkStaleT2 lists it (no I/O); RetireT2Slot marks a slot
  // its entry no longer uses, and drops it at once if the block was deleted; TakeStaleT2
  // reuses one for a write; DropStaleT2 overwrites one's header and frees it (a slab move);
  // InvalidateStaleT2 drops every one of a key (a Delete; rare, so under the lock).
  void MarkStaleT2(uint32_t slot, const BlockKey& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RetireT2Slot(const Entry& e, uint32_t slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::optional<uint32_t> TakeStaleT2(int cls) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DropStaleT2(uint32_t slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void InvalidateStaleT2(const BlockKey& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Called by PendingPut and BlockReadHandle.
  absl::StatusOr<PutResult> CommitPut(PendingPut& put) ABSL_LOCKS_EXCLUDED(mu_);
  void AbortPut(PendingPut& put) ABSL_LOCKS_EXCLUDED(mu_);
  void AbortPutLocked(PendingPut& put) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The Put's reference on its tenant's account, once its blocks are committed or gone.
  void ReleasePutTenant(PendingPut& put) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReleaseRead(std::span<const uint32_t> handles, std::span<const uint32_t> t1_slots)
      ABSL_LOCKS_EXCLUDED(mu_);
  // A reader found a layer of the block that does not match its checksum: the block
  // leaves the store (its slot goes when the last reader does) and is counted.
  void DropCorrupt(uint32_t handle, uint32_t layer) ABSL_LOCKS_EXCLUDED(mu_);

  const BlockStoreOptions options_;
  Clock* const clock_;
  EventLog events_;

  // Allocate/Free need mu_; slot addresses are fixed for the arena's life, so the bytes
  // of a slot one holds are read and written without it.
  const std::unique_ptr<PinnedHostTier> t1_;
  const std::unique_ptr<SsdTier> t2_;  // nullptr: no T2
  mutable absl::Mutex mu_;
  std::unique_ptr<EvictionPolicy> t1_policy_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<EvictionPolicy> t2_policy_ ABSL_GUARDED_BY(mu_);
  PrefixIndex index_ ABSL_GUARDED_BY(mu_);
  LeaseTable leases_ ABSL_GUARDED_BY(mu_);
  // Indexed by handle; handles are independent of slots, so a block keeps its handle
  // when it moves between tiers.
  std::vector<Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::vector<uint32_t> free_handles_ ABSL_GUARDED_BY(mu_);
  // (pinned_until, handle); stale records are skipped when popped.
  std::priority_queue<std::pair<absl::Time, uint32_t>, std::vector<std::pair<absl::Time, uint32_t>>,
                      std::greater<>>
      pin_expiry_ ABSL_GUARDED_BY(mu_);
  std::array<uint64_t, 3> used_bytes_ ABSL_GUARDED_BY(mu_){};   // by Tier
  std::array<uint64_t, 3> used_blocks_ ABSL_GUARDED_BY(mu_){};  // by Tier
  absl::flat_hash_map<uint64_t, LayoutUsage> layouts_ ABSL_GUARDED_BY(mu_);
  TenantLedger ledger_ ABSL_GUARDED_BY(mu_);
  // Keys of blocks evicted without a T2 write, to see them return (kReuse and kPredict).
  ReturnHistory returns_ ABSL_GUARDED_BY(mu_);
  // Learns which T1 victims come back (kPredict admission; off otherwise).
  ReturnPredictor predictor_ ABSL_GUARDED_BY(mu_);
  uint64_t reserved_blocks_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t reserved_handles_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t access_tick_ ABSL_GUARDED_BY(mu_) = 0;
  std::array<std::vector<ClassIdle>, 3> idle_ ABSL_GUARDED_BY(mu_);  // by Tier, size class
  uint64_t pinned_blocks_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t write_queue_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t write_queue_limit_ = 0;  // fixed at construction
  StaleRecords stale_t2_ ABSL_GUARDED_BY(mu_);  // MarkStaleT2
  BlockStoreStats counters_ ABSL_GUARDED_BY(mu_);
  // Last, so that they stop first (the destructor drains them): their tasks use the rest.
  std::unique_ptr<IoPool> t2_readers_;
  std::unique_ptr<IoPool> t2_writers_;
};

}  // namespace kvtier

#endif  // KVTIER_CACHE_STORE_BLOCK_STORE_H_
