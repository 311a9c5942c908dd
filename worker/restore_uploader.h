// RestoreUploader: the second hop of a restore into device pages. The store's bytes land in
// pinned host staging (where the client verifies each chunk's checksum); the uploader moves
// each verified range into its page, and tells the decoder when a layer's copies have
// completed. A page is never read before that (PipelinedRestore waits for it), and never
// released while a copy into it may still run (Drain).
//
// CudaRestoreUploader: the ranges of a layer are collected as they land; once the layer is
// complete, one kernel (kernels::MovePagesCuda) copies all of them from the mapped pinned
// staging into the device pages on the restore's copy stream, and an event marks its end.
// So the copy of layer l overlaps the transfer of layer l+1 and the decoder's work on
// earlier layers, with one launch per layer rather than one DMA per chunk. Host pages need
// no uploader: the fetch lands in them directly.
#ifndef KVTIER_WORKER_RESTORE_UPLOADER_H_
#define KVTIER_WORKER_RESTORE_UPLOADER_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/cuda_memory.h"
#include "kernels/cuda_workspace.h"
#include "kernels/page_copy.h"

namespace kvtier::worker {

class RestoreUploader {
 public:
  virtual ~RestoreUploader() = default;
  // Bytes [offset, offset + length) of block `block` have landed in its staging and passed
  // their checksum; they are copied into the page no later than when their layer is
  // marked. Called from the fetch's thread.
  virtual absl::Status Copy(uint32_t block, uint64_t offset, uint64_t length) = 0;
  // Every range of `layer` has been handed to Copy (fetch thread).
  virtual absl::Status LayerQueued(uint32_t layer) = 0;
  // Blocks until the copies into `layer` have completed. REQUIRES: LayerQueued(layer)
  // returned OK.
  virtual absl::Status WaitLayer(uint32_t layer) = 0;
  // Blocks until every queued copy has completed.
  virtual absl::Status Drain() = 0;
};

class CudaRestoreUploader final : public RestoreUploader {
 public:
  // Block b of the restore lands in staging page b (mapped pinned host memory, pages of
  // one block) and belongs in device page pages[b] of `device`. Copies run on `stream`
  // with `workspace` (both the caller's, not shared meanwhile).
  static absl::StatusOr<std::unique_ptr<CudaRestoreUploader>> Create(
      const kernels::PagePoolBytes& staging, const kernels::PagePoolBytes& device,
      std::vector<uint32_t> pages, uint32_t num_layers, void* stream,
      kernels::CudaWorkspace* workspace);

  absl::Status Copy(uint32_t block, uint64_t offset, uint64_t length) override;
  absl::Status LayerQueued(uint32_t layer) override;
  absl::Status WaitLayer(uint32_t layer) override;
  absl::Status Drain() override;

 private:
  CudaRestoreUploader(const kernels::PagePoolBytes& staging, const kernels::PagePoolBytes& device,
                      std::vector<uint32_t> pages, std::vector<kernels::CudaEvent> events,
                      void* stream, kernels::CudaWorkspace* workspace);

  const kernels::PagePoolBytes staging_, device_;
  const std::vector<uint32_t> pages_;
  std::vector<kernels::CudaEvent> layer_done_;
  const kernels::CudaOptions options_;
  std::vector<kernels::PageMove> pending_;  // landed, not yet launched (fetch thread only)
};

}  // namespace kvtier::worker

#endif  // KVTIER_WORKER_RESTORE_UPLOADER_H_
