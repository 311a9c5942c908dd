#include "cache_store/block_store.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cache_store/checksum.h"
#include "cache_store/log.h"

namespace kvtier {

// ---------------------------------------------------------------------------------------
// Creation and validation

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
  absl::StatusOr<std::unique_ptr<PinnedHostTier>> t1 = PinnedHostTier::Create(options.t1);
  if (!t1.ok()) return t1.status();
  absl::StatusOr<std::unique_ptr<EvictionPolicy>> policy =
      MakeEvictionPolicy(options.eviction_policy, (*t1)->capacity_slots());
  if (!policy.ok()) return policy.status();
  return std::unique_ptr<BlockStore>(new BlockStore(options, *std::move(t1), *std::move(policy)));
}

BlockStore::BlockStore(const BlockStoreOptions& options, std::unique_ptr<PinnedHostTier> t1,
                       std::unique_ptr<EvictionPolicy> policy)
    : options_(options),
      clock_(options.clock != nullptr ? options.clock : Clock::Real()),
      events_(options.event_log_capacity),
      t1_(std::move(t1)),
      policy_(std::move(policy)),
      leases_(options.max_active_leases),
      entries_(t1_->capacity_slots()) {}

BlockStore::~BlockStore() { events_.Close(); }

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
// Reference counting, pins, eviction

bool BlockStore::Evictable(const Entry& e) const {
  return e.state == Entry::State::kLive && e.refs == 0 && e.pinned_until == absl::InfinitePast();
}

void BlockStore::Ref(uint32_t handle) {
  Entry& e = entries_[handle];
  if (e.refs++ == 0) policy_->Erase(handle);
}

void BlockStore::Unref(uint32_t handle) {
  Entry& e = entries_[handle];
  KVTIER_CHECK(e.refs > 0) << "unbalanced Unref of handle " << handle;
  if (--e.refs > 0) return;
  if (e.state == Entry::State::kDropped) {
    FreeSlot(handle);
  } else if (Evictable(e) && !policy_->Contains(handle)) {
    policy_->Insert(handle);
  }
}

void BlockStore::Sweep(absl::Time now) {
  for (uint32_t handle : leases_.ExpireUntil(now)) Unref(handle);
  while (!pin_expiry_.empty() && pin_expiry_.top().first <= now) {
    auto [until, handle] = pin_expiry_.top();
    pin_expiry_.pop();
    Entry& e = entries_[handle];
    // A record whose time is not the entry's current pin expiry is stale (the pin was
    // extended, removed, or the slot holds another block now).
    if (e.state != Entry::State::kLive || e.pinned_until != until) continue;
    e.pinned_until = absl::InfinitePast();
    --pinned_blocks_;
    if (Evictable(e) && !policy_->Contains(handle)) policy_->Insert(handle);
  }
}

void BlockStore::FreeSlot(uint32_t handle) {
  entries_[handle] = Entry{};
  t1_->Free(handle);
}

std::optional<uint32_t> BlockStore::AllocateSlot() {
  if (std::optional<uint32_t> slot = t1_->Allocate()) return slot;
  std::optional<uint32_t> victim = policy_->Victim();
  if (!victim) return std::nullopt;
  RemoveEntry(*victim, BlockEvent::Reason::kEvicted);
  ++counters_.evicted_blocks;
  return t1_->Allocate();  // the victim had no references, so its slot is free now
}

void BlockStore::RemoveEntry(uint32_t handle, BlockEvent::Reason reason) {
  Entry& e = entries_[handle];
  index_.Erase(e.key);
  policy_->Erase(handle);
  if (e.pinned_until != absl::InfinitePast()) {
    e.pinned_until = absl::InfinitePast();
    --pinned_blocks_;
  }
  --used_blocks_;
  used_bytes_ -= e.size;
  events_.Append(BlockEvent{.type = BlockEvent::Type::kRemoved,
                            .reason = reason,
                            .tenant = e.tenant,
                            .key = e.key,
                            .parent = e.parent,
                            .tier = Tier::kHostDram,
                            .layout_fingerprint = e.layout_fingerprint});
  if (e.refs > 0) {
    e.state = Entry::State::kDropped;  // readers finish first; the last one frees it
  } else {
    FreeSlot(handle);
  }
}

