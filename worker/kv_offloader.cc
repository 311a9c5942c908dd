#include "worker/kv_offloader.h"

#include "cache_store/log.h"
#include "kernels/cuda_memory.h"

namespace kvtier::worker {

KvOffloader::KvOffloader(std::shared_ptr<CacheStoreClient> store, PagePool* pool, std::string salt)
    : store_(std::move(store)), pool_(pool), salt_(std::move(salt)), thread_([this] { Loop(); }) {}

KvOffloader::~KvOffloader() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

void KvOffloader::Enqueue(Job job) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(job));
  counts_.pending_jobs = queue_.size() + (busy_ ? 1 : 0);
}

void KvOffloader::Flush() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](KvOffloader* o)
           ABSL_EXCLUSIVE_LOCKS_REQUIRED(o->mu_) { return o->queue_.empty() && !o->busy_; },
      this));
}

KvOffloader::Counts KvOffloader::counts() const {
  absl::MutexLock lock(&mu_);
  return counts_;
}

void KvOffloader::Loop() {
  while (true) {
    Job job;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](KvOffloader* o)
               ABSL_EXCLUSIVE_LOCKS_REQUIRED(o->mu_) { return !o->queue_.empty() || o->stop_; },
          this));
      if (queue_.empty()) return;  // stopping, and nothing left
      job = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
    }
    RunJob(job);
    absl::MutexLock lock(&mu_);
    busy_ = false;
    counts_.pending_jobs = queue_.size();
  }
}

void KvOffloader::RunJob(const Job& job) {
  const uint64_t block_bytes = pool_->page_bytes();
  // Host pages go to the wire as they are; device pages are copied to the host first.
  std::vector<uint8_t> staging;
  std::vector<std::span<const uint8_t>> blocks;
  absl::Status status;
  if (pool_->backend() == kernels::Backend::kCuda) {
    staging.resize(block_bytes * job.pages.size());
    for (size_t i = 0; i < job.pages.size() && status.ok(); ++i) {
      status = kernels::CudaCopy(staging.data() + i * block_bytes, pool_->PageData(job.pages[i]),
                                 block_bytes);
      blocks.emplace_back(staging.data() + i * block_bytes, block_bytes);
    }
  } else {
    for (uint32_t page : job.pages) blocks.emplace_back(pool_->PageData(page), block_bytes);
  }
  if (status.ok()) {
    absl::StatusOr<PutReply> reply =
        store_->PutBlocks(pool_->layout(), job.tokens, job.first_block, blocks, salt_);
    status = reply.status();
  }
  // Stored or dropped: either way the pages may now be evicted.
  for (const BlockKey& key : job.keys) pool_->MarkSafe(key);
  absl::MutexLock lock(&mu_);
  if (status.ok()) {
    counts_.blocks += job.pages.size();
    counts_.bytes += block_bytes * job.pages.size();
  } else {
    counts_.dropped_blocks += job.pages.size();
    KVTIER_LOG(WARNING) << "offload of " << job.pages.size() << " blocks dropped: " << status;
  }
}

}  // namespace kvtier::worker
