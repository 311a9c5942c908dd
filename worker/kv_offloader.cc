#include "worker/kv_offloader.h"

#include "cache_store/log.h"
#include "kernels/cuda_memory.h"

namespace kvtier::worker {

KvOffloader::KvOffloader(std::shared_ptr<StoreClient> store, PagePool* pool, std::string salt,
                         bool same_node)
    : store_(std::move(store)),
      pool_(pool),
      salt_(std::move(salt)),
      same_node_(same_node),
      thread_([this] { Loop(); }) {}

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

absl::StatusOr<uint64_t> KvOffloader::PutRun(const Job& job, size_t first,
                                             std::span<const std::span<const uint8_t>> blocks,
                                             const SharedMemoryRegion* shm) {
  PutParams params{
      .salt = salt_, .output_tokens = job.output_tokens, .shm = shm_refused_ ? nullptr : shm};
  const uint32_t first_block = job.first_block + static_cast<uint32_t>(first);
  absl::StatusOr<PutReply> reply =
      store_->PutBlocks(pool_->layout(), job.tokens, first_block, blocks, params);
  if (params.shm != nullptr && !reply.ok() && IsSameNodeRefusal(reply.status())) {
    shm_refused_ = true;
    KVTIER_LOG(WARNING) << "the store does not take Puts from this worker's shared memory ("
                        << reply.status() << "); offloads use the socket from now on";
    params.shm = nullptr;
    reply = store_->PutBlocks(pool_->layout(), job.tokens, first_block, blocks, params);
  }
  if (!reply.ok()) return reply.status();
  return params.shm != nullptr ? blocks.size() : 0;
}

void KvOffloader::RunJob(const Job& job) {
  const uint64_t block_bytes = pool_->page_bytes();
  absl::Status status;
  uint64_t shm_blocks = 0;
  if (pool_->backend() == kernels::Backend::kCuda) {
    // Device pages are copied to host memory first: same-node, into pinned staging the store
    // copies out of; otherwise into a buffer that goes over the socket.
    if (same_node_ && !shm_refused_ && staging_ == nullptr) {
      absl::StatusOr<std::unique_ptr<SharedMemoryRegion>> region =
          SharedMemoryRegion::Create(uint64_t{kStagingBlocks} * block_bytes);
      absl::StatusOr<kernels::CudaHostRegistration> registered =
          region.ok()
              ? kernels::CudaHostRegistration::Register((*region)->data(), (*region)->size())
              : absl::StatusOr<kernels::CudaHostRegistration>(region.status());
      if (registered.ok()) {
        staging_ = *std::move(region);
        staging_registration_ = *std::move(registered);
      } else {
        shm_refused_ = true;
        KVTIER_LOG(WARNING) << "no pinned same-node staging for offloads (" << registered.status()
                            << "); offloads use the socket";
      }
    }
    std::vector<uint8_t> heap;
    const uint64_t run = staging_ != nullptr ? kStagingBlocks : job.pages.size();
    if (staging_ == nullptr) heap.resize(block_bytes * std::min<uint64_t>(run, job.pages.size()));
    uint8_t* host = staging_ != nullptr ? staging_->data() : heap.data();
    for (size_t first = 0; first < job.pages.size() && status.ok(); first += run) {
      const size_t n = std::min<size_t>(run, job.pages.size() - first);
      std::vector<std::span<const uint8_t>> blocks;
      for (size_t i = 0; i < n && status.ok(); ++i) {
        status = kernels::CudaCopy(host + i * block_bytes, pool_->PageData(job.pages[first + i]),
                                   block_bytes);
        blocks.emplace_back(host + i * block_bytes, block_bytes);
      }
      if (!status.ok()) break;
      absl::StatusOr<uint64_t> via_shm = PutRun(job, first, blocks, staging_.get());
      status = via_shm.status();
      if (via_shm.ok()) shm_blocks += *via_shm;
    }
  } else {
    // Host pages go to the store as they are: same-node straight from the pool's region.
    std::vector<std::span<const uint8_t>> blocks;
    for (uint32_t page : job.pages) blocks.emplace_back(pool_->PageData(page), block_bytes);
    absl::StatusOr<uint64_t> via_shm = PutRun(job, 0, blocks, pool_->shared_memory());
    status = via_shm.status();
    if (via_shm.ok()) shm_blocks = *via_shm;
  }
  // Stored or dropped: either way the pages may now be evicted.
  for (const BlockKey& key : job.keys) pool_->MarkSafe(key);
  absl::MutexLock lock(&mu_);
  if (status.ok()) {
    counts_.blocks += job.pages.size();
    counts_.bytes += block_bytes * job.pages.size();
    counts_.shm_blocks += shm_blocks;
  } else {
    counts_.dropped_blocks += job.pages.size();
    KVTIER_LOG(WARNING) << "offload of " << job.pages.size() << " blocks dropped: " << status;
  }
}

}  // namespace kvtier::worker