absl::StatusOr<std::vector<uint32_t>> BlockStore::FindOwned(std::string_view tenant,
                                                            std::span<const BlockKey> keys) const {
  std::vector<uint32_t> handles;
  handles.reserve(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    std::optional<uint32_t> h = index_.Find(keys[i]);
    // Another tenant's block is reported exactly like a missing one.
    if (!h || entries_[*h].tenant != tenant) {
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
  const BlockKey ns = NamespaceKey(prompt.tenant, layout.Fingerprint(), prompt.salt);
  const std::vector<BlockKey> keys = ChainBlockKeys(ns, prompt.tokens, layout.tokens_per_block);

  LookupResult result;
  result.total_blocks = static_cast<uint32_t>(keys.size());
  result.block_bytes = layout.BlockBytes();

  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  Sweep(now);
  std::vector<uint32_t> handles = index_.MatchPrefix(keys);
  for (uint32_t h : handles) {
    if (policy_->Contains(h)) policy_->Touch(h);
    result.keys.push_back(entries_[h].key);
    result.tiers.push_back(Tier::kHostDram);
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
  ++counters_.lookups;
  counters_.lookup_requested_blocks += result.total_blocks;
  counters_.lookup_hit_blocks += handles.size();
  counters_.lookup_requested_tokens += prompt.tokens.size();
  counters_.lookup_hit_tokens += uint64_t{handles.size()} * layout.tokens_per_block;
  return result;
}

// ---------------------------------------------------------------------------------------
// Put

absl::StatusOr<std::unique_ptr<PendingPut>> BlockStore::BeginPut(const PutSpec& spec) {
  if (absl::Status s = ValidatePrompt(spec.prompt); !s.ok()) return s;
  const KvLayout& layout = *spec.prompt.layout;
  if (spec.num_blocks == 0) {
    return absl::InvalidArgumentError("a Put must carry at least one block (num_blocks = 0)");
  }
  const uint64_t full_blocks = spec.prompt.tokens.size() / layout.tokens_per_block;
  const uint64_t end_block = uint64_t{spec.first_block} + spec.num_blocks;
  if (end_block > full_blocks) {
    return absl::InvalidArgumentError(
        absl::StrCat("the Put announces blocks [", spec.first_block, ", ", end_block, ") but its ",
                     spec.prompt.tokens.size(), " token ids hold only ", full_blocks,
                     " full blocks of ", layout.tokens_per_block, " tokens"));
  }
  if (!spec.checksums.empty() && spec.checksums.size() != spec.num_blocks) {
    return absl::InvalidArgumentError(absl::StrCat("the Put carries ", spec.checksums.size(),
                                                   " checksums for ", spec.num_blocks,
                                                   " blocks; send none or one per block"));
  }
  const uint64_t block_bytes = layout.BlockBytes();
  if (block_bytes > t1_->slot_bytes()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a block of this layout is ", block_bytes, " bytes and does not fit a T1 slot of ",
        t1_->slot_bytes(), " bytes (raise the store's --t1_slot_bytes)"));
  }

  const BlockKey ns = NamespaceKey(spec.prompt.tenant, layout.Fingerprint(), spec.prompt.salt);
  const std::vector<BlockKey> keys =
      ChainBlockKeys(ns, spec.prompt.tokens, layout.tokens_per_block, end_block);
  std::unique_ptr<PendingPut> put(new PendingPut(
      this, block_bytes, layout.Fingerprint(), layout.num_layers, std::string(spec.prompt.tenant)));
  put->blocks_.reserve(spec.num_blocks);

  absl::MutexLock lock(&mu_);
  Sweep(clock_->Now());
  for (uint32_t i = 0; i < spec.num_blocks; ++i) {
    const uint32_t b = spec.first_block + i;
    PendingPut::Block block;
    block.key = keys[b];
    if (b > 0) block.parent = keys[b - 1];
    if (!spec.checksums.empty()) block.expected_checksum = spec.checksums[i];
    if (std::optional<uint32_t> h = index_.Find(block.key)) {
      // Already cached: an access, and protected until this Put ends so that reserving
      // slots for its successors cannot evict it.
      if (policy_->Contains(*h)) policy_->Touch(*h);
      Ref(*h);
      block.existing = *h;
    } else {
      std::optional<uint32_t> slot = AllocateSlot();
      if (!slot) {
        AbortPutLocked(*put);
        return absl::ResourceExhaustedError(
            absl::StrCat("T1 is full: all ", t1_->capacity_slots(),
                         " slots hold leased, pinned, read or in-flight blocks; retry later"));
      }
      ++reserved_blocks_;
      block.slot = *slot;
    }
    put->blocks_.push_back(block);
  }
  return put;
}

absl::StatusOr<PutResult> BlockStore::Put(const PutSpec& spec, std::span<const uint8_t> payload) {
  absl::StatusOr<std::unique_ptr<PendingPut>> put = BeginPut(spec);
  if (!put.ok()) return put.status();
  if (absl::Status s = (*put)->Write(payload); !s.ok()) return s;
  return (*put)->Commit();
}

absl::StatusOr<PutResult> BlockStore::CommitPut(PendingPut& put) {
  if (put.received_ != put.expected_bytes()) {
    AbortPut(put);
    return absl::InvalidArgumentError(absl::StrCat(
        "the Put ended after ", put.received_, " of ", put.expected_bytes(), " payload bytes (",
        put.blocks_.size(), " blocks of ", put.block_bytes_, " bytes were announced)"));
  }
  // Hash outside the lock: the reserved slots belong to this Put alone.
  for (size_t i = 0; i < put.blocks_.size(); ++i) {
    PendingPut::Block& b = put.blocks_[i];
    if (!b.slot) continue;
    b.checksum = BlockChecksum(t1_->SlotData(*b.slot), put.block_bytes_);
    if (b.expected_checksum && *b.expected_checksum != b.checksum) {
      AbortPut(put);
      return absl::DataLossError(absl::StrFormat(
          "checksum mismatch on carried block %d: the payload's XXH3 is %016x but the "
          "header announced %016x",
          i, b.checksum, *b.expected_checksum));
    }
  }

  PutResult result;
  absl::MutexLock lock(&mu_);
  Sweep(clock_->Now());
  for (PendingPut::Block& b : put.blocks_) {
    result.keys.push_back(b.key);
    if (b.existing) {
      Unref(*b.existing);
      ++result.existing_blocks;
      continue;
    }
    --reserved_blocks_;
    if (index_.Find(b.key)) {  // a concurrent Put of the same block committed first
      t1_->Free(*b.slot);
      ++result.existing_blocks;
      continue;
    }
    Entry& e = entries_[*b.slot];
    e = Entry{.state = Entry::State::kLive,
              .key = b.key,
              .parent = b.parent,
              .tenant = put.tenant_,
              .layout_fingerprint = put.layout_fingerprint_,
              .num_layers = put.num_layers_,
              .size = put.block_bytes_,
              .checksum = b.checksum};
    index_.Insert(b.key, *b.slot);
    policy_->Insert(*b.slot);
    ++used_blocks_;
    used_bytes_ += put.block_bytes_;
    ++result.stored_blocks;
    events_.Append(BlockEvent{.type = BlockEvent::Type::kStored,
                              .reason = BlockEvent::Reason::kPut,
                              .tenant = put.tenant_,
                              .key = b.key,
                              .parent = b.parent,
                              .tier = Tier::kHostDram,
                              .layout_fingerprint = put.layout_fingerprint_});
  }
  put.done_ = true;
  counters_.put_stored_blocks += result.stored_blocks;
  counters_.put_existing_blocks += result.existing_blocks;
  counters_.put_bytes += put.received_;
  return result;
}

void BlockStore::AbortPut(PendingPut& put) {
  absl::MutexLock lock(&mu_);
  AbortPutLocked(put);
}

void BlockStore::AbortPutLocked(PendingPut& put) {
  for (const PendingPut::Block& b : put.blocks_) {
    if (b.slot) {
      t1_->Free(*b.slot);
      --reserved_blocks_;
    } else if (b.existing) {
      Unref(*b.existing);
    }
  }
  put.blocks_.clear();
  put.done_ = true;
  ++counters_.put_failures;
}

PendingPut::~PendingPut() {
  if (!done_) store_->AbortPut(*this);
}

absl::Status PendingPut::Write(std::span<const uint8_t> data) {
  if (done_) return absl::FailedPreconditionError("this Put has already ended");
  if (received_ + data.size() > expected_bytes()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the Put payload runs past the announced ", blocks_.size(), " blocks of ", block_bytes_,
        " bytes (", expected_bytes(), " bytes; got at least ", received_ + data.size(), ")"));
  }
  while (!data.empty()) {
    const Block& b = blocks_[received_ / block_bytes_];
    const uint64_t offset = received_ % block_bytes_;
    const size_t n = std::min<uint64_t>(data.size(), block_bytes_ - offset);
    // Bytes of an already cached block are discarded: committed blocks never change.
    if (b.slot) std::memcpy(store_->t1_->SlotData(*b.slot) + offset, data.data(), n);
    received_ += n;
    data = data.subspan(n);
  }
  return absl::OkStatus();
}

