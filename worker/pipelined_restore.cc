#include "worker/pipelined_restore.h"

#include "absl/strings/str_cat.h"

namespace kvtier::worker {

PipelinedRestore::PipelinedRestore(CacheStoreClient* store, const KvLayout& layout,
                                   std::vector<BlockKey> keys, std::vector<uint8_t*> pages)
    : store_(store),
      layer_bytes_(layout.LayerBytes()),
      num_layers_(layout.num_layers),
      keys_(std::move(keys)),
      pages_(std::move(pages)),
      block_bytes_(layout.BlockBytes()),
      arrived_(keys_.size() * num_layers_, 0),
      complete_(num_layers_, 0) {
  thread_ = std::thread([this] { Run(); });
}

PipelinedRestore::~PipelinedRestore() {
  if (thread_.joinable()) thread_.join();
}

void PipelinedRestore::Run() {
  std::vector<std::span<uint8_t>> out;
  for (uint8_t* page : pages_) out.emplace_back(page, block_bytes_);
  FetchTarget target;
  target.keys = keys_;
  absl::StatusOr<FetchReply> reply =
      store_->Fetch(target, out,
                    {.order = v1::FETCH_ORDER_LAYER_MAJOR,
                     .on_chunk = [this](uint32_t b, uint64_t offset, uint64_t length) {
                       OnChunk(b, offset, length);
                     }});
  end_ = std::chrono::steady_clock::now();
  absl::MutexLock lock(&mu_);
  status_ = reply.status();
  if (status_.ok()) {
    for (uint32_t l = 0; l < num_layers_; ++l) {
      if (complete_[l] != keys_.size()) {
        status_ = absl::DataLossError(absl::StrCat("layer ", l, " of the restore is incomplete"));
        break;
      }
    }
  }
  done_ = true;
}

void PipelinedRestore::OnChunk(uint32_t block, uint64_t offset, uint64_t length) {
  absl::MutexLock lock(&mu_);
  // Layer-major chunks never cross a layer: a layer is one range of the server's plan.
  const uint64_t layer = offset / layer_bytes_;
  if (block >= keys_.size() || layer >= num_layers_) return;
  uint64_t& arrived = arrived_[uint64_t{block} * num_layers_ + layer];
  arrived += length;
  if (arrived == layer_bytes_) ++complete_[layer];
}

absl::Status PipelinedRestore::WaitLayer(uint32_t layer) {
  absl::MutexLock lock(&mu_);
  auto ready = [this, layer]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return done_ || complete_[layer] == keys_.size();
  };
  mu_.Await(absl::Condition(&ready));
  if (complete_[layer] == keys_.size()) return absl::OkStatus();
  return status_.ok() ? absl::DataLossError(absl::StrCat("layer ", layer, " never arrived"))
                      : status_;
}

absl::Status PipelinedRestore::Finish() {
  if (thread_.joinable()) thread_.join();
  absl::MutexLock lock(&mu_);
  return status_;
}

}  // namespace kvtier::worker
