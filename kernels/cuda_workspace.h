// CudaWorkspace: the scratch memory of the CUDA launchers, reused from call to call.
//
// A launcher stages its small control arrays (page tables, work lists, fragment lists) in
// pinned host memory, uploads them with one asynchronous copy, and may ask for device-only
// scratch behind them (split-KV partial results). The buffers grow on demand and never
// shrink. Reuse is stream-ordered: work queued on the same stream sees its own upload; a
// call on a different stream, or one that must grow a buffer, first waits for the work of
// the previous call. Thread-compatible: one thread (or external locking) per workspace.
//
// Layout of a reservation: device = [upload bytes | pad to 256 | scratch bytes].
#ifndef KVTIER_KERNELS_CUDA_WORKSPACE_H_
#define KVTIER_KERNELS_CUDA_WORKSPACE_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "kernels/backend.h"

namespace kvtier::kernels {

class CudaWorkspace {
 public:
  struct Reservation {
    uint8_t* host = nullptr;     // pinned staging for the upload
    uint8_t* device = nullptr;   // the upload's device copy
    uint8_t* scratch = nullptr;  // device-only scratch
  };

  CudaWorkspace();
  ~CudaWorkspace();  // waits for the last call's work
  CudaWorkspace(const CudaWorkspace&) = delete;
  CudaWorkspace& operator=(const CudaWorkspace&) = delete;

  // Room for `upload_bytes` of staged control data and `scratch_bytes` of scratch, for
  // work about to be queued on `stream`.
  absl::StatusOr<Reservation> Reserve(uint64_t upload_bytes, uint64_t scratch_bytes, void* stream);
  // Queues the copy of the first `bytes` of staging to the device on `stream`.
  absl::Status Upload(uint64_t bytes, void* stream);
  // Marks the end of the call's kernels on `stream` (the point a later reuse waits for).
  absl::Status Finish(void* stream);

  uint64_t device_bytes() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// The workspace a launcher uses: options.workspace, or the calling thread's own.
CudaWorkspace& WorkspaceFor(const CudaOptions& options);

inline constexpr uint64_t AlignUp(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

}  // namespace kvtier::kernels

#endif  // KVTIER_KERNELS_CUDA_WORKSPACE_H_