absl::StatusOr<PutResult> PendingPut::Commit() {
  if (done_) return absl::FailedPreconditionError("this Put has already ended");
  return store_->CommitPut(*this);
}

// ---------------------------------------------------------------------------------------
// Reads

std::unique_ptr<BlockReadHandle> BlockStore::OpenLocked(std::vector<uint32_t> handles) {
  std::vector<BlockView> views;
  views.reserve(handles.size());
  for (uint32_t h : handles) {
    Ref(h);
    const Entry& e = entries_[h];
    views.push_back(BlockView{.key = e.key,
                              .data = t1_->SlotData(h),
                              .size = e.size,
                              .checksum = e.checksum,
                              .tier = Tier::kHostDram,
                              .num_layers = e.num_layers,
                              .layout_fingerprint = e.layout_fingerprint});
  }
  return std::unique_ptr<BlockReadHandle>(
      new BlockReadHandle(this, std::move(handles), std::move(views)));
}

absl::StatusOr<std::unique_ptr<BlockReadHandle>> BlockStore::VerifyOrDrop(
    std::unique_ptr<BlockReadHandle> read) {
  // Hash outside the lock: the references keep the bytes in place and unchanged.
  std::vector<size_t> corrupt;
  for (size_t i = 0; i < read->views_.size(); ++i) {
    const BlockView& v = read->views_[i];
    if (BlockChecksum(v.data, v.size) != v.checksum) corrupt.push_back(i);
  }
  absl::MutexLock lock(&mu_);
  if (corrupt.empty()) {
    counters_.fetched_blocks += read->views_.size();
    for (const BlockView& v : read->views_) counters_.fetched_bytes += v.size;
    return read;
  }
  for (size_t i : corrupt) {
    const uint32_t h = read->handles_[i];
    if (entries_[h].state == Entry::State::kLive) {
      KVTIER_LOG(ERROR) << "block " << entries_[h].key.ShortHex()
                        << " failed its checksum; dropped";
      RemoveEntry(h, BlockEvent::Reason::kCorrupted);
      ++counters_.checksum_failures;
    }
  }
  for (uint32_t h : read->handles_) Unref(h);
  read->handles_.clear();
  return absl::DataLossError(absl::StrCat(
      corrupt.size(), " of ", read->views_.size(),
      " requested blocks failed their checksum and were dropped (first: block ", corrupt[0],
      ", key ", read->views_[corrupt[0]].key.ShortHex(), "…); treat them as a miss"));
}

