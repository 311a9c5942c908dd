// BlockStore: reads. Opening a lease's or keys' blocks (OpenLeaseJob, OpenBlocksJob,
// OpenLocked: references, and a T1 slot reserved per T2 block), loading the T2 ones on the
// reader threads (LoadAsync), verifying each as its read ends (SettleLoaded: Loaded or
// Failed on the handle, which a streaming reader already holds), and at the last read's end
// promoting the verified blocks to T1 and dropping the failed ones (FinishLoad). Disk I/O
// runs on the store's T2 reader threads, never under the mutex and never on the caller's
// thread (block_store.h).
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
// Opening

absl::StatusOr<std::unique_ptr<BlockStore::ReadJob>> BlockStore::OpenLeaseJob(
    std::string_view tenant, uint64_t lease_id) {
  auto job = std::make_unique<ReadJob>();
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
  job->read = OpenLocked(handles, job->promotions, job->reservation);
  return job;
}

absl::StatusOr<std::unique_ptr<BlockStore::ReadJob>> BlockStore::OpenBlocksJob(
    std::string_view tenant, std::span<const BlockKey> keys) {
  auto job = std::make_unique<ReadJob>();
  absl::MutexLock lock(&mu_);
  Sweep(clock_->Now());
  absl::StatusOr<std::vector<uint32_t>> handles = FindOwned(tenant, keys, /*skip_missing=*/false);
  if (!handles.ok()) return handles.status();
  job->read = OpenLocked(*std::move(handles), job->promotions, job->reservation);
  return job;
}

void BlockStore::ReadLeaseAsync(std::string_view tenant, uint64_t lease_id, ReadDone done) {
  absl::StatusOr<std::unique_ptr<ReadJob>> job = OpenLeaseJob(tenant, lease_id);
  if (!job.ok()) return std::move(done)(job.status());
  (*job)->done = std::move(done);
  LoadAsync(*std::move(job));
}

void BlockStore::ReadBlocksAsync(std::string_view tenant, std::span<const BlockKey> keys,
                                 ReadDone done) {
  absl::StatusOr<std::unique_ptr<ReadJob>> job = OpenBlocksJob(tenant, keys);
  if (!job.ok()) return std::move(done)(job.status());
  (*job)->done = std::move(done);
  LoadAsync(*std::move(job));
}

void BlockStore::ReadLeaseStreaming(std::string_view tenant, uint64_t lease_id,
                                    ReadOpened opened) {
  absl::StatusOr<std::unique_ptr<ReadJob>> job = OpenLeaseJob(tenant, lease_id);
  if (!job.ok()) return std::move(opened)(job.status());
  (*job)->opened = std::move(opened);
  LoadAsync(*std::move(job));
}

void BlockStore::ReadBlocksStreaming(std::string_view tenant, std::span<const BlockKey> keys,
                                     ReadOpened opened) {
  absl::StatusOr<std::unique_ptr<ReadJob>> job = OpenBlocksJob(tenant, keys);
  if (!job.ok()) return std::move(opened)(job.status());
  (*job)->opened = std::move(opened);
  LoadAsync(*std::move(job));
}

void BlockStore::ReadJob::Deliver(absl::StatusOr<std::unique_ptr<BlockReadHandle>> result) {
  if (done) {
    std::move(done)(std::move(result));
  } else if (opened) {
    if (!result.ok()) {
      std::move(opened)(result.status());
    } else {
      std::move(opened)(std::shared_ptr<BlockReadHandle>(*std::move(result)));
    }
  }
}

namespace {
// Runs an asynchronous read and waits for its result.
template <typename Start>
absl::StatusOr<std::unique_ptr<BlockReadHandle>> WaitForRead(Start start) {
  absl::Mutex mu;
  bool done = false;
  absl::StatusOr<std::unique_ptr<BlockReadHandle>> result;
  start([&](absl::StatusOr<std::unique_ptr<BlockReadHandle>> r) {
    absl::MutexLock lock(&mu);
    result = std::move(r);
    done = true;
  });
  absl::MutexLock lock(&mu);
  mu.Await(absl::Condition(&done));
  return result;
}
}  // namespace

absl::StatusOr<std::unique_ptr<BlockReadHandle>> BlockStore::ReadLease(std::string_view tenant,
                                                                       uint64_t lease_id) {
  return WaitForRead([&](ReadDone done) { ReadLeaseAsync(tenant, lease_id, std::move(done)); });
}

