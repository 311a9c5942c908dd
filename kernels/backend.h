// Where the kernels run: the options of each backend, and whether a CUDA device is there.
//
// Every kernel has a CPU implementation (`...Cpu`, multithreaded) and a CUDA one
// (`...Cuda`) with the same arguments plus the backend's options; kernels/dispatch.h picks
// one at run time. The library builds with and without the CUDA toolkit (CMake option
// KVTIER_CUDA): without it the CUDA entry points exist and return UNIMPLEMENTED, and
// CudaDeviceAvailable() is false.
//
// CUDA launchers are asynchronous: they validate on the host, queue their kernels on the
// stream and return; an OK status means "queued", and errors of the kernels themselves
// surface at the next synchronisation (CudaSynchronize). Memory: the tensors (pages,
// scales, q, out, lse, copy buffers) are device pointers or mapped pinned host memory
// (cudaHostAlloc(..., cudaHostAllocMapped) / cudaHostRegister; the kernels use the host
// address through unified addressing). Small control arrays (page tables, fragment lists)
// are host arrays: the launcher validates them on the host and uploads them through its
// workspace.
#ifndef KVTIER_KERNELS_BACKEND_H_
#define KVTIER_KERNELS_BACKEND_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace kvtier::kernels {

enum class Backend { kCpu, kCuda };
const char* BackendName(Backend backend);

struct CpuOptions {
  int threads = 0;               // 0: hardware concurrency
  uint32_t split_tokens = 2048;  // attention: KV tokens per work item (split-KV)
};

class CudaWorkspace;  // kernels/cuda_workspace.h

struct CudaOptions {
  void* stream = nullptr;  // a cudaStream_t; nullptr: the legacy default stream
  // Scratch memory of the launchers (uploaded control arrays, split-KV partials). nullptr:
  // a workspace owned by the calling thread. One workspace must not serve two streams at
  // once from two threads.
  CudaWorkspace* workspace = nullptr;
  uint32_t split_tokens = 0;  // attention: KV tokens per CTA; 0: sized to fill the device
};

// True when the library was compiled with the CUDA kernels.
bool CudaBuilt();
// True when the kernels were built and a CUDA device can be used (driver present, at least
// one device). Evaluated once per process.
bool CudaDeviceAvailable();
// "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs)", or why there is none.
std::string CudaDeviceDescription();
// Waits for the work queued on `stream`; the first error of a kernel, named.
absl::Status CudaSynchronize(void* stream = nullptr);

}  // namespace kvtier::kernels

#endif  // KVTIER_KERNELS_BACKEND_H_
