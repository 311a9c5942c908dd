#include "services/fetch_reactor.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "cache_store/log.h"
#include "proto/payload_wire.h"
#include "services/proto_convert.h"

namespace kvtier {

std::vector<FetchRange> PlanFetch(std::span<const BlockView> blocks, v1::FetchOrder order) {
  std::vector<FetchRange> plan;
  if (order != v1::FETCH_ORDER_LAYER_MAJOR) {
    for (uint32_t b = 0; b < blocks.size(); ++b) plan.push_back({b, 0, blocks[b].size});
    return plan;
  }
  uint32_t max_layers = 0;
  for (const BlockView& v : blocks) max_layers = std::max(max_layers, v.num_layers);
  for (uint32_t layer = 0; layer < max_layers; ++layer) {
    for (uint32_t b = 0; b < blocks.size(); ++b) {
      if (layer >= blocks[b].num_layers) continue;
      const uint64_t layer_bytes = blocks[b].layer_bytes();
      plan.push_back({b, layer * layer_bytes, layer_bytes});
    }
  }
  return plan;
}

FetchReactor::FetchReactor(std::unique_ptr<BlockReadHandle> read, v1::FetchOrder order,
                           uint32_t chunk_bytes, RpcTimer timer, std::unique_ptr<ShmTarget> shm)
    : order_(order), chunk_bytes_(chunk_bytes), timer_(std::move(timer)), shm_(std::move(shm)) {
  Begin(std::move(read));
}

FetchReactor::FetchReactor(v1::FetchOrder order, uint32_t chunk_bytes, RpcTimer timer,
                           std::unique_ptr<ShmTarget> shm)
    : order_(order),
      waiter_(std::make_shared<Waiter>()),
      chunk_bytes_(chunk_bytes),
      timer_(std::move(timer)),
      shm_(std::move(shm)) {
  absl::MutexLock lock(&waiter_->mu);
  waiter_->reactor = this;
}

BlockStore::ReadDone FetchReactor::Opener() {
  return [waiter = waiter_](absl::StatusOr<std::unique_ptr<BlockReadHandle>> read) {
    absl::MutexLock lock(&waiter->mu);
    if (waiter->reactor == nullptr || waiter->cancelled) return;  // the read is released here
    waiter->begun = true;
    FetchReactor* reactor = waiter->reactor;
    if (!read.ok()) {
      reactor->FinishWith(read.status());
      return;
    }
    reactor->Begin(*std::move(read));
  };
}

BlockStore::ReadOpened FetchReactor::StreamOpener() {
  return [waiter = waiter_](absl::StatusOr<std::shared_ptr<BlockReadHandle>> read) {
    absl::MutexLock lock(&waiter->mu);
    if (waiter->reactor == nullptr || waiter->cancelled) return;  // the read is released here
    waiter->begun = true;
    FetchReactor* reactor = waiter->reactor;
    if (!read.ok()) {
      reactor->FinishWith(read.status());
      return;
    }
    // Each block that loads may be the one a stalled stream waits for.
    (*read)->SetListener([waiter] {
      absl::MutexLock lock(&waiter->mu);
      if (waiter->reactor == nullptr || !waiter->stalled) return;
      waiter->stalled = false;
      waiter->reactor->WriteNextChunk();
    });
    reactor->Begin(*std::move(read));
  };
}

void FetchReactor::OnCancel() {
  if (waiter_ == nullptr) return;  // writing: the stream breaks and OnWriteDone finishes
  absl::MutexLock lock(&waiter_->mu);
  if (waiter_->stalled) {  // no write in flight to break: finish here
    waiter_->stalled = false;
    FinishWith(absl::CancelledError("the fetch was cancelled while a block was read from T2"));
    return;
  }
  if (waiter_->begun || waiter_->cancelled) return;
  waiter_->cancelled = true;
  FinishWith(absl::CancelledError("the fetch was cancelled while its blocks were read"));
}

void FetchReactor::OnDone() {
  if (waiter_ != nullptr) {
    absl::MutexLock lock(&waiter_->mu);
    waiter_->reactor = nullptr;
  }
  delete this;
}

void FetchReactor::Begin(std::shared_ptr<BlockReadHandle> read) {
  read_ = std::move(read);
  if (shm_ != nullptr) {
    std::vector<uint64_t> sizes;
    for (const BlockView& v : read_->blocks()) sizes.push_back(v.size);
    if (absl::Status s = shm_->region->CheckPlacement(shm_->offsets, sizes, /*disjoint=*/true);
        !s.ok()) {
      FinishWith(s);
      return;
    }
  }
  plan_ = PlanFetch(read_->blocks(), order_);
  v1::FetchResponse first;
  for (const BlockView& v : read_->blocks()) {
    v1::FetchedBlock* b = first.add_blocks();
    b->set_key(std::string(v.key.AsBytes()));
    b->set_size_bytes(v.size);
    b->set_checksum(v.checksum);
    b->set_tier(TierToProto(v.tier));
    b->mutable_layer_checksums()->Add(v.layer_checksums.begin(), v.layer_checksums.end());
  }
  message_ = EncodeMessage(first);
  if (shm_ == nullptr) {
    StartWrite(&message_);
    return;
  }
  // Same-node: the first batch is copied while the block list is written.
  absl::MutexLock lock(&shm_mu_);
  writing_ = true;
  StartWrite(&message_);
  copying_ = CopyNextBatch();
  if (!copying_) end_ = absl::OkStatus();
}

void FetchReactor::FinishWith(const absl::Status& status) {
  Finish(timer_.Finish(ToGrpcStatus(status)));
}

void FetchReactor::OnWriteDone(bool ok) {
  if (shm_ != nullptr) {
    absl::MutexLock lock(&shm_mu_);
    writing_ = false;
    if (!ok && (!end_.has_value() || end_->ok())) {
      end_ = absl::CancelledError("fetch stream broken");
    }
    Progress();
    return;
  }
  if (!ok) {
    // The client went away or the deadline passed; the read handle goes with us.
    FinishWith(absl::CancelledError("fetch stream broken"));
    return;
  }
  if (waiter_ != nullptr) {
    absl::MutexLock lock(&waiter_->mu);
    WriteNextChunk();
    return;
  }
  WriteNextChunk();
}

void FetchReactor::Progress() {
  if (finished_) return;
  const bool failed = end_.has_value() && !end_->ok();
  if (failed) queued_.clear();
  if (!writing_ && !queued_.empty()) {
    message_ = queued_.front();  // shares the slices; no bytes are copied
    queued_.pop_front();
    writing_ = true;
    StartWrite(&message_);
    return;
  }
  if (end_.has_value() && !writing_ && !copying_ && queued_.empty()) {
    finished_ = true;
    FinishWith(*end_);
  }
}

void FetchReactor::OnBatchCopied(grpc::ByteBuffer message, const absl::Status& status) {
  absl::MutexLock lock(&shm_mu_);
  copying_ = false;
  if (!status.ok()) {
    if (!end_.has_value() || end_->ok()) end_ = status;
  } else if (!end_.has_value()) {
    queued_.push_back(std::move(message));
    copying_ = CopyNextBatch();
    if (!copying_) end_ = absl::OkStatus();
  }
  Progress();
}

bool FetchReactor::CopyNextBatch() {
  if (next_range_ == plan_.size()) return false;
  // The batch's ranges go into its message; its tasks are their layers, so that even a
  // block-major batch of a few whole blocks spreads over the pool's threads.
  struct Batch {
    v1::FetchResponse message;
    std::vector<FetchRange> tasks;
    std::vector<absl::Status> status;
  };
  auto batch = std::make_shared<Batch>();
  uint64_t bytes = 0;
  while (next_range_ < plan_.size() && bytes < kShmBatchBytes) {
    const FetchRange& r = plan_[next_range_++];
    v1::BlockRange* chunk = batch->message.add_ranges();
    chunk->set_block(r.block);
    chunk->set_offset(r.offset);
    chunk->set_length(r.length);
    const uint64_t layer_bytes = read_->blocks()[r.block].layer_bytes();
    for (uint64_t off = 0; off < r.length; off += layer_bytes) {
      batch->tasks.push_back({r.block, r.offset + off, std::min(layer_bytes, r.length - off)});
    }
    bytes += r.length;
  }
  batch->status.resize(batch->tasks.size());
  shm_->pool->Run(
      batch->tasks.size(),
      [this, batch](size_t i) {
        const FetchRange& t = batch->tasks[i];
        uint8_t* dst = shm_->region->base() + shm_->offsets[t.block] + t.offset;
        batch->status[i] = read_->CopyOut(t.block, t.offset, t.length, dst);
      },
      [this, batch] {
        absl::Status status;
        for (const absl::Status& s : batch->status) {
          if (!s.ok()) {
            status = s;
            break;
          }
        }
        OnBatchCopied(status.ok() ? EncodeMessage(batch->message) : grpc::ByteBuffer(), status);
      });
  return true;
}

void FetchReactor::WriteNextChunk() {
  // One message carries the plan's next ranges (or parts of them) up to chunk_bytes_, so a
  // layer-major plan of 64 KiB layers does not cost a message per layer.
  std::vector<PayloadRange> ranges;
  uint64_t budget = chunk_bytes_;
  while (budget > 0 && next_range_ < plan_.size()) {
    const FetchRange& r = plan_[next_range_];
    if (next_offset_ >= r.length) {
      ++next_range_;
      next_offset_ = 0;
      continue;
    }
    if (!read_->Loaded(r.block)) {
      // What is ready goes first; the next call meets this block again.
      if (!ranges.empty()) break;
      if (read_->Failed(r.block)) {
        FinishWith(absl::DataLossError(absl::StrCat(
            "block ", r.block, " (key ", read_->blocks()[r.block].key.ShortHex(),
            "…) could not be read from T2 or failed its checksum and was dropped; treat it as "
            "a miss")));
        return;
      }
      // Still on the disk: the read's listener resumes once it has loaded.
      KVTIER_CHECK(waiter_ != nullptr) << "an opened fetch with a block still loading";
      waiter_->mu.AssertHeld();
      waiter_->stalled = true;
      return;
    }
    const uint64_t n = std::min(budget, r.length - next_offset_);
    const uint64_t offset = r.offset + next_offset_;
    // Every layer the piece touches is checked before any of its bytes leave.
    if (absl::Status s = read_->Verify(r.block, offset, n); !s.ok()) {
      FinishWith(s);
      return;
    }
    ranges.push_back({.block = r.block,
                      .offset = offset,
                      .bytes = std::span(read_->blocks()[r.block].data + offset, n)});
    next_offset_ += n;
    budget -= n;
  }
  if (ranges.empty()) {
    FinishWith(absl::OkStatus());
    return;
  }
  message_ = EncodeFetchRanges(ranges);
  StartWrite(&message_);
}

}  // namespace kvtier
