// PipelinedRestore: fetches a run of blocks from the store layer-major, straight into their
// pages, on its own thread, and lets the caller use each layer as soon as it is complete:
// WaitLayer(l) returns once layer l of every block has arrived and every chunk of it has
// passed its checksum (the client verifies chunks before reporting them), or with the
// fetch's error. So the decoder computes layer l of the new tokens while layer l+1 of the
// prefix is still on the wire, and never reads a byte that was not verified.
//
// The pages belong to the caller, who must not use them beyond WaitLayer's promise, and
// must call Finish (joins the thread) before releasing them. Thread-safe.
#ifndef KVTIER_WORKER_PIPELINED_RESTORE_H_
#define KVTIER_WORKER_PIPELINED_RESTORE_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "cache_store/block_key.h"
#include "cache_store/kv_layout.h"
#include "client/cache_store_client.h"

namespace kvtier::worker {

class PipelinedRestore {
 public:
  // Starts fetching `keys` into `pages` (one block each, host memory).
  PipelinedRestore(CacheStoreClient* store, const KvLayout& layout, std::vector<BlockKey> keys,
                   std::vector<uint8_t*> pages);
  ~PipelinedRestore();  // joins

  // Blocks until layer `layer` of every block is verified in its page, or the fetch failed.
  absl::Status WaitLayer(uint32_t layer);
  // Waits for the whole fetch; OK when every byte arrived and verified.
  absl::Status Finish();
  // When the fetch ended (valid after Finish).
  std::chrono::steady_clock::time_point end() const { return end_; }

 private:
  void Run();
  void OnChunk(uint32_t block, uint64_t offset, uint64_t length);

  CacheStoreClient* const store_;
  const uint64_t layer_bytes_;
  const uint32_t num_layers_;
  const std::vector<BlockKey> keys_;
  const std::vector<uint8_t*> pages_;
  const uint64_t block_bytes_;

  absl::Mutex mu_;
  std::vector<uint64_t> arrived_ ABSL_GUARDED_BY(mu_);   // [block][layer] bytes verified
  std::vector<uint32_t> complete_ ABSL_GUARDED_BY(mu_);  // [layer] blocks complete
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point end_;  // written by the thread before it ends
  std::thread thread_;
};

}  // namespace kvtier::worker

#endif  // KVTIER_WORKER_PIPELINED_RESTORE_H_