absl::StatusOr<std::unique_ptr<BlockReadHandle>> BlockStore::ReadLease(std::string_view tenant,
                                                                       uint64_t lease_id) {
  std::unique_ptr<BlockReadHandle> read;
  {
    absl::MutexLock lock(&mu_);
    Sweep(clock_->Now());
    absl::StatusOr<const Lease*> lease = leases_.Find(lease_id, tenant);
    if (!lease.ok()) return lease.status();
    const std::vector<uint32_t>& handles = (*lease)->handles;
    for (size_t i = 0; i < handles.size(); ++i) {
      if (entries_[handles[i]].state != Entry::State::kLive) {
        return absl::NotFoundError(
            absl::StrCat("block ", i, " of lease ", lease_id, " was deleted since the lookup"));
      }
    }
    read = OpenLocked(handles);
  }
  return VerifyOrDrop(std::move(read));
}

absl::StatusOr<std::unique_ptr<BlockReadHandle>> BlockStore::ReadBlocks(
    std::string_view tenant, std::span<const BlockKey> keys) {
  std::unique_ptr<BlockReadHandle> read;
  {
    absl::MutexLock lock(&mu_);
    Sweep(clock_->Now());
    absl::StatusOr<std::vector<uint32_t>> handles = FindOwned(tenant, keys);
    if (!handles.ok()) return handles.status();
    read = OpenLocked(*std::move(handles));
  }
  return VerifyOrDrop(std::move(read));
}

