// BlockStore: moving blocks between T1 and T2. Demotion to T2 (the Demotion steps; which
// blocks leave T1 is block_store_space.cc's), reads that load T2 blocks and promote them to
// T1 (OpenLocked, LoadAsync, FinishLoad), and rebuilding the T2 index at start (Recover).
// Disk I/O runs on the store's T2 reader and writer threads, never under the mutex and never
// on the caller's thread (block_store.h).
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
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
      t2_->slots().Free(slot);
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
  for (Demotion& d : demotions) {
    Entry& e = entries_[d.handle];
    const bool duplicate = index_.Find(e.key).has_value();  // re-Put while it travelled
    ledger_.Charge(e.tenant_id, Tier::kLocalSsd, -static_cast<int64_t>(e.size), 0);
    if (d.status.ok() && !duplicate) {
      // In T2 from now on; readers copy its bytes from the queue until the write ends.
      e.tier = Tier::kLocalSsd;
      e.slot = d.t2_slot;
      e.pending = d.staging;
      AddResident(d.handle);
      ++e.writes;
      ++e.t2_reads;
      ++counters_.demoted_blocks;
      t2_writers_->Submit([this, h = d.handle, slot = d.t2_slot, record = std::move(d.record),
                           staging = std::move(d.staging)]() mutable {
        WriteDemotion(h, slot, std::move(record), std::move(staging));
      });
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
}

void BlockStore::WriteDemotion(uint32_t h, uint32_t slot, SsdRecord record,
                               std::shared_ptr<StagedBlock> staging) {
  const absl::Time start = absl::Now();
  const absl::Status status = t2_->Write(slot, record, staging->data(), /*padded=*/true);
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  bool invalidate = false;
  {
    absl::MutexLock lock(&mu_);
    ++counters_.t2_writes;
    counters_.t2_write_seconds += seconds;
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
  std::vector<uint32_t> released;
  {
    absl::MutexLock lock(&mu_);
    Entry& e = entries_[h];
    --e.writes;
    if (--e.t2_reads == 0) {
      released.insert(released.end(), e.retired_t2_slots.begin(), e.retired_t2_slots.end());
      e.retired_t2_slots.clear();
    }
    if (e.state == Entry::State::kDropped && e.refs == 0 && e.writes == 0) FreeEntry(h);
  }
  if (!released.empty()) ReleaseT2Slots(released);
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
  } else {
    t2_->slots().Free(slot);
  }
}

// ---------------------------------------------------------------------------------------
// Reads and promotion

std::unique_ptr<BlockReadHandle> BlockStore::OpenLocked(std::vector<uint32_t> handles,
                                                        std::vector<Promotion>& promotions,
                                                        Reservation& reservation) {
  std::vector<BlockView> views;
  views.reserve(handles.size());
  std::vector<uint32_t> first_layer;
  first_layer.reserve(handles.size());
  uint64_t layers = 0;
  for (uint32_t h : handles) {
    first_layer.push_back(static_cast<uint32_t>(layers));
    layers += entries_[h].num_layers;
  }
  // Layer checksums are copied out, so that the views need no lock; a block without them
  // (recovered from T2, never read since) gets them when it is loaded below.
  std::vector<uint64_t> sums(layers, 0);
  absl::flat_hash_set<uint32_t> promoting;
  for (size_t i = 0; i < handles.size(); ++i) {
    const uint32_t h = handles[i];
    Ref(h);
    const Entry& e = entries_[h];
    std::copy(e.layer_sums.begin(), e.layer_sums.end(), sums.begin() + first_layer[i]);
    BlockView view{.key = e.key,
                   .data = nullptr,
                   .size = e.size,
                   .checksum = e.checksum,
                   .tier = e.tier,
                   .num_layers = e.num_layers,
                   .layout_fingerprint = e.layout_fingerprint};
    if (e.tier == Tier::kHostDram) {
      view.data = t1_->SlotData(e.slot);
    } else {
      // Reserve a T1 slot to read the block into; it becomes the block's home once
      // verified. Without room in T1, or for a block listed twice, the block is read into
      // a staging buffer.
      // The first listing of a block is promoted; later listings only read it. A block
      // whose write is still queued is copied from the queue (Promotion::staged).
      std::optional<uint32_t> t1_slot;
      if (promoting.insert(h).second) t1_slot = AllocateT1(e.size, e.tenant_id, reservation);
      ++entries_[h].t2_reads;
      if (t1_slot) ++reserved_blocks_;
      promotions.push_back(Promotion{.view = i,
                                     .handle = h,
                                     .t1_slot = t1_slot.value_or(kNone),
                                     .t2_slot = e.slot,
                                     .staged = e.pending});
    }
    views.push_back(view);
  }
  bool sums_known = true;
  for (uint32_t h : handles) sums_known = sums_known && !entries_[h].layer_sums.empty();
  auto read = std::unique_ptr<BlockReadHandle>(new BlockReadHandle(
      this, std::move(handles), std::move(views), std::move(sums), std::move(first_layer)));
  read->layer_checksums_known_ = sums_known;
  for (const Promotion& p : promotions) read->MarkLoading(p.view);
  return read;
}

void BlockStore::DropCorrupt(uint32_t handle, uint32_t layer) {
  absl::MutexLock lock(&mu_);
  Entry& e = entries_[handle];
  if (e.state != Entry::State::kLive) return;  // dropped already (by another reader)
  KVTIER_LOG(ERROR) << "block " << e.key.ShortHex() << " in " << TierName(e.tier)
                    << " failed its checksum in layer " << layer << "; dropped";
  if (e.tier == Tier::kLocalSsd) ++counters_.checksum_failures_t2;
  ++counters_.checksum_failures;
  RemoveEntry(handle, BlockEvent::Reason::kCorrupted);
}

void BlockStore::LoadAsync(std::unique_ptr<ReadJob> job) {
  // Demotions first: they empty the T1 slots that promotions read into.
  RunDemotions(job->reservation);
  BlockReadHandle& read = job->handle();
  std::vector<size_t> disk;
  for (size_t k = 0; k < job->promotions.size(); ++k) {
    Promotion& p = job->promotions[k];
    BlockView& v = read.views_[p.view];
    if (p.t1_slot != kNone) {
      p.dst = t1_->SlotData(p.t1_slot);
    } else {
      const uint64_t rounded = (v.size + SsdTier::kAlign - 1) / SsdTier::kAlign * SsdTier::kAlign;
      p.dst = static_cast<uint8_t*>(std::aligned_alloc(SsdTier::kAlign, rounded));
      KVTIER_CHECK(p.dst != nullptr) << "out of memory for a " << rounded << " byte staging buffer";
      read.staging_.emplace_back(p.dst);
    }
    v.data = p.dst;
    if (p.staged == nullptr) disk.push_back(k);
  }
  // A streaming read opens now, before any block is read, if its reader can announce every
  // block's layer checksums; the rest of the handle no longer changes.
  if (job->opened && read.layer_checksums_known_) {
    job->streaming = true;
    job->shared = std::move(job->read);
    std::move(job->opened)(job->shared);
  }
  for (Promotion& p : job->promotions) {
    if (p.staged == nullptr) continue;
    // Its write is still queued: the bytes are in memory.
    std::memcpy(p.dst, p.staged->data(), job->handle().views_[p.view].size);
    p.staged.reset();
    SettleLoaded(*job, p);
  }
  if (disk.empty()) {
    FinishLoad(std::move(job));
    return;
  }
  // Every disk read in parallel on the readers; the last one to end finishes the job.
  job->remaining.store(disk.size());
  ReadJob* raw = job.release();
  for (size_t k : disk) {
    t2_readers_->Submit([this, raw, k] {
      Promotion& p = raw->promotions[k];
      const absl::Time start = absl::Now();
      p.status = t2_->Read(p.t2_slot, raw->handle().views_[p.view].size, p.dst);
      p.seconds = absl::ToDoubleSeconds(absl::Now() - start);
      SettleLoaded(*raw, p);
      if (raw->remaining.fetch_sub(1) == 1) FinishLoad(std::unique_ptr<ReadJob>(raw));
    });
  }
}

void BlockStore::SettleLoaded(ReadJob& job, Promotion& p) {
  // Verified here, outside the lock (the references keep the bytes in place): the layer
  // checksums are computed and must digest to the block checksum (and equal those the
  // reader announced, when it has); the reader does not hash these bytes again.
  BlockReadHandle& read = job.handle();
  const BlockView& v = read.views_[p.view];
  const uint32_t first = read.first_layer_[p.view];
  std::vector<uint64_t> sums(v.num_layers);
  bool ok = p.status.ok() && ComputeLayerChecksums(v.data, v.layer_bytes(), sums) == v.checksum;
  if (ok && read.layer_checksums_known_) {
    ok = std::equal(sums.begin(), sums.end(), read.layer_checksums_.begin() + first);
  } else if (ok) {
    std::copy(sums.begin(), sums.end(), read.layer_checksums_.begin() + first);
  }
  if (ok) std::fill_n(read.verified_.begin() + first, v.num_layers, 1);
  p.verified = ok;
  read.MarkLoaded(p.view, ok);
}

void BlockStore::FinishLoad(std::unique_ptr<ReadJob> job) {
  BlockReadHandle* read = &job->handle();
  std::vector<Promotion>& promotions = job->promotions;
  Reservation& reservation = job->reservation;
  // Every block read from disk was verified as it arrived (SettleLoaded); T1 blocks are
  // verified by the reader as it sends them (BlockReadHandle::Verify). bad[i]: block i
  // could not be read or failed its checksum.
  std::vector<bool> bad(read->views_.size(), false);
  std::vector<size_t> corrupt;
  for (const Promotion& p : promotions) {
    if (!p.verified) {
      bad[p.view] = true;
      corrupt.push_back(p.view);
    }
  }
  std::sort(corrupt.begin(), corrupt.end());
  corrupt.erase(std::unique(corrupt.begin(), corrupt.end()), corrupt.end());
  std::vector<uint32_t> released_t2_slots;
  absl::Status result = absl::OkStatus();
  {
    absl::MutexLock lock(&mu_);
    FinishDemotions(reservation);
    for (const Promotion& p : promotions) {
      ++counters_.t2_reads;
      counters_.t2_read_seconds += p.seconds;
      if (!p.status.ok()) {
        ++counters_.t2_read_errors;
        KVTIER_LOG(ERROR) << "T2 read failed: " << p.status;
      } else {
        counters_.t2_bytes_read += read->views_[p.view].size;
      }
    }
    for (size_t i : corrupt) {
      const uint32_t h = read->handles_[i];
      Entry& e = entries_[h];
      if (e.state == Entry::State::kLive) {
        KVTIER_LOG(ERROR) << "block " << e.key.ShortHex() << " in " << TierName(e.tier)
                          << " failed its checksum or could not be read; dropped";
        if (e.tier == Tier::kLocalSsd) ++counters_.checksum_failures_t2;
        RemoveEntry(h, BlockEvent::Reason::kCorrupted);
        ++counters_.checksum_failures;
      }
    }
    // This read no longer uses the T2 slots it read from. A slot retired by a promotion
    // while this read was in flight is released by its last reader.
    for (const Promotion& p : promotions) {
      Entry& e = entries_[p.handle];
      if (--e.t2_reads == 0) {
        released_t2_slots.insert(released_t2_slots.end(), e.retired_t2_slots.begin(),
                                 e.retired_t2_slots.end());
        e.retired_t2_slots.clear();
      }
    }
    // Verified T2 blocks move into the T1 slots they were read into.
    for (const Promotion& p : promotions) {
      if (p.t1_slot == kNone) continue;
      --reserved_blocks_;
      Entry& e = entries_[p.handle];
      if (bad[p.view]) {  // the read fails as a whole; nobody looks at this slot
        t1_->slots().Free(p.t1_slot);
        continue;
      }
      if (e.tier != Tier::kLocalSsd || e.slot != p.t2_slot) {
        // A concurrent reader promoted it first: this copy serves this reader only.
        read->owned_t1_slots_.push_back(p.t1_slot);
        continue;
      }
      const bool live = e.state == Entry::State::kLive;
      if (live) {
        t2_policy_->OnLeave(p.handle, /*evicted=*/false);
        UnlinkParent(p.handle);
        Account(e, -1);
      }
      // The T2 copy stays (valid, pinned) when kept, so that the block's next demotion
      // writes nothing; otherwise the slot goes once no reader uses it.
      const bool keep_copy = live && options_.t2_keep_promoted_copy;
      const uint32_t t2_slot = e.slot;
      if (keep_copy) {
      } else if (e.t2_reads == 0) {
        released_t2_slots.push_back(e.slot);
      } else {
        e.retired_t2_slots.push_back(e.slot);  // another reader or a write still uses it
      }
      e.tier = Tier::kHostDram;
      e.slot = p.t1_slot;
      const BlockView& v = read->views_[p.view];
      e.layer_sums.assign(v.layer_checksums.begin(), v.layer_checksums.end());
      t1_->slots().SetOwner(e.slot, p.handle);
      if (live) {
        e.last_access = ++access_tick_;
        Account(e, +1);
        t1_policy_->OnResident(p.handle, TraitsOf(e));
        LinkParent(p.handle);
        SyncEvictable(p.handle);
        ++counters_.promoted_blocks;
        if (keep_copy) {
          e.t2_copy = t2_slot;
          ledger_.Charge(e.tenant_id, Tier::kLocalSsd, static_cast<int64_t>(e.size), 0);
          ++counters_.t2_copy_blocks;
        }
      }
    }
    if (corrupt.empty()) {
      counters_.fetched_blocks += read->views_.size();
      for (const BlockView& v : read->views_) counters_.fetched_bytes += v.size;
    } else if (job->streaming) {
      // The reader sees the Failed blocks and serves none of them; the handle keeps the
      // others referenced while they are sent.
    } else {
      for (uint32_t h : read->handles_) Unref(h);
      read->handles_.clear();
      result = absl::DataLossError(absl::StrCat(
          corrupt.size(), " of ", read->views_.size(),
          " requested blocks failed their checksum or could not be read and were dropped "
          "(first: block ",
          corrupt[0], ", key ", read->views_[corrupt[0]].key.ShortHex(),
          "…); treat them as a miss"));
    }
  }
  if (!released_t2_slots.empty()) {  // header writes: off the reader's path
    pending_releases_.fetch_add(released_t2_slots.size());
    t2_readers_->Submit([this, slots = std::move(released_t2_slots)] {
      ReleaseT2Slots(slots);
      pending_releases_.fetch_sub(slots.size());
    });
  }
  if (job->streaming) return;  // its reader has the handle; ours goes with the job
  if (!result.ok()) {
    job->read.reset();
    job->Deliver(result);
    return;
  }
  job->Deliver(std::move(job->read));
}

void BlockStore::ReleaseT2Slots(const std::vector<uint32_t>& slots) {
  // The header goes first so that a restart cannot bring back a copy of a block that now
  // lives in T1 (and may be deleted there); the slot stays out of the free list meanwhile.
  for (uint32_t slot : slots) {
    if (absl::Status s = t2_->Invalidate(slot); !s.ok()) {
      KVTIER_LOG(ERROR) << "cannot invalidate T2 slot " << slot << ": " << s;
    }
  }
  absl::MutexLock lock(&mu_);
  for (uint32_t slot : slots) t2_->slots().Free(slot);
}

}  // namespace kvtier
