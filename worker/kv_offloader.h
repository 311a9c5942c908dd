// KvOffloader: writes full blocks of closed sequences back to the store, on its own thread,
// so that CloseSequence returns at once. Each job is a run of consecutive blocks of one
// prompt (one Put). Its pages are keyed and "unsafe" in the PagePool until the job ends:
// after the store acknowledged the Put, or after it failed and the blocks were deliberately
// dropped (counted), the pool may evict them. Nothing is dropped silently.
// Thread-safe.
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
#include "worker/page_pool.h"

namespace kvtier::worker {

class KvOffloader {
 public:
  struct Job {
    std::vector<uint32_t> tokens;  // the prompt up to the end of the last block
    uint32_t first_block = 0;
    std::vector<uint32_t> pages;  // one per block, in order
    std::vector<BlockKey> keys;
  };
  struct Counts {
    uint64_t blocks = 0, bytes = 0, dropped_blocks = 0, pending_jobs = 0;
  };

  KvOffloader(std::shared_ptr<CacheStoreClient> store, PagePool* pool, std::string salt);
  ~KvOffloader();  // finishes the queued jobs first

  void Enqueue(Job job);
  // Waits until every job queued so far has ended.
  void Flush();
  Counts counts() const;

 private:
  void Loop();
  void RunJob(const Job& job);

  std::shared_ptr<CacheStoreClient> store_;
  PagePool* pool_;
  const std::string salt_;
  mutable absl::Mutex mu_;
  std::deque<Job> queue_ ABSL_GUARDED_BY(mu_);
  bool busy_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  Counts counts_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace kvtier::worker

#endif  // KVTIER_WORKER_KV_OFFLOADER_H_