void BlockStore::ReleaseRead(std::span<const uint32_t> handles) {
  absl::MutexLock lock(&mu_);
  Sweep(clock_->Now());
  for (uint32_t h : handles) Unref(h);
}

BlockReadHandle::~BlockReadHandle() {
  if (!handles_.empty()) store_->ReleaseRead(handles_);
}

// ---------------------------------------------------------------------------------------
// Release, pins, delete, stats

absl::Status BlockStore::Release(std::string_view tenant, uint64_t lease_id) {
  absl::MutexLock lock(&mu_);
  Sweep(clock_->Now());
  absl::StatusOr<std::vector<uint32_t>> handles = leases_.Release(lease_id, tenant);
  if (!handles.ok()) return handles.status();
  for (uint32_t h : *handles) Unref(h);
  return absl::OkStatus();
}

absl::StatusOr<absl::Duration> BlockStore::Pin(std::string_view tenant,
                                               std::span<const BlockKey> keys, absl::Duration ttl) {
  const absl::Duration granted = ClampTtl(ttl, options_.default_pin_ttl, options_.max_pin_ttl);
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  Sweep(now);
  absl::StatusOr<std::vector<uint32_t>> handles = FindOwned(tenant, keys);
  if (!handles.ok()) return handles.status();
  for (uint32_t h : *handles) {
    Entry& e = entries_[h];
    if (e.pinned_until == absl::InfinitePast()) {
      ++pinned_blocks_;
      policy_->Erase(h);
    }
    // Pins of several callers never shorten each other.
    e.pinned_until = std::max(e.pinned_until, now + granted);
    pin_expiry_.emplace(e.pinned_until, h);
  }
  return granted;
}

absl::StatusOr<uint32_t> BlockStore::Unpin(std::string_view tenant,
                                           std::span<const BlockKey> keys) {
  absl::MutexLock lock(&mu_);
  Sweep(clock_->Now());
  absl::StatusOr<std::vector<uint32_t>> handles = FindOwned(tenant, keys);
  if (!handles.ok()) return handles.status();
  uint32_t unpinned = 0;
  for (uint32_t h : *handles) {
    Entry& e = entries_[h];
    if (e.pinned_until == absl::InfinitePast()) continue;
    e.pinned_until = absl::InfinitePast();
    --pinned_blocks_;
    ++unpinned;
    if (Evictable(e) && !policy_->Contains(h)) policy_->Insert(h);
  }
  return unpinned;
}

absl::StatusOr<uint32_t> BlockStore::Delete(std::string_view tenant,
                                            std::span<const BlockKey> keys) {
  absl::MutexLock lock(&mu_);
  Sweep(clock_->Now());
  absl::StatusOr<std::vector<uint32_t>> handles = FindOwned(tenant, keys);
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

BlockStoreStats BlockStore::Stats() const {
  absl::MutexLock lock(&mu_);
  BlockStoreStats s = counters_;
  s.t1_capacity_bytes = t1_->capacity_bytes();
  s.t1_slot_bytes = t1_->slot_bytes();
  s.t1_capacity_blocks = t1_->capacity_slots();
  s.t1_used_blocks = used_blocks_;
  s.t1_used_bytes = used_bytes_;
  s.t1_reserved_blocks = reserved_blocks_;
  s.t1_locked = t1_->locked();
  s.t1_lock_method = t1_->lock_method();
  s.active_leases = leases_.active();
  s.pinned_blocks = pinned_blocks_;
  s.eviction_policy = std::string(policy_->name());
  return s;
}

}  // namespace kvtier
