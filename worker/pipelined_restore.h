// PipelinedRestore: fetches a run of blocks from the store layer-major on its own thread, and
// lets the caller use each layer as soon as it is complete: WaitLayer(l) returns once layer
// l of every block has arrived, every chunk of it has passed its checksum (the client
// verifies each layer before reporting it) and, for device pages, its copy into the pages has
// completed; or with the error that stopped the restore. So the decoder computes layer l of
// the new tokens while layer l+1 of the prefix is still on the wire, and never reads a byte
// that was not verified and is not in place.
//
// Where bytes land: host pages receive the fetch directly (no uploader); device pages get
// it through pinned staging, and the RestoreUploader queues each verified layer's
// host→device copy as soon as it lands.
//
// The pages (and staging) belong to the caller, who must not use them beyond WaitLayer's
// promise, and must call Finish before releasing them: it joins the thread, which has
// waited for every copy. Thread-safe.
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
#include "worker/restore_uploader.h"

namespace kvtier::worker {

class PipelinedRestore {
 public:
  // Starts fetching `keys` into `landing` (one block each, host memory): the pages
  // themselves when `uploader` is null, else the staging the uploader copies from. `shm`:
  // the shared-memory region `landing` lies in, for same-node delivery (may be null).
  PipelinedRestore(StoreClient* store, const KvLayout& layout, std::vector<BlockKey> keys,
                   std::vector<uint8_t*> landing,
                   std::unique_ptr<RestoreUploader> uploader = nullptr,
                   const SharedMemoryRegion* shm = nullptr);
  ~PipelinedRestore();  // joins

  // Blocks until layer `layer` of every block is verified and in its page, or the restore
  // failed.
  absl::Status WaitLayer(uint32_t layer);
  // Waits for the whole fetch and every copy; OK when every byte arrived, verified, and
  // is in its page.
  absl::Status Finish();
  // When the fetch ended (valid after Finish).
  std::chrono::steady_clock::time_point end() const { return end_; }
  // Whether the bytes came by same-node delivery (valid after Finish). A store that
  // refuses it (no --shm_socket, another node's store) is asked again over the socket.
  bool delivered_by_shm() const { return delivered_by_shm_; }

 private:
  void Run();
  void OnChunk(uint32_t block, uint64_t offset, uint64_t length);
  bool NothingArrived();

  StoreClient* const store_;
  const uint64_t layer_bytes_;
  const uint32_t num_layers_;
  const std::vector<BlockKey> keys_;
  const std::vector<uint8_t*> landing_;
  const uint64_t block_bytes_;
  const std::unique_ptr<RestoreUploader> uploader_;  // null: landing_ are the pages
  const SharedMemoryRegion* const shm_;

  absl::Mutex mu_;
  std::vector<uint64_t> arrived_ ABSL_GUARDED_BY(mu_);   // [block][layer] bytes verified
  std::vector<uint32_t> complete_ ABSL_GUARDED_BY(mu_);  // [layer] blocks complete
  // [layer]: complete, and (with an uploader) every copy of it queued.
  std::vector<bool> ready_ ABSL_GUARDED_BY(mu_);
  absl::Status upload_status_ ABSL_GUARDED_BY(mu_);  // the first failed copy
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point end_;  // written by the thread before it ends
  bool delivered_by_shm_ = false;              // likewise
  std::thread thread_;
};

}  // namespace kvtier::worker

#endif  // KVTIER_WORKER_PIPELINED_RESTORE_H_
