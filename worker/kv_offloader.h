// KvOffloader: writes full blocks of closed sequences back to the store, on its own thread,
// so that CloseSequence returns at once. Each job is a run of consecutive blocks of one
// prompt (one Put). Its pages are keyed and "unsafe" in the PagePool until the job ends:
// after the store acknowledged the Put, or after it failed and the blocks were deliberately
// dropped (counted), the pool may evict them. Nothing is dropped silently.
//
// Same-node (`same_node`, the client has the store's shm_socket): host pages in a
// SharedMemoryRegion are Put without crossing the socket (the store copies them out);
// device pages are first copied into a region of pinned staging, kStagingBlocks at a time.
// A store that refuses (another node, no --shm_socket) is asked over the socket, and from
// then on only there. Thread-safe.
#ifndef KVTIER_WORKER_KV_OFFLOADER_H_
#define KVTIER_WORKER_KV_OFFLOADER_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "cache_store/block_key.h"
#include "client/cache_store_client.h"
#include "kernels/cuda_memory.h"
#include "worker/page_pool.h"

namespace kvtier::worker {

class KvOffloader {
 public:
  struct Job {
    std::vector<uint32_t> tokens;  // the prompt up to the end of the last block
    uint32_t first_block = 0;
    std::vector<uint32_t> pages;  // one per block, in order
    std::vector<BlockKey> keys;
    // Tokens the sequence had decoded when it was offloaded (PutParams::output_tokens).
    uint32_t output_tokens = 0;
  };
  struct Counts {
    uint64_t blocks = 0, bytes = 0, dropped_blocks = 0, pending_jobs = 0;
    uint64_t shm_blocks = 0;  // of `blocks`, copied out of shared memory by the store
  };
  // Device pages staged for a same-node Put at a time.
  static constexpr uint32_t kStagingBlocks = 64;

  KvOffloader(std::shared_ptr<StoreClient> store, PagePool* pool, std::string salt,
              bool same_node = false);
  ~KvOffloader();  // finishes the queued jobs first

  void Enqueue(Job job);
  // Waits until every job queued so far has ended.
  void Flush();
  Counts counts() const;

 private:
  void Loop();
  void RunJob(const Job& job);
  // Puts blocks [first, first + blocks.size()) of the job, same-node when `shm` is given and
  // the store has not refused it; returns how many went same-node (0 or all).
  absl::StatusOr<uint64_t> PutRun(const Job& job, size_t first,
                                  std::span<const std::span<const uint8_t>> blocks,
                                  const SharedMemoryRegion* shm);

  std::shared_ptr<StoreClient> store_;
  PagePool* pool_;
  const std::string salt_;
  const bool same_node_;
  // Used by the offload thread only: pinned staging for device pages (same-node), and
  // whether the store refused same-node Puts.
  std::unique_ptr<SharedMemoryRegion> staging_;
  kernels::CudaHostRegistration staging_registration_;
  bool shm_refused_ = false;
  mutable absl::Mutex mu_;
  std::deque<Job> queue_ ABSL_GUARDED_BY(mu_);
  bool busy_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  Counts counts_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace kvtier::worker

#endif  // KVTIER_WORKER_KV_OFFLOADER_H_
