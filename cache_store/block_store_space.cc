// BlockStore: room for blocks. Taking T1 and T2 slots of a block's size class, evicting a
// class's victim or moving a slab between classes when the tier is full (block_store.h,
// "Space"), the bound on how many blocks the store holds (max_blocks), and the accounts of
// what occupies each tier (Account, Stats).
#include <algorithm>

#include "cache_store/block_store.h"
#include "cache_store/log.h"

namespace kvtier {

bool BlockStore::ReserveHandle(uint32_t tenant) {
  if (free_handles_.size() > reserved_handles_) {
    ++reserved_handles_;
    return true;
  }
  // Every handle is taken or promised: a block leaves the store. T2's victim first (its
  // bytes are the cheapest to lose); a T1 victim is dropped, not demoted, since a demoted
  // block keeps its handle.
  std::optional<uint32_t> victim = t2_ ? VictimFor(Tier::kLocalSsd, -1, tenant) : std::nullopt;
  if (victim) {
    RemoveEntry(*victim, BlockEvent::Reason::kEvicted);
    ++counters_.t2_evicted_blocks;
  } else {
    victim = VictimFor(Tier::kHostDram, -1, tenant);
    if (!victim) return false;
    RemoveEntry(*victim, BlockEvent::Reason::kEvicted);
    ++counters_.evicted_blocks;
  }
  ++counters_.block_limit_evictions;
  if (free_handles_.size() <= reserved_handles_) return false;  // the victim is still read
  ++reserved_handles_;
  return true;
}

bool BlockStore::Drainable(Tier tier, uint32_t slab, uint32_t tenant) const {
  const SlabAllocator& slots = SlotsOf(tier);
  if (slots.held(slab) || slots.ClassOfSlab(slab) < 0) return false;
  absl::flat_hash_map<uint32_t, uint64_t> bytes_of_tenant;  // other tenants' (with quotas)
  for (auto [slot, owner] : slots.AllocatedInSlab(slab)) {
    if (owner == kStaleOwner) continue;  // a stale record: nobody's block (MarkStaleT2)
    // A slot without a live owner here is reserved by a Put or a promotion, or still read.
    if (owner == SlabAllocator::kNoOwner || owner >= entries_.size()) return false;
    const Entry& e = entries_[owner];
    if (e.state != Entry::State::kLive || e.tier != tier || e.slot != slot || e.refs > 0 ||
        e.pinned_until != absl::InfinitePast() || e.t2_reads > 0) {
      return false;
    }
    if (ledger_.enabled() && e.tenant_id != tenant) bytes_of_tenant[e.tenant_id] += e.size;
  }
  for (auto [other, bytes] : bytes_of_tenant) {
    if (!ledger_.Yields(other, tier, bytes)) return false;
  }
  return true;
}

std::optional<uint32_t> BlockStore::VictimFor(Tier tier, int cls, uint32_t tenant) const {
  const EvictionPolicy* policy = PolicyFor(tier);
  if (!ledger_.enabled()) return cls < 0 ? policy->Victim() : policy->VictimOf(cls);
  // A tenant below its guarantee grows into it: other tenants' blocks go before its own.
  const bool grow = ledger_.BelowGuarantee(tenant, tier);
  const int first = cls < 0 ? 0 : cls;
  const int last = cls < 0 ? SlotsOf(tier).num_classes() - 1 : cls;
  for (const bool own : {!grow, true}) {
    std::optional<uint32_t> best;
    std::optional<uint32_t> best_own_partition;  // when best is the tenant's own block
    for (int c = first; c <= last; ++c) {
      for (const TenantLedger::Partition& p : ledger_.PartitionsOfClass(tier, c)) {
        if (p.tenant == tenant && !own) continue;
        const std::optional<uint32_t> v = policy->VictimOf(p.partition);
        if (!v || (best && !policy->EvictsBefore(*v, *best))) continue;
        if (p.tenant != tenant && !ledger_.Yields(p.tenant, tier, entries_[*v].size)) continue;
        best = v;
        best_own_partition =
            p.tenant == tenant ? std::optional<uint32_t>(p.partition) : std::nullopt;
      }
    }
    // A tenant held at its guarantee makes room among its own blocks as a cache of its own
    // would (EvictionPolicy::OwnVictimOf): others' traffic does not reorder them.
    if (best_own_partition && !ledger_.Yields(tenant, tier, entries_[*best].size)) {
      return policy->OwnVictimOf(*best_own_partition);
    }
    if (best || own) return best;
  }
  return std::nullopt;
}

std::optional<uint32_t> BlockStore::OwnVictim(Tier tier, int cls, uint32_t tenant) const {
  const EvictionPolicy* policy = PolicyFor(tier);
  // The analysis does not follow mu_ into a lambda: the ledger is passed in.
  auto own_of_class = [&](const TenantLedger& ledger, int c) -> std::optional<uint32_t> {
    for (const TenantLedger::Partition& p : ledger.PartitionsOfClass(tier, c)) {
      if (p.tenant == tenant) return policy->OwnVictimOf(p.partition);
    }
    return std::nullopt;
  };
  if (std::optional<uint32_t> v = own_of_class(ledger_, cls)) return v;
  std::optional<uint32_t> best;
  for (int c = 0; c < SlotsOf(tier).num_classes(); ++c) {
    if (c == cls) continue;
    const std::optional<uint32_t> v = own_of_class(ledger_, c);
    if (v && (!best || policy->EvictsBefore(*v, *best))) best = v;
  }
  return best;
}

std::optional<uint32_t> BlockStore::SlabToMove(Tier tier, int cls, uint32_t tenant) const {
  const SlabAllocator& slots = SlotsOf(tier);
  // How long a class's blocks sit idle on average, times their size: byte-time per access.
  // A class whose bytes wait longer for their next use is worth less per byte; moving a
  // slab toward the class that waits less evens them out (each class ends up with memory
  // in proportion to the accesses it gets, whatever its block size).
  const std::vector<ClassIdle>& idle = idle_[static_cast<int>(tier)];
  const double now = static_cast<double>(access_tick_);
  auto idle_bytes = [&](int c) {
    if (static_cast<size_t>(c) >= idle.size() || idle[c].blocks == 0) return -1.0;
    const double mean_last =
        static_cast<double>(idle[c].last_access_sum) / static_cast<double>(idle[c].blocks);
    return (now - mean_last + 1) *
           static_cast<double>(slots.class_slot_bytes(c));
  };
  // A class with no slab, or nothing of its own to evict, must take a slab.
  const double own_idle =
      VictimFor(tier, cls, tenant) && slots.class_slabs(cls) > 0 ? idle_bytes(cls) : -1.0;
  std::vector<std::pair<double, int>> donors;  // (idle bytes, class)
  std::vector<uint32_t> donor_victims;         // by class
  donor_victims.resize(slots.num_classes(), kNone);
  for (int d = 0; d < slots.num_classes(); ++d) {
    if (d == cls || slots.class_slabs(d) == 0) continue;
    const std::optional<uint32_t> victim = VictimFor(tier, d, tenant);
    if (!victim) continue;
    donor_victims[d] = *victim;
    const double d_idle = idle_bytes(d);
    if (own_idle >= 0 && d_idle < kRebalanceMargin * own_idle) continue;
    donors.emplace_back(d_idle, d);
  }
  std::sort(donors.begin(), donors.end(), std::greater<>());
  for (auto [idle, d] : donors) {
    // The tail block's own slab first (its neighbours are as likely cold), then the
    // donor's other slabs, emptiest first; a few are tried.
    std::vector<uint32_t> candidates = slots.SlabsOfClass(d);
    const uint32_t tail_slab = slots.SlabOf(entries_[donor_victims[d]].slot);
    std::sort(candidates.begin(), candidates.end(), [&](uint32_t a, uint32_t b) {
      if ((a == tail_slab) != (b == tail_slab)) return a == tail_slab;
      return slots.allocated_in_slab(a) < slots.allocated_in_slab(b);
    });
    constexpr size_t kMaxTried = 8;
    for (size_t i = 0; i < candidates.size() && i < kMaxTried; ++i) {
      if (slots.SlotsIn(candidates[i], cls) > 0 && Drainable(tier, candidates[i], tenant)) {
        return candidates[i];
      }
    }
  }
  return std::nullopt;
}

bool BlockStore::AdmitToT2(uint32_t h, const BlockTraits& traits) const {
  const Entry& e = entries_[h];
  switch (options_.t2_admission) {
    case BlockStoreOptions::T2Admission::kAll:
      return true;
    case BlockStoreOptions::T2Admission::kScore:
      return t1_policy_->ReuseScore(h) >= options_.t2_admit_min_score;
    case BlockStoreOptions::T2Admission::kReuse:
      return e.hits > 0 || e.returned ||
             t1_policy_->ReuseScore(h) >= options_.t2_admit_min_score;
    case BlockStoreOptions::T2Admission::kPredict:
      return e.hits > 0 || e.returned ||
             predictor_.Probability(traits) >= options_.t2_admit_min_return;
  }
  return false;
}

std::optional<uint32_t> BlockStore::EvictT1(uint32_t h, Reservation& r, bool free_slot) {
  Entry& e = entries_[h];
  if (e.t2_copy != kNone) {  // its copy in T2 is still valid: nothing to write
    const uint32_t t1_slot = e.slot;
    DemoteToCopy(h);
    if (free_slot) {
      t1_->slots().Free(t1_slot);
      return std::nullopt;
    }
    t1_->slots().SetOwner(t1_slot, SlabAllocator::kNoOwner);
    return t1_slot;
  }
  // Dropped without T2, when T2's admission filter refuses it, or when every T2 block is
  // protected. An evicted block is remembered (RemoveEntry), to admit it when it returns.
  // A full write queue drops it too (counted).
  bool admitted = false;
  if (t2_ != nullptr) {
    const BlockTraits traits = TraitsOf(e);
    // A trial for kPredict's learning (a no-op when the predictor is off).
    if (e.hits == 0 && !e.returned) predictor_.OnVictim(traits.key_fingerprint, traits);
    admitted = AdmitToT2(h, traits);
  }
  if (t2_ != nullptr && !admitted) ++counters_.demotion_rejected_blocks;
  if (admitted && write_queue_bytes_ + StagedBytes(e.size) > write_queue_limit_) {
    ++counters_.t2_write_queue_drops;
    admitted = false;
  }
  const std::optional<uint32_t> t2_slot =
      admitted ? AllocateT2(e.size, e.tenant_id) : std::nullopt;
  if (!t2_slot) {
    RemoveEntry(h, BlockEvent::Reason::kEvicted);
    ++counters_.evicted_blocks;
    return std::nullopt;
  }
  // Out of the index and the T1 policy while the bytes travel; they stay in the T1 slot
  // until the write ends.
  index_.Erase(e.key);
  t1_policy_->OnLeave(h, /*evicted=*/true);
  UnlinkParent(h);
  Account(e, -1);
  // Its T2 slot counts against the tenant's T2 usage while the bytes travel.
  ledger_.Charge(e.tenant_id, Tier::kLocalSsd, static_cast<int64_t>(e.size), 0);
  e.state = Entry::State::kMoving;
  write_queue_bytes_ += StagedBytes(e.size);
  const uint32_t t1_slot = e.slot;
  e.slot = kNone;
  r.demotions.push_back(Demotion{.handle = h,
                                 .source = t1_->SlotData(t1_slot),
                                 .t2_slot = *t2_slot,
                                 .record = SsdRecord{.key = e.key,
                                                     .parent = e.parent,
                                                     .tenant = e.tenant,
                                                     .layout_fingerprint = e.layout_fingerprint,
                                                     .num_layers = e.num_layers,
                                                     .depth = e.depth,
                                                     .size = e.size,
                                                     .checksum = e.checksum}});
  if (free_slot) {
    t1_->slots().Free(t1_slot);  // in a slab the caller holds until the write is done
    return std::nullopt;
  }
  t1_->slots().SetOwner(t1_slot, SlabAllocator::kNoOwner);
  return t1_slot;
}

std::optional<uint32_t> BlockStore::AllocateT1(uint64_t bytes, uint32_t tenant, Reservation& r) {
  SlabAllocator& slots = t1_->slots();
  const std::optional<int> cls = slots.ClassFor(bytes);
  if (!cls) return std::nullopt;
  // A tenant at its limit makes room among its own blocks. A victim of the class needed
  // hands over its slot; a victim of another size frees its slot after its demotion.
  std::optional<uint32_t> own_slot;
  while (ledger_.OverLimit(tenant, Tier::kHostDram, bytes)) {
    const std::optional<uint32_t> victim = OwnVictim(Tier::kHostDram, *cls, tenant);
    if (!victim) {
      if (own_slot) r.free_after.push_back(*own_slot);
      return std::nullopt;
    }
    ledger_.CountLimitEviction(tenant, Tier::kHostDram);
    const bool same_class = slots.ClassOfSlot(entries_[*victim].slot) == *cls;
    if (std::optional<uint32_t> handed = EvictT1(*victim, r, /*free_slot=*/false)) {
      if (same_class && !own_slot) {
        own_slot = handed;
      } else {
        r.free_after.push_back(*handed);
      }
    }
  }
  if (own_slot) return own_slot;
  if (std::optional<uint32_t> slot = slots.Allocate(*cls)) return slot;
  for (uint32_t slab : r.held_slabs) {
    if (slots.ClassOfSlab(slab) != *cls) continue;
    if (std::optional<uint32_t> slot = slots.AllocateInSlab(slab)) return slot;
  }
  if (std::optional<uint32_t> slab = SlabToMove(Tier::kHostDram, *cls, tenant)) {
    ++counters_.t1_slab_moves;
    for (auto [slot, owner] : slots.AllocatedInSlab(*slab)) {
      ++counters_.t1_slab_move_evictions;
      EvictT1(owner, r, /*free_slot=*/true);
    }
    // Held by this operation: demotions still read the old blocks' bytes from it.
    slots.Reassign(*slab, *cls);
    r.held_slabs.push_back(*slab);
    return slots.AllocateInSlab(*slab);
  }
  const std::optional<uint32_t> victim = VictimFor(Tier::kHostDram, *cls, tenant);
  if (!victim) return std::nullopt;
  if (std::optional<uint32_t> handed = EvictT1(*victim, r, /*free_slot=*/false)) return handed;
  return slots.Allocate(*cls);  // the victim had no references, so its slot is free now
}

std::optional<uint32_t> BlockStore::AllocateT2(uint64_t bytes, uint32_t tenant) {
  SlabAllocator& slots = t2_->slots();
  const std::optional<int> cls = slots.ClassFor(SsdTier::SlotBytesFor(bytes));
  if (!cls) return std::nullopt;
  while (ledger_.OverLimit(tenant, Tier::kLocalSsd, bytes)) {
    const std::optional<uint32_t> victim = OwnVictim(Tier::kLocalSsd, *cls, tenant);
    if (!victim) return std::nullopt;
    ledger_.CountLimitEviction(tenant, Tier::kLocalSsd);
    RemoveEntry(*victim, BlockEvent::Reason::kEvicted);
    ++counters_.t2_evicted_blocks;
  }
  if (std::optional<uint32_t> slot = slots.Allocate(*cls)) return slot;
  // A slot a promoted block left: no block is in it any more.
  if (std::optional<uint32_t> slot = TakeStaleT2(*cls)) return slot;
  if (std::optional<uint32_t> slab = SlabToMove(Tier::kLocalSsd, *cls, tenant)) {
    ++counters_.t2_slab_moves;
    // Nobody reads these blocks: once evicted the slab is empty and free for any class.
    for (auto [slot, owner] : slots.AllocatedInSlab(*slab)) {
      if (owner == kStaleOwner) {
        DropStaleT2(slot);  // its header read in the new class's geometry must not parse
        continue;
      }
      RemoveEntry(owner, BlockEvent::Reason::kEvicted);
      ++counters_.t2_evicted_blocks;
    }
    return slots.Allocate(*cls);
  }
  const std::optional<uint32_t> victim = VictimFor(Tier::kLocalSsd, *cls, tenant);
  if (!victim) return std::nullopt;
  RemoveEntry(*victim, BlockEvent::Reason::kEvicted);
  ++counters_.t2_evicted_blocks;
  return slots.Allocate(*cls);
}

// ---------------------------------------------------------------------------------------
// Accounts

void BlockStore::Account(const Entry& e, int sign) {
  const int t = static_cast<int>(e.tier);
  used_blocks_[t] += sign;
  used_bytes_[t] += sign * static_cast<int64_t>(e.size);
  ClassIdle& idle = IdleOf(e.tier, SlotsOf(e.tier).ClassOfSlot(e.slot));
  ledger_.Charge(e.tenant_id, e.tier, sign * static_cast<int64_t>(e.size), sign);
  idle.blocks += sign;
  idle.last_access_sum += sign * static_cast<int64_t>(e.last_access);
  LayoutUsage& u = layouts_[e.layout_fingerprint];
  u.layout_fingerprint = e.layout_fingerprint;
  u.block_bytes = e.size;
  if (e.tier == Tier::kHostDram) {
    u.t1_blocks += sign;
    u.t1_bytes += sign * static_cast<int64_t>(e.size);
  } else {
    u.t2_blocks += sign;
    u.t2_bytes += sign * static_cast<int64_t>(e.size);
  }
  if (u.t1_blocks == 0 && u.t2_blocks == 0) layouts_.erase(e.layout_fingerprint);
}

BlockStoreStats BlockStore::Stats() const {
  absl::MutexLock lock(&mu_);
  BlockStoreStats s = counters_;
  const SlabAllocator& t1 = t1_->slots();
  s.t1_capacity_bytes = t1.capacity_bytes();
  s.t1_slot_bytes = t1.class_slot_bytes(0);
  s.t1_capacity_blocks = t1.capacity_slots(0);
  s.max_block_bytes = t1_->max_block_bytes();
  s.t1_slab_bytes = t1.slab_bytes();
  s.t1_slabs = t1.num_slabs();
  s.t1_free_slabs = t1.free_slabs();
  s.t1_allocated_bytes = t1.allocated_bytes();
  s.t1_used_blocks = used_blocks_[static_cast<int>(Tier::kHostDram)];
  s.t1_used_bytes = used_bytes_[static_cast<int>(Tier::kHostDram)];
  s.max_blocks = entries_.size();
  s.t2_enabled = t2_ != nullptr;
  if (t2_) {
    const SlabAllocator& t2 = t2_->slots();
    s.t2_direct_io = t2_->direct_io();
    s.t2_capacity_bytes = t2.capacity_bytes();
    s.t2_slot_bytes = t2.class_slot_bytes(0);
    s.t2_capacity_blocks = t2.capacity_slots(0);
    s.t2_slab_bytes = t2.slab_bytes();
    s.t2_slabs = t2.num_slabs();
    s.t2_free_slabs = t2.free_slabs();
    s.t2_allocated_bytes = t2.allocated_bytes() - stale_t2_.bytes();  // stale: reusable
    s.t2_used_blocks = used_blocks_[static_cast<int>(Tier::kLocalSsd)];
    s.t2_used_bytes = used_bytes_[static_cast<int>(Tier::kLocalSsd)];
  }
  s.layouts.reserve(layouts_.size());
  for (const auto& [fp, usage] : layouts_) s.layouts.push_back(usage);
  std::sort(s.layouts.begin(), s.layouts.end(), [](const LayoutUsage& a, const LayoutUsage& b) {
    const uint64_t x = a.t1_bytes + a.t2_bytes, y = b.t1_bytes + b.t2_bytes;
    return x != y ? x > y : a.layout_fingerprint < b.layout_fingerprint;
  });
  if (s.layouts.size() > kMaxLayoutsReported) s.layouts.resize(kMaxLayoutsReported);
  s.quotas_enabled = ledger_.enabled();
  s.tenants = ledger_.Usage();
  s.tenants_holding = s.tenants.size();
  if (s.tenants.size() > kMaxTenantsReported) s.tenants.resize(kMaxTenantsReported);
  s.t1_reserved_blocks = reserved_blocks_;
  s.t1_locked = t1_->locked();
  s.t1_lock_method = t1_->lock_method();
  s.active_leases = leases_.active();
  s.pinned_blocks = pinned_blocks_;
  s.t2_write_queue_bytes = write_queue_bytes_;
  s.eviction_policy = std::string(t1_policy_->name());
  s.t1_bonus_weight = t1_policy_->bonus_weight();
  s.t2_eviction_policy = std::string(t2_policy_->name());
  return s;
}

}  // namespace kvtier
