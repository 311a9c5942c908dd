#include "cache_store/block_store.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "cache_store/log.h"

namespace kvtier {

// ---------------------------------------------------------------------------------------
// Creation and validation

absl::StatusOr<BlockStoreOptions::T2Admission> ParseT2Admission(std::string_view name) {
  using A = BlockStoreOptions::T2Admission;
  if (name == "reuse") return A::kReuse;
  if (name == "score") return A::kScore;
  if (name == "all") return A::kAll;
  if (name == "predict") return A::kPredict;
  return absl::InvalidArgumentError(absl::StrCat("unknown T2 admission \"", std::string(name),
                                                 "\" (expected reuse, score, predict or all)"));
}

std::string_view T2AdmissionName(BlockStoreOptions::T2Admission admission) {
  switch (admission) {
    case BlockStoreOptions::T2Admission::kReuse:
      return "reuse";
    case BlockStoreOptions::T2Admission::kScore:
      return "score";
    case BlockStoreOptions::T2Admission::kAll:
      return "all";
    case BlockStoreOptions::T2Admission::kPredict:
      return "predict";
  }
  return "?";
}

absl::StatusOr<std::unique_ptr<BlockStore>> BlockStore::Create(const BlockStoreOptions& options) {
  if (options.default_lease_ttl <= absl::ZeroDuration() ||
      options.max_lease_ttl < options.default_lease_ttl) {
    return absl::InvalidArgumentError(
        "lease TTLs must satisfy 0 < default_lease_ttl <= max_lease_ttl");
  }
  if (options.default_pin_ttl <= absl::ZeroDuration() ||
      options.max_pin_ttl < options.default_pin_ttl) {
    return absl::InvalidArgumentError("pin TTLs must satisfy 0 < default_pin_ttl <= max_pin_ttl");
  }
  if (!(options.t2_admit_min_score >= 0 && options.t2_admit_min_score <= 1)) {
    return absl::InvalidArgumentError("t2_admit_min_score must be in [0, 1]");
  }
  if (!(options.t2_admit_min_return >= 0 && options.t2_admit_min_return <= 1)) {
    return absl::InvalidArgumentError("t2_admit_min_return must be in [0, 1]");
  }
  if (options.t2_promote_after_reads > 255) {
    return absl::InvalidArgumentError(absl::StrCat(
        "t2_promote_after_reads must be in [0, 255] (0: never promote), got ",
        options.t2_promote_after_reads));
  }
  absl::StatusOr<std::unique_ptr<PinnedHostTier>> t1 = PinnedHostTier::Create(options.t1);
  if (!t1.ok()) return t1.status();
  std::unique_ptr<SsdTier> t2;
  if (!options.t2.directory.empty()) {
    SsdTierOptions t2_options = options.t2;
    t2_options.max_block_bytes = (*t1)->max_block_bytes();
    absl::StatusOr<std::unique_ptr<SsdTier>> created = SsdTier::Create(t2_options);
    if (!created.ok()) return created.status();
    t2 = *std::move(created);
  }
  // Blocks each tier would hold in its smallest slots, and what the policies size their
  // histories by (the handles bound it).
  const uint64_t t1_most = (*t1)->slots().capacity_slots(0);
  const uint64_t t2_most = t2 ? t2->slots().capacity_slots(0) : 0;
  uint64_t handles64 = options.max_blocks;
  if (handles64 == 0) {
    handles64 = std::min(t1_most + t2_most,
                         std::max<uint64_t>(65536, (*t1)->capacity_bytes() / (32 << 10) +
                                                       (t2 ? t2->capacity_bytes() / (128 << 10) : 0)));
  }
  if (handles64 == 0 || handles64 >= UINT32_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_blocks = ", handles64, " must be in [1, ", UINT32_MAX - 1, "]"));
  }
  const auto handles = static_cast<uint32_t>(handles64);
  absl::StatusOr<std::unique_ptr<EvictionPolicy>> t1_policy = MakeEvictionPolicy(
      options.eviction_policy, handles, static_cast<uint32_t>(std::min(t1_most, handles64)));
  if (!t1_policy.ok()) return t1_policy.status();
  absl::StatusOr<std::unique_ptr<EvictionPolicy>> t2_policy =
      MakeEvictionPolicy(options.t2_eviction_policy, handles,
                         static_cast<uint32_t>(std::clamp<uint64_t>(t2_most, 1, handles64)));
  if (!t2_policy.ok()) return t2_policy.status();
  if (absl::Status q = options.quotas.ValidateAgainstCapacity(
          (*t1)->capacity_bytes(), t2 ? t2->capacity_bytes() : 0);
      !q.ok()) {
    return q;
  }
  std::unique_ptr<BlockStore> store(new BlockStore(options, *std::move(t1), std::move(t2),
                                                   *std::move(t1_policy), *std::move(t2_policy),
                                                   handles));
  store->Recover();
  return store;
}

BlockStore::BlockStore(const BlockStoreOptions& options, std::unique_ptr<PinnedHostTier> t1,
                       std::unique_ptr<SsdTier> t2, std::unique_ptr<EvictionPolicy> t1_policy,
                       std::unique_ptr<EvictionPolicy> t2_policy, uint32_t handles)
    : options_(options),
      clock_(options.clock != nullptr ? options.clock : Clock::Real()),
      events_(options.event_log_capacity),
      t1_(std::move(t1)),
      t2_(std::move(t2)),
      t1_policy_(std::move(t1_policy)),
      t2_policy_(std::move(t2_policy)),
      leases_(options.max_active_leases),
      entries_(handles),
      ledger_(options.quotas),
      returns_(t2_ != nullptr && (options.t2_admission == BlockStoreOptions::T2Admission::kReuse ||
                                  options.t2_admission == BlockStoreOptions::T2Admission::kPredict)
                   ? handles
                   : 0),
      // T1's blocks as the T1 policy counts them: in its smallest slots, at most `handles`.
      predictor_(t2_ != nullptr && options.t2_admission == BlockStoreOptions::T2Admission::kPredict
                     ? BlockStoreOptions::kPredictHorizonT1Turnovers *
                           std::min<uint64_t>(t1_->slots().capacity_slots(0), handles)
                     : 0) {
  free_handles_.reserve(handles);
  for (uint32_t h = handles; h-- > 0;) free_handles_.push_back(h);
  if (t2_ != nullptr) {
    write_queue_limit_ = options.t2_write_queue_bytes != 0
                             ? options.t2_write_queue_bytes
                             : std::min<uint64_t>(t2_->capacity_bytes() / 4, uint64_t{256} << 20);
    t2_readers_ = std::make_unique<IoPool>(std::max(options.t2_read_threads, 1), "kvtier-t2-read");
    t2_writers_ =
        std::make_unique<IoPool>(std::max(options.t2_write_threads, 1), "kvtier-t2-write");
  }
}

BlockStore::~BlockStore() {
  // Reads in flight end and queued demotions reach the disk before anything they use goes,
  // the pools included: a task of one may submit to the other (a read's end queues the
  // demotions its promotions caused), so both drain until neither has work, and only then go.
  if (t2_readers_ != nullptr) {
    while (t2_readers_->queued() + t2_writers_->queued() > 0) {
      t2_readers_->Drain();
      t2_writers_->Drain();
    }
  }
  t2_readers_.reset();
  t2_writers_.reset();
  events_.Close();
}

void BlockStore::FlushT2Writes() {
  if (t2_writers_ == nullptr) return;
  // Readers queue the demotions of their promotions: writers, then readers, then the
  // writes those queued.
  t2_writers_->Drain();
  t2_readers_->Drain();
  t2_writers_->Drain();
}

uint64_t BlockStore::t2_io_backlog_bytes() const {
  return t2_write_queue_bytes();
}

uint64_t BlockStore::t2_write_queue_bytes() const {
  absl::MutexLock lock(&mu_);
  return write_queue_bytes_;
}

absl::Status BlockStore::ValidatePrompt(const PromptRef& prompt) const {
  if (prompt.layout == nullptr) return absl::InvalidArgumentError("layout is required");
  if (absl::Status s = prompt.layout->Validate(); !s.ok()) return s;
  if (prompt.tokens.size() > options_.max_prompt_tokens) {
    return absl::InvalidArgumentError(absl::StrCat("prompt of ", prompt.tokens.size(),
                                                   " tokens exceeds the limit of ",
                                                   options_.max_prompt_tokens, " tokens"));
  }
  return absl::OkStatus();
}

absl::Duration BlockStore::ClampTtl(absl::Duration requested, absl::Duration def,
                                    absl::Duration max) const {
  if (requested <= absl::ZeroDuration()) return def;
  return std::min(requested, max);
}

// ---------------------------------------------------------------------------------------
// Reference counting, pins, the prefix tree, removal

BlockTraits BlockStore::TraitsOf(const Entry& e) {
  return TraitsIn(e, e.tier, SlotsOf(e.tier).ClassOfSlot(e.slot));
}

BlockTraits BlockStore::TraitsIn(const Entry& e, Tier tier, int cls) {
  uint64_t fingerprint = 0;
  std::memcpy(&fingerprint, e.key.bytes.data(), sizeof(fingerprint));
  return BlockTraits{.key_fingerprint = fingerprint,
                     .depth = e.depth,
                     .prompt_tail = e.prompt_tail,
                     .blocks_to_end = e.blocks_to_end,
                     .output_tokens = e.output_tokens,
                     .origin = e.origin,
                     .partition = ledger_.PartitionOf(tier, cls, e.tenant_id),
                     .learner = ledger_.LearnerOf(tier, cls, e.tenant_id),
                     .tier_capacity = static_cast<uint32_t>(
                         std::min<uint64_t>(SlotsOf(tier).capacity_slots(cls), UINT32_MAX)),
                     .reused = e.hits > 0 || e.returned};
}

std::optional<BlockTraits> BlockStore::TraitsOfKey(const BlockKey& key) {
  absl::MutexLock lock(&mu_);
  const std::optional<uint32_t> h = index_.Find(key);
  if (!h) return std::nullopt;
  return TraitsOf(entries_[*h]);
}

void BlockStore::Touch(uint32_t handle) {
  Entry& e = entries_[handle];
  ClassIdle& idle = IdleOf(e.tier, SlotsOf(e.tier).ClassOfSlot(e.slot));
  idle.last_access_sum += access_tick_ + 1 - e.last_access;
  e.last_access = ++access_tick_;
  if (e.hits < UINT8_MAX) ++e.hits;
  const BlockTraits traits = TraitsOf(e);
  if (e.tier == Tier::kLocalSsd) {
    predictor_.OnReturn(traits.key_fingerprint);
    // T1 did not see this reference: tell its policy, ranked as T1 would rank the block.
    if (const std::optional<int> cls = SlotsOf(Tier::kHostDram).ClassFor(e.size)) {
      t1_policy_->OnReferenceBelow(TraitsIn(e, Tier::kHostDram, *cls),
                                   std::min<uint32_t>(e.hits + 1u, 255));
    }
  }
  PolicyFor(e.tier)->OnAccess(handle, traits);
}

BlockEvent BlockStore::EventFor(const Entry& e, BlockEvent::Type type, BlockEvent::Reason reason) {
  return BlockEvent{.type = type,
                    .reason = reason,
                    .tenant = e.tenant,
                    .key = e.key,
                    .parent = e.parent,
                    .tier = e.tier,
                    .layout_fingerprint = e.layout_fingerprint};
}

void BlockStore::SyncEvictable(uint32_t handle) {
  const Entry& e = entries_[handle];
  if (e.state != Entry::State::kLive) return;
  EvictionPolicy* policy = PolicyFor(e.tier);
  const bool evictable = e.refs == 0 && e.pinned_until == absl::InfinitePast() &&
                         (!policy->leaves_only() || e.children[static_cast<int>(e.tier)] == 0);
  policy->SetEvictable(handle, evictable);
}

void BlockStore::Ref(uint32_t handle) {
  if (entries_[handle].refs++ == 0) SyncEvictable(handle);
}

void BlockStore::Unref(uint32_t handle) {
  Entry& e = entries_[handle];
  KVTIER_CHECK(e.refs > 0) << "unbalanced Unref of handle " << handle;
  if (--e.refs > 0) return;
  if (e.state == Entry::State::kDropped) {
    if (e.writes > 0) return;  // the last write frees it
    FreeEntry(handle);
  } else {
    SyncEvictable(handle);
  }
}

void BlockStore::LinkParent(uint32_t handle) {
  Entry& e = entries_[handle];
  e.parent_handle = kNone;
  if (!e.parent) return;
  std::optional<uint32_t> p = index_.Find(*e.parent);
  if (!p) return;
  e.parent_handle = *p;
  e.parent_generation = entries_[*p].generation;
  ++entries_[*p].children[static_cast<int>(e.tier)];
  SyncEvictable(*p);
}

void BlockStore::UnlinkParent(uint32_t handle) {
  Entry& e = entries_[handle];
  if (e.parent_handle == kNone) return;
  Entry& p = entries_[e.parent_handle];
  if (p.generation == e.parent_generation && p.state == Entry::State::kLive) {
    --p.children[static_cast<int>(e.tier)];
    SyncEvictable(e.parent_handle);
  }
  e.parent_handle = kNone;
}

uint32_t BlockStore::NewHandle() {
  KVTIER_CHECK(!free_handles_.empty()) << "more blocks than max_blocks";
  const uint32_t h = free_handles_.back();
  free_handles_.pop_back();
  return h;
}

void BlockStore::FreeEntry(uint32_t handle) {
  Entry& e = entries_[handle];
  KVTIER_CHECK(e.t2_reads == 0 && e.retired_t2_slots.empty())
      << "freeing block " << e.key.ShortHex() << " while its T2 slot is being read";
  if (e.slot != kNone) SlotsOf(e.tier).Free(e.slot);
  if (e.t2_copy != kNone) ReleaseCopy(handle, /*invalidate=*/false);
  if (e.tenant_id != kNone) ledger_.Release(e.tenant_id);
  const uint32_t generation = e.generation + 1;
  e = Entry{};
  e.generation = generation;
  free_handles_.push_back(handle);
}

void BlockStore::AddResident(uint32_t handle) {
  Entry& e = entries_[handle];
  e.state = Entry::State::kLive;
  index_.Insert(e.key, handle);
  e.last_access = ++access_tick_;
  Account(e, +1);
  SlotsOf(e.tier).SetOwner(e.slot, handle);
  PolicyFor(e.tier)->OnResident(handle, TraitsOf(e));
  LinkParent(handle);
  SyncEvictable(handle);
}

void BlockStore::Sweep(absl::Time now) {
  for (uint32_t handle : leases_.ExpireUntil(now)) Unref(handle);
  while (!pin_expiry_.empty() && pin_expiry_.top().first <= now) {
    auto [until, handle] = pin_expiry_.top();
    pin_expiry_.pop();
    Entry& e = entries_[handle];
    // A record whose time is not the entry's current pin expiry is stale (the pin was
    // extended, removed, or the handle names another block now).
    if (e.state != Entry::State::kLive || e.pinned_until != until) continue;
    e.pinned_until = absl::InfinitePast();
    --pinned_blocks_;
    SyncEvictable(handle);
  }
}

void BlockStore::RemoveEntry(uint32_t handle, BlockEvent::Reason reason) {
  Entry& e = entries_[handle];
  index_.Erase(e.key);
  PolicyFor(e.tier)->OnLeave(handle, reason == BlockEvent::Reason::kEvicted);
  if (reason == BlockEvent::Reason::kEvicted) returns_.Insert(TraitsOf(e).key_fingerprint);
  if (e.pinned_until != absl::InfinitePast()) {
    e.pinned_until = absl::InfinitePast();
    --pinned_blocks_;
  }
  UnlinkParent(handle);
  ++e.generation;  // children counted in this entry are no longer
  Account(e, -1);
  events_.Append(EventFor(e, BlockEvent::Type::kRemoved, reason));
  if (e.t2_copy != kNone) ReleaseCopy(handle, reason == BlockEvent::Reason::kDeleted);
  // Stale records of it (slots its promotions left) must not bring it back either.
  if (reason == BlockEvent::Reason::kDeleted && t2_ != nullptr) {
    InvalidateStaleT2(e.key);
    e.deleted = true;  // and the slots still read or written become none (RetireT2Slot)
  }
  if (e.tier == Tier::kLocalSsd && reason == BlockEvent::Reason::kDeleted) {
    // A deleted block must not come back with a restart. Header only: a reader of the
    // payload is unaffected. Deletes are rare, so this small write runs under the lock.
    if (absl::Status s = t2_->Invalidate(e.slot); !s.ok()) {
      ++counters_.t2_write_errors;
      KVTIER_LOG(ERROR) << "cannot invalidate deleted block " << e.key.ShortHex()
                        << " on T2: " << s;
    }
  }
  if (e.refs == 0 && e.writes > 0 && e.tier == Tier::kHostDram) {
    // Only an earlier T2 write of it is still in flight (into a slot of its own): T1 gets
    // this slot back now, the entry goes when the write ends.
    t1_->slots().Free(e.slot);
    e.slot = kNone;
  }
  if (e.refs > 0 || e.writes > 0) {
    e.state = Entry::State::kDropped;  // readers and writes finish first; the last frees it
  } else {
    FreeEntry(handle);
  }
}

absl::StatusOr<std::vector<uint32_t>> BlockStore::FindOwned(std::string_view tenant,
                                                            std::span<const BlockKey> keys,
                                                            bool skip_missing) const {
  std::vector<uint32_t> handles;
  handles.reserve(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    std::optional<uint32_t> h = index_.Find(keys[i]);
    // Another tenant's block is reported exactly like a missing one.
    if (!h || entries_[*h].tenant != tenant) {
      if (skip_missing) continue;
      return absl::NotFoundError(
          absl::StrCat("block ", i, " (key ", keys[i].ShortHex(), "…) is not cached"));
    }
    handles.push_back(*h);
  }
  return handles;
}

// ---------------------------------------------------------------------------------------
// Lookup

absl::StatusOr<LookupResult> BlockStore::Lookup(const PromptRef& prompt,
                                                const LookupOptions& options) {
  if (absl::Status s = ValidatePrompt(prompt); !s.ok()) return s;
  const KvLayout& layout = *prompt.layout;
  const uint32_t tpb = layout.tokens_per_block;
  const size_t total = prompt.tokens.size() / tpb;
  // Keys are derived outside the lock, in runs. When the last key of a run is not cached,
  // the match ends inside that run, so no later key is derived: a prompt that misses at
  // its start costs one run of hashing, not the whole prompt. A presence lookup needs
  // every key.
  constexpr size_t kKeyRun = 256;
  std::vector<BlockKey> keys;
  keys.reserve(total);  // `parent` points into it
  const BlockKey ns = NamespaceKey(prompt.tenant, layout.Fingerprint(), prompt.salt);
  const BlockKey* parent = &ns;
  while (keys.size() < total) {
    const size_t end = std::min(total, keys.size() + kKeyRun);
    for (size_t b = keys.size(); b < end; ++b) {
      keys.push_back(NextBlockKey(*parent, prompt.tokens.subspan(b * tpb, tpb)));
      parent = &keys.back();
    }
    if (end == total || options.report_present) continue;
    absl::MutexLock lock(&mu_);
    if (!index_.Find(keys.back())) break;
  }

  LookupResult result;
  result.total_blocks = static_cast<uint32_t>(total);
  result.block_bytes = layout.BlockBytes();

  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  Sweep(now);
  std::vector<uint32_t> handles = index_.MatchPrefix(keys);
  result.prefix_blocks = static_cast<uint32_t>(handles.size());
  if (options.report_present) {
    result.present.resize(handles.size());
    for (uint32_t b = 0; b < handles.size(); ++b) result.present[b] = b;
    for (size_t b = handles.size() + 1; b < keys.size(); ++b) {
      if (std::optional<uint32_t> h = index_.Find(keys[b])) {
        handles.push_back(*h);
        result.present.push_back(static_cast<uint32_t>(b));
      }
    }
  }
  result.keys.reserve(handles.size());
  result.tiers.reserve(handles.size());
  for (uint32_t h : handles) {
    const Entry& e = entries_[h];
    Touch(h);
    result.keys.push_back(e.key);
    result.tiers.push_back(e.tier);
    if (options.report_present) continue;
    ++(e.tier == Tier::kHostDram ? counters_.lookup_hit_blocks_t1 : counters_.lookup_hit_blocks_t2);
  }
  if (options.lease && !handles.empty()) {
    const absl::Duration ttl =
        ClampTtl(options.lease_ttl, options_.default_lease_ttl, options_.max_lease_ttl);
    absl::StatusOr<uint64_t> id = leases_.Grant(std::string(prompt.tenant), handles, now + ttl);
    if (!id.ok()) return id.status();
    for (uint32_t h : handles) Ref(h);
    result.lease_id = *id;
    result.lease_ttl = ttl;
  }
  if (options.report_present) {
    ++counters_.presence_lookups;
    counters_.presence_requested_blocks += result.total_blocks;
    counters_.presence_held_blocks += handles.size();
    return result;
  }
  ++counters_.lookups;
  counters_.lookup_requested_blocks += result.total_blocks;
  counters_.lookup_hit_blocks += handles.size();
  counters_.lookup_requested_tokens += prompt.tokens.size();
  counters_.lookup_hit_tokens += uint64_t{handles.size()} * layout.tokens_per_block;
  return result;
}

TenantUsage BlockStore::UsageOf(std::string_view tenant) const {
  absl::MutexLock lock(&mu_);
  return ledger_.UsageOf(tenant);
}

// ---------------------------------------------------------------------------------------
// Release, pins, delete

absl::Status BlockStore::Release(std::string_view tenant, uint64_t lease_id) {
  absl::MutexLock lock(&mu_);
  Sweep(clock_->Now());
  absl::StatusOr<std::vector<uint32_t>> handles = leases_.Release(lease_id, tenant);
  if (!handles.ok()) return handles.status();
  for (uint32_t h : *handles) Unref(h);
  return absl::OkStatus();
}

absl::StatusOr<absl::Duration> BlockStore::Pin(std::string_view tenant,
                                               std::span<const BlockKey> keys, absl::Duration ttl,
                                               bool skip_missing, uint32_t* pinned) {
  const absl::Duration granted = ClampTtl(ttl, options_.default_pin_ttl, options_.max_pin_ttl);
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  Sweep(now);
  absl::StatusOr<std::vector<uint32_t>> handles = FindOwned(tenant, keys, skip_missing);
  if (!handles.ok()) return handles.status();
  if (pinned != nullptr) *pinned = static_cast<uint32_t>(handles->size());
  for (uint32_t h : *handles) {
    Entry& e = entries_[h];
    if (e.pinned_until == absl::InfinitePast()) ++pinned_blocks_;
    // Pins of several callers never shorten each other.
    e.pinned_until = std::max(e.pinned_until, now + granted);
    pin_expiry_.emplace(e.pinned_until, h);
    SyncEvictable(h);
  }
  return granted;
}

absl::StatusOr<uint32_t> BlockStore::Unpin(std::string_view tenant,
                                           std::span<const BlockKey> keys, bool skip_missing) {
  absl::MutexLock lock(&mu_);
  Sweep(clock_->Now());
  absl::StatusOr<std::vector<uint32_t>> handles = FindOwned(tenant, keys, skip_missing);
  if (!handles.ok()) return handles.status();
  uint32_t unpinned = 0;
  for (uint32_t h : *handles) {
    Entry& e = entries_[h];
    if (e.pinned_until == absl::InfinitePast()) continue;
    e.pinned_until = absl::InfinitePast();
    --pinned_blocks_;
    ++unpinned;
    SyncEvictable(h);
  }
  return unpinned;
}

absl::StatusOr<uint32_t> BlockStore::Delete(std::string_view tenant,
                                            std::span<const BlockKey> keys, bool skip_missing) {
  absl::MutexLock lock(&mu_);
  Sweep(clock_->Now());
  absl::StatusOr<std::vector<uint32_t>> handles = FindOwned(tenant, keys, skip_missing);
  if (!handles.ok()) return handles.status();
  uint32_t deleted = 0;
  for (uint32_t h : *handles) {
    if (entries_[h].state != Entry::State::kLive) continue;  // a key listed twice
    RemoveEntry(h, BlockEvent::Reason::kDeleted);
    ++deleted;
  }
  counters_.deleted_blocks += deleted;
  return deleted;
}

}  // namespace kvtier