absl::StatusOr<std::unique_ptr<BlockReadHandle>> BlockStore::ReadBlocks(
    std::string_view tenant, std::span<const BlockKey> keys) {
  return WaitForRead([&](ReadDone done) { ReadBlocksAsync(tenant, keys, std::move(done)); });
}

void BlockStore::ReleaseRead(std::span<const uint32_t> handles,
                             std::span<const uint32_t> t1_slots) {
  absl::MutexLock lock(&mu_);
  Sweep(clock_->Now());
  for (uint32_t h : handles) Unref(h);
  for (uint32_t slot : t1_slots) t1_->slots().Free(slot);
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
      // Reserve a T1 slot to read the block into. It becomes the block's home once
      // verified if this read promotes it: only the Nth read since the block entered T2
      // does (BlockStoreOptions::t2_promote_after_reads), and only through the block's
      // first listing. Otherwise the read owns the slot until its reader is done. Without
      // room in T1, or for a block listed twice, the block is read into a staging buffer.
      // A block whose write is still queued is copied from the queue (Promotion::staged).
      std::optional<uint32_t> t1_slot;
      bool promote = false;
      if (promoting.insert(h).second) {
        uint8_t& served = entries_[h].t2_served;
        if (served < UINT8_MAX) ++served;
        const uint32_t after = options_.t2_promote_after_reads;
        promote = after != 0 && served >= after;
        t1_slot = AllocateT1(e.size, e.tenant_id, reservation);
      }
      ++entries_[h].t2_reads;
      if (t1_slot) ++reserved_blocks_;
      promotions.push_back(Promotion{.view = i,
                                     .handle = h,
                                     .t1_slot = t1_slot.value_or(kNone),
                                     .t2_slot = e.slot,
                                     .promote = promote,
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
  if (!ok && job.streaming) DropFailedLoad(p);
  read.MarkLoaded(p.view, ok);
}

void BlockStore::DropFailedLoad(Promotion& p) {
  absl::MutexLock lock(&mu_);
  p.dropped = true;
  if (!p.status.ok()) {
    ++counters_.t2_read_errors;
    KVTIER_LOG(ERROR) << "T2 read failed: " << p.status;
  }
  Entry& e = entries_[p.handle];
  if (e.state != Entry::State::kLive) return;  // dropped already
  KVTIER_LOG(ERROR) << "block " << e.key.ShortHex() << " in " << TierName(e.tier)
                    << " failed its checksum or could not be read; dropped";
  if (e.tier == Tier::kLocalSsd) ++counters_.checksum_failures_t2;
  ++counters_.checksum_failures;
  RemoveEntry(p.handle, BlockEvent::Reason::kCorrupted);
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
  absl::Status result = absl::OkStatus();
  {
    absl::MutexLock lock(&mu_);
    FinishDemotions(reservation);
    for (const Promotion& p : promotions) {
      ++counters_.t2_reads;
      counters_.t2_read_seconds += p.seconds;
      if (!p.status.ok()) {
        if (!p.dropped) {
          ++counters_.t2_read_errors;
          KVTIER_LOG(ERROR) << "T2 read failed: " << p.status;
        }
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
        for (uint32_t retired : e.retired_t2_slots) RetireT2Slot(e, retired);
        e.retired_t2_slots.clear();
      }
    }
    // Verified T2 blocks whose read promotes them move into the T1 slots they were read
    // into. One that stays in T2 keeps the layer checksums its read computed (a block
    // recovered from T2 has none until it is read), so later reads can stream.
    for (const Promotion& p : promotions) {
      Entry& e = entries_[p.handle];
      const bool still_there = e.tier == Tier::kLocalSsd && e.slot == p.t2_slot;
      if (!bad[p.view] && still_there && e.layer_sums.empty()) {
        const BlockView& v = read->views_[p.view];
        e.layer_sums.assign(v.layer_checksums.begin(), v.layer_checksums.end());
      }
      if (p.t1_slot == kNone) continue;
      --reserved_blocks_;
      if (bad[p.view]) {  // the read fails as a whole; nobody looks at this slot
        t1_->slots().Free(p.t1_slot);
        continue;
      }
      if (!still_there || !p.promote) {
        // Served from T2 in place, or a concurrent reader promoted it first: this copy
        // serves this reader only, and the slot goes when the reader is done.
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
        RetireT2Slot(e, e.slot);  // its record stays until the slot is reused
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
  if (job->streaming) return;  // its reader has the handle; ours goes with the job
  if (!result.ok()) {
    job->read.reset();
    job->Deliver(result);
    return;
  }
  job->Deliver(std::move(job->read));
}

}  // namespace kvtier
