#include "kernels/cuda_workspace.h"

#include <cuda_runtime_api.h>

#include <algorithm>

#include "kernels/cuda_status.h"

namespace kvtier::kernels {

struct CudaWorkspace::State {
  uint8_t* device = nullptr;
  uint64_t device_bytes = 0;
  uint8_t* host = nullptr;
  uint64_t host_bytes = 0;
  cudaEvent_t uploaded = nullptr;  // the staging buffer may be rewritten after this
  cudaEvent_t finished = nullptr;  // the last call's kernels are done after this
  cudaStream_t last_stream = nullptr;
  bool used = false;
};

CudaWorkspace::CudaWorkspace() : state_(std::make_unique<State>()) {}

CudaWorkspace::~CudaWorkspace() {
  // Errors are ignored: at process exit the runtime may already be gone.
  if (state_->used) cudaEventSynchronize(state_->finished);
  if (state_->device != nullptr) cudaFree(state_->device);
  if (state_->host != nullptr) cudaFreeHost(state_->host);
  if (state_->uploaded != nullptr) cudaEventDestroy(state_->uploaded);
  if (state_->finished != nullptr) cudaEventDestroy(state_->finished);
}

uint64_t CudaWorkspace::device_bytes() const { return state_->device_bytes; }

absl::StatusOr<CudaWorkspace::Reservation> CudaWorkspace::Reserve(uint64_t upload_bytes,
                                                                  uint64_t scratch_bytes,
                                                                  void* stream) {
  State& s = *state_;
  if (s.uploaded == nullptr) {
    if (absl::Status st = CudaStatus(cudaEventCreateWithFlags(&s.uploaded, cudaEventDisableTiming),
                                     "cudaEventCreate");
        !st.ok()) {
      return st;
    }
    if (absl::Status st = CudaStatus(cudaEventCreateWithFlags(&s.finished, cudaEventDisableTiming),
                                     "cudaEventCreate");
        !st.ok()) {
      return st;
    }
  }
  const auto cuda_stream = static_cast<cudaStream_t>(stream);
  const uint64_t scratch_at = AlignUp(upload_bytes, 256);
  const uint64_t device_need = scratch_at + scratch_bytes;
  if (s.used) {
    // The staging buffer is about to be rewritten: its last upload must have left.
    if (absl::Status st = CudaStatus(cudaEventSynchronize(s.uploaded), "waiting for an upload");
        !st.ok()) {
      return st;
    }
    // Another stream, or a buffer about to be freed: the previous call's kernels first.
    if (cuda_stream != s.last_stream || device_need > s.device_bytes) {
      if (absl::Status st =
              CudaStatus(cudaEventSynchronize(s.finished), "waiting for the previous kernels");
          !st.ok()) {
        return st;
      }
    }
  }
  if (device_need > s.device_bytes) {
    const uint64_t bytes = std::max<uint64_t>(device_need, 2 * s.device_bytes);
    if (s.device != nullptr) cudaFree(s.device);
    s.device = nullptr;
    s.device_bytes = 0;
    void* p = nullptr;
    if (absl::Status st = CudaStatus(cudaMalloc(&p, bytes), "cudaMalloc of the workspace");
        !st.ok()) {
      return st;
    }
    s.device = static_cast<uint8_t*>(p);
    s.device_bytes = bytes;
  }
  if (upload_bytes > s.host_bytes) {
    const uint64_t bytes = std::max<uint64_t>(AlignUp(upload_bytes, 4096), 2 * s.host_bytes);
    if (s.host != nullptr) cudaFreeHost(s.host);
    s.host = nullptr;
    s.host_bytes = 0;
    void* p = nullptr;
    if (absl::Status st = CudaStatus(cudaMallocHost(&p, bytes), "cudaMallocHost of the staging");
        !st.ok()) {
      return st;
    }
    s.host = static_cast<uint8_t*>(p);
    s.host_bytes = bytes;
  }
  s.last_stream = cuda_stream;
  return Reservation{.host = s.host, .device = s.device, .scratch = s.device + scratch_at};
}

absl::Status CudaWorkspace::Upload(uint64_t bytes, void* stream) {
  State& s = *state_;
  const auto cuda_stream = static_cast<cudaStream_t>(stream);
  if (bytes > 0) {
    if (absl::Status st = CudaStatus(
            cudaMemcpyAsync(s.device, s.host, bytes, cudaMemcpyHostToDevice, cuda_stream),
            "uploading kernel arguments");
        !st.ok()) {
      return st;
    }
  }
  s.used = true;
  return CudaStatus(cudaEventRecord(s.uploaded, cuda_stream), "cudaEventRecord");
}

absl::Status CudaWorkspace::Finish(void* stream) {
  State& s = *state_;
  s.used = true;
  return CudaStatus(cudaEventRecord(s.finished, static_cast<cudaStream_t>(stream)),
                    "cudaEventRecord");
}

CudaWorkspace& WorkspaceFor(const CudaOptions& options) {
  if (options.workspace != nullptr) return *options.workspace;
  thread_local CudaWorkspace workspace;
  return workspace;
}

}  // namespace kvtier::kernels
