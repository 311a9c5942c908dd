#include "worker/pipelined_restore.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "cache_store/log.h"

namespace kvtier::worker {

PipelinedRestore::PipelinedRestore(StoreClient* store, const KvLayout& layout,
                                   std::vector<BlockKey> keys, std::vector<uint8_t*> landing,
                                   std::unique_ptr<RestoreUploader> uploader,
                                   const SharedMemoryRegion* shm)
    : store_(store),
      layer_bytes_(layout.LayerBytes()),
      num_layers_(layout.num_layers),
      keys_(std::move(keys)),
      landing_(std::move(landing)),
      block_bytes_(layout.BlockBytes()),
      uploader_(std::move(uploader)),
      shm_(shm),
      arrived_(keys_.size() * num_layers_, 0),
      complete_(num_layers_, 0),
      ready_(num_layers_, false) {
  thread_ = std::thread([this] { Run(); });
}

PipelinedRestore::~PipelinedRestore() {
  if (thread_.joinable()) thread_.join();
}

void PipelinedRestore::Run() {
  std::vector<std::span<uint8_t>> out;
  for (uint8_t* block : landing_) out.emplace_back(block, block_bytes_);
  FetchTarget target;
  target.keys = keys_;
  auto fetch = [&](const SharedMemoryRegion* shm) {
    return store_->Fetch(target, out,
                         {.order = v1::FETCH_ORDER_LAYER_MAJOR,
                          .on_chunk = [this](uint32_t b, uint64_t offset,
                                             uint64_t length) { OnChunk(b, offset, length); },
                          .shm = shm});
  };
  absl::StatusOr<FetchReply> reply = fetch(shm_);
  delivered_by_shm_ = shm_ != nullptr && reply.ok();
  if (shm_ != nullptr && !reply.ok() && NothingArrived()) {
    KVTIER_LOG(WARNING) << "same-node delivery failed, fetching over the socket: "
                        << reply.status();
    reply = fetch(nullptr);
  }
  // No copy may still run into the pages once the restore reports its end.
  const absl::Status drained = uploader_ != nullptr ? uploader_->Drain() : absl::OkStatus();
  end_ = std::chrono::steady_clock::now();
  absl::MutexLock lock(&mu_);
  status_ = reply.status();
  if (status_.ok()) status_ = upload_status_;
  if (status_.ok()) status_ = drained;
  if (status_.ok()) {
    for (uint32_t l = 0; l < num_layers_; ++l) {
      if (!ready_[l]) {
        status_ = absl::DataLossError(absl::StrCat("layer ", l, " of the restore is incomplete"));
        break;
      }
    }
  }
  done_ = true;
}

void PipelinedRestore::OnChunk(uint32_t block, uint64_t offset, uint64_t length) {
  // The client reports verified whole layers: one (layer-major), or several at once.
  for (uint64_t end = offset + length; offset < end; offset += layer_bytes_) {
    const uint64_t layer = offset / layer_bytes_;
    bool layer_complete = false;
    {
      absl::MutexLock lock(&mu_);
      if (block >= keys_.size() || layer >= num_layers_ || !upload_status_.ok()) return;
      uint64_t& arrived = arrived_[uint64_t{block} * num_layers_ + layer];
      arrived += std::min(layer_bytes_, end - offset);
      if (arrived == layer_bytes_) layer_complete = ++complete_[layer] == keys_.size();
      if (uploader_ == nullptr) {
        if (layer_complete) ready_[layer] = true;
        continue;
      }
    }
    // Ranges arrive on this one thread, so a layer's copies are all queued before its mark.
    absl::Status s = uploader_->Copy(block, offset, std::min(layer_bytes_, end - offset));
    if (s.ok() && layer_complete) s = uploader_->LayerQueued(static_cast<uint32_t>(layer));
    absl::MutexLock lock(&mu_);
    if (!s.ok()) {
      upload_status_ = s;
      return;
    }
    if (layer_complete) ready_[layer] = true;
  }
}

bool PipelinedRestore::NothingArrived() {
  absl::MutexLock lock(&mu_);
  for (uint64_t bytes : arrived_) {
    if (bytes != 0) return false;
  }
  return true;
}

absl::Status PipelinedRestore::WaitLayer(uint32_t layer) {
  if (layer >= num_layers_) {
    return absl::InvalidArgumentError(absl::StrCat("the restore has no layer ", layer));
  }
  {
    absl::MutexLock lock(&mu_);
    auto ready = [this, layer]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return done_ || ready_[layer] || !upload_status_.ok();
    };
    mu_.Await(absl::Condition(&ready));
    if (!ready_[layer]) {
      if (!upload_status_.ok()) return upload_status_;
      return status_.ok() ? absl::DataLossError(absl::StrCat("layer ", layer, " never arrived"))
                          : status_;
    }
  }
  // Verified and queued; with device pages, wait for the copies themselves.
  return uploader_ != nullptr ? uploader_->WaitLayer(layer) : absl::OkStatus();
}

absl::Status PipelinedRestore::Finish() {
  if (thread_.joinable()) thread_.join();
  absl::MutexLock lock(&mu_);
  return status_;
}

}  // namespace kvtier::worker
