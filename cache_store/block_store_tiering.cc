// BlockStore: moving blocks from T1 to T2. Demotion to T2 (the Demotion steps; which blocks
// leave T1 is block_store_space.cc's; reads that promote T2 blocks back are
// block_store_reads.cc's), the T2 copies of promoted blocks, the stale records promoted
// blocks leave in T2, and rebuilding the T2 index at start (Recover). Disk I/O runs on the
// store's T2 reader and writer threads, never under the mutex and never on the caller's
// thread (block_store.h), but for the rare header writes of a Delete or a slab move.
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "cache_store/block_store.h"
#include "cache_store/checksum.h"
#include "cache_store/log.h"

namespace kvtier {

// ---------------------------------------------------------------------------------------
// Warm restart

void BlockStore::Recover() {
  if (!t2_) return;
  std::vector<std::pair<uint32_t, SsdRecord>> records = t2_->TakeRecovered();
  absl::MutexLock lock(&mu_);
  counters_.t2_recovery_drops = t2_->recovery_drops();
  std::vector<uint32_t> added;
  uint64_t over_limit = 0;
  for (auto& [slot, r] : records) {
    if (index_.Find(r.key) || free_handles_.empty()) {  // a stale second copy, or too many
      if (free_handles_.empty()) ++over_limit;
      MarkStaleT2(slot, r.key);  // reusable; a Delete of the key still reaches it
      continue;
    }
    const uint32_t h = NewHandle();
    Entry& e = entries_[h];
    e.state = Entry::State::kLive;
    e.tier = Tier::kLocalSsd;
    e.slot = slot;
    e.key = r.key;
    e.parent = r.parent;
    e.tenant = std::move(r.tenant);
    e.tenant_id = ledger_.Acquire(e.tenant);
    e.layout_fingerprint = r.layout_fingerprint;
    e.num_layers = r.num_layers;
    e.depth = r.depth;
    e.size = r.size;
    e.checksum = r.checksum;
    index_.Insert(e.key, h);
    e.last_access = ++access_tick_;
    Account(e, +1);
    t2_->slots().SetOwner(slot, h);
    t2_policy_->OnResident(h, TraitsOf(e));
    added.push_back(h);
  }
  if (over_limit > 0) {
    KVTIER_LOG(WARNING) << "T2 held " << over_limit << " blocks more than max_blocks ("
                        << entries_.size() << "); they are dropped";
  }
  // Parents are linked once every recovered block is indexed; shallow blocks first, so
  // the policy sees the same tree a live store would have built.
  std::vector<std::pair<uint32_t, uint32_t>> by_depth;  // (depth, handle)
  by_depth.reserve(added.size());
  for (uint32_t h : added) by_depth.emplace_back(entries_[h].depth, h);
  std::sort(by_depth.begin(), by_depth.end());
  for (auto [depth, h] : by_depth) LinkParent(h);
  for (uint32_t h : added) SyncEvictable(h);
  counters_.t2_recovered_blocks = added.size();
  if (!records.empty() || t2_->recovery_drops() > 0) {
    KVTIER_LOG(INFO) << "T2 " << t2_->path() << ": recovered " << added.size()
                     << " blocks, dropped " << t2_->recovery_drops() << " damaged records";
  }
}

// ---------------------------------------------------------------------------------------
// Demotion

BlockStore::StagedBlock::StagedBlock(uint64_t size) : size_(size) {
  const uint64_t rounded = StagedBytes(size);
  data_ = static_cast<uint8_t*>(std::aligned_alloc(SsdTier::kAlign, rounded));
  KVTIER_CHECK(data_ != nullptr) << "out of memory for a " << rounded << " byte T2 write";
  std::memset(data_ + size, 0, rounded - size);  // written as it is (SsdTier::Write padded)
}

BlockStore::StagedBlock::~StagedBlock() { std::free(data_); }

void BlockStore::RunDemotions(Reservation& r) {
  // Memory speed: the disk write is queued after (FinishDemotions).
  for (Demotion& d : r.demotions) {
    if (!d.status.ok()) continue;  // abandoned
    d.staging = std::make_shared<StagedBlock>(d.record.size);
    std::memcpy(d.staging->data(), d.source, d.record.size);
  }
}

void BlockStore::FinishDemotions(Reservation& r) {
  for (uint32_t slab : r.held_slabs) t1_->slots().Unhold(slab);
  r.held_slabs.clear();
  for (uint32_t slot : r.free_after) t1_->slots().Free(slot);
  r.free_after.clear();
  std::vector<Demotion>& demotions = r.demotions;
  std::vector<QueuedWrite> writes;
  for (Demotion& d : demotions) {
    Entry& e = entries_[d.handle];
    const bool duplicate = index_.Find(e.key).has_value();  // re-Put while it travelled
    ledger_.Charge(e.tenant_id, Tier::kLocalSsd, -static_cast<int64_t>(e.size), 0);
    if (d.status.ok() && !duplicate) {
      // In T2 from now on; readers copy its bytes from the queue until the write ends.
      e.tier = Tier::kLocalSsd;
      e.slot = d.t2_slot;
      e.t2_served = 0;
      e.pending = d.staging;
      AddResident(d.handle);
      ++e.writes;
      ++e.t2_reads;
      ++counters_.demoted_blocks;
      writes.push_back({.handle = d.handle,
                        .slot = d.t2_slot,
                        .record = std::move(d.record),
                        .staging = std::move(d.staging)});
      continue;
    }
    write_queue_bytes_ -= StagedBytes(e.size);
    t2_->slots().Free(d.t2_slot);
    ++counters_.evicted_blocks;
    events_.Append(EventFor(e, BlockEvent::Type::kRemoved, BlockEvent::Reason::kEvicted));
    e.slot = kNone;
    FreeEntry(d.handle);
  }
  demotions.clear();
  // Blocks evicted together mostly get adjacent slots (the slots blocks evicted together
  // before them left): each run of adjacent slots is one disk write.
  std::sort(writes.begin(), writes.end(),
            [](const QueuedWrite& a, const QueuedWrite& b) { return a.slot < b.slot; });
  for (size_t first = 0; first < writes.size();) {
    size_t end = first + 1;
    while (end < writes.size() && end - first < SsdTier::kMaxRun &&
           t2_->Contiguous(writes[end - 1].slot, writes[end - 1].record.size, writes[end].slot)) {
      ++end;
    }
    std::vector<QueuedWrite> run(std::make_move_iterator(writes.begin() + first),
                                 std::make_move_iterator(writes.begin() + end));
    t2_writers_->Submit([this, run = std::move(run)]() mutable { WriteDemotions(run); });
    first = end;
  }
}

void BlockStore::WriteDemotions(std::vector<QueuedWrite>& run) {
  std::vector<SsdTier::RunRecord> records;
  records.reserve(run.size());
  for (const QueuedWrite& w : run) {
    records.push_back({.slot = w.slot, .record = &w.record, .data = w.staging->data()});
  }
  const absl::Time start = absl::Now();
  const absl::Status status = t2_->WriteRun(records);
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  {
    absl::MutexLock lock(&mu_);
    ++counters_.t2_writes;
    counters_.t2_write_seconds += seconds;
  }
  for (QueuedWrite& w : run) SettleDemotion(w, status);
}

void BlockStore::SettleDemotion(QueuedWrite& w, const absl::Status& status) {
  const uint32_t h = w.handle;
  const uint32_t slot = w.slot;
  const SsdRecord& record = w.record;
  const std::shared_ptr<StagedBlock>& staging = w.staging;
  bool invalidate = false;
  {
    absl::MutexLock lock(&mu_);
    write_queue_bytes_ -= StagedBytes(record.size);
    Entry& e = entries_[h];  // still this block: it is freed only after its writes
    if (e.pending == staging) e.pending.reset();
    const bool home =
        e.state == Entry::State::kLive && e.tier == Tier::kLocalSsd && e.slot == slot;
    if (status.ok()) {
      counters_.t2_bytes_written += record.size;
    } else {
      ++counters_.t2_write_errors;
      KVTIER_LOG(ERROR) << "demotion of block " << e.key.ShortHex()
                        << " to T2 failed; the block is dropped: " << status;
      if (home) {
        RemoveEntry(h, BlockEvent::Reason::kEvicted);
        ++counters_.evicted_blocks;
      } else if (e.t2_copy == slot) {
        ReleaseCopy(h, /*invalidate=*/false);  // it never became valid
      }
    }
    // Deleted or dropped while its write was queued (its slot goes with the entry, at the
    // Unref below): the record just written must not come back with a restart.
    invalidate = status.ok() && e.state == Entry::State::kDropped &&
                 e.tier == Tier::kLocalSsd && e.slot == slot;
  }
  if (invalidate) {
    if (absl::Status s = t2_->Invalidate(slot); !s.ok()) {
      KVTIER_LOG(ERROR) << "cannot invalidate T2 slot " << slot << ": " << s;
    }
  }
  absl::MutexLock lock(&mu_);
  Entry& e = entries_[h];
  --e.writes;
  if (--e.t2_reads == 0) {
    for (uint32_t retired : e.retired_t2_slots) RetireT2Slot(e, retired);
    e.retired_t2_slots.clear();
  }
  if (e.state == Entry::State::kDropped && e.refs == 0 && e.writes == 0) FreeEntry(h);
}

void BlockStore::DemoteToCopy(uint32_t h) {
  Entry& e = entries_[h];
  t1_policy_->OnLeave(h, /*evicted=*/true);
  UnlinkParent(h);
  Account(e, -1);
  // The copy's charge becomes the block's own T2 charge (Account below).
  ledger_.Charge(e.tenant_id, Tier::kLocalSsd, -static_cast<int64_t>(e.size), 0);
  --counters_.t2_copy_blocks;
  ++counters_.clean_demotions;
  e.tier = Tier::kLocalSsd;
  e.slot = e.t2_copy;
  e.t2_copy = kNone;
  e.t2_served = 0;
  e.last_access = ++access_tick_;
  Account(e, +1);
  t2_->slots().SetOwner(e.slot, h);
  t2_policy_->OnResident(h, TraitsOf(e));
  LinkParent(h);
  SyncEvictable(h);
}

void BlockStore::ReleaseCopy(uint32_t h, bool invalidate) {
  Entry& e = entries_[h];
  const uint32_t slot = e.t2_copy;
  e.t2_copy = kNone;
  ledger_.Charge(e.tenant_id, Tier::kLocalSsd, -static_cast<int64_t>(e.size), 0);
  --counters_.t2_copy_blocks;
  if (invalidate) {  // deleted: a restart must not bring it back (rare; under the lock)
    if (absl::Status s = t2_->Invalidate(slot); !s.ok()) {
      ++counters_.t2_write_errors;
      KVTIER_LOG(ERROR) << "cannot invalidate the T2 copy of deleted block "
                        << e.key.ShortHex() << ": " << s;
    }
  }
  if (e.t2_reads > 0) {
    e.retired_t2_slots.push_back(slot);  // released by the last reader of it
  } else if (invalidate) {
    t2_->slots().Free(slot);
  } else {
    MarkStaleT2(slot, e.key);  // a valid record still: a later Delete of the key reaches it
  }
}

void BlockStore::MarkStaleT2(uint32_t slot, const BlockKey& key) {
  SlabAllocator& slots = t2_->slots();
  const int cls = slots.ClassOfSlot(slot);
  slots.SetOwner(slot, kStaleOwner);
  stale_t2_.Add(slot, key, cls, slots.class_slot_bytes(cls));
}

void BlockStore::RetireT2Slot(const Entry& e, uint32_t slot) {
  MarkStaleT2(slot, e.key);
  if (e.deleted) DropStaleT2(slot);  // deleted while a read or write still used the slot
}

std::optional<uint32_t> BlockStore::TakeStaleT2(int cls) {
  const std::optional<uint32_t> slot = stale_t2_.Take(cls);
  // Still allocated: the caller's write replaces the record.
  if (slot) t2_->slots().SetOwner(*slot, SlabAllocator::kNoOwner);
  return slot;
}

void BlockStore::DropStaleT2(uint32_t slot) {
  if (!stale_t2_.Remove(slot)) return;
  if (absl::Status s = t2_->Invalidate(slot); !s.ok()) {
    ++counters_.t2_write_errors;
    KVTIER_LOG(ERROR) << "cannot invalidate stale T2 slot " << slot << ": " << s;
  }
  t2_->slots().SetOwner(slot, SlabAllocator::kNoOwner);
  t2_->slots().Free(slot);
}

void BlockStore::InvalidateStaleT2(const BlockKey& key) {
  for (uint32_t slot : stale_t2_.OfKey(key)) DropStaleT2(slot);
}

}  // namespace kvtier
