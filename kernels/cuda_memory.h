// Owning handles to CUDA memory and streams, and plain copies: what the worker's page pool, the GPU
// tests and the benchmarks allocate with. Every call returns a status; in a build without
// CUDA, Allocate returns UNIMPLEMENTED. Move-only; freeing waits for nothing (the owner
// synchronises first).
#ifndef KVTIER_KERNELS_CUDA_MEMORY_H_
#define KVTIER_KERNELS_CUDA_MEMORY_H_

#include <cstdint>
#include <functional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace kvtier::kernels {

class CudaBuffer {
 public:
  enum class Kind {
    kDevice,      // cudaMalloc
    kPinnedHost,  // cudaHostAlloc(mapped): host memory the kernels can read and write
  };

  static absl::StatusOr<CudaBuffer> Allocate(uint64_t bytes, Kind kind = Kind::kDevice);

  CudaBuffer() = default;
  CudaBuffer(CudaBuffer&& other) noexcept;
  CudaBuffer& operator=(CudaBuffer&& other) noexcept;
  CudaBuffer(const CudaBuffer&) = delete;
  CudaBuffer& operator=(const CudaBuffer&) = delete;
  ~CudaBuffer();

  void* data() const { return data_; }
  uint64_t size() const { return size_; }
  Kind kind() const { return kind_; }

 private:
  CudaBuffer(void* data, uint64_t size, Kind kind) : data_(data), size_(size), kind_(kind) {}
  void Free();

  void* data_ = nullptr;
  uint64_t size_ = 0;
  Kind kind_ = Kind::kDevice;
};

// Existing host memory (e.g. a shared-memory mapping) registered with CUDA as pinned and
// mapped while this lives (cudaHostRegister / cudaHostUnregister), so copies and kernels
// use it like a kPinnedHost buffer.
class CudaHostRegistration {
 public:
  static absl::StatusOr<CudaHostRegistration> Register(void* data, uint64_t bytes);
  CudaHostRegistration() = default;
  CudaHostRegistration(CudaHostRegistration&& other) noexcept;
  CudaHostRegistration& operator=(CudaHostRegistration&& other) noexcept;
  CudaHostRegistration(const CudaHostRegistration&) = delete;
  CudaHostRegistration& operator=(const CudaHostRegistration&) = delete;
  ~CudaHostRegistration();

 private:
  explicit CudaHostRegistration(void* data) : data_(data) {}
  void* data_ = nullptr;
};

// An owned cudaStream_t (non-blocking with respect to the legacy default stream).
class CudaStream {
 public:
  static absl::StatusOr<CudaStream> Create();
  CudaStream() = default;
  CudaStream(CudaStream&& other) noexcept;
  CudaStream& operator=(CudaStream&& other) noexcept;
  CudaStream(const CudaStream&) = delete;
  CudaStream& operator=(const CudaStream&) = delete;
  ~CudaStream();
  void* get() const { return stream_; }  // a cudaStream_t

 private:
  explicit CudaStream(void* stream) : stream_(stream) {}
  void* stream_ = nullptr;
};

// An owned cudaEvent_t (timing disabled): marks a point in a stream's work.
class CudaEvent {
 public:
  static absl::StatusOr<CudaEvent> Create();
  CudaEvent() = default;
  CudaEvent(CudaEvent&& other) noexcept;
  CudaEvent& operator=(CudaEvent&& other) noexcept;
  CudaEvent(const CudaEvent&) = delete;
  CudaEvent& operator=(const CudaEvent&) = delete;
  ~CudaEvent();
  // Marks the end of the work queued on `stream` so far.
  absl::Status Record(void* stream);
  // Blocks until the recorded work completed (at once if never recorded).
  absl::Status Synchronize();

 private:
  explicit CudaEvent(void* event) : event_(event) {}
  void* event_ = nullptr;
};

// cudaMemcpy of any direction (unified addressing); synchronous.
absl::Status CudaCopy(void* dst, const void* src, uint64_t bytes);
// The same, queued on `stream`.
absl::Status CudaCopyAsync(void* dst, const void* src, uint64_t bytes, void* stream);
// cudaMemset; synchronous.
absl::Status CudaFill(void* dst, uint8_t byte, uint64_t bytes);

// Mean seconds per call of `fn` (which queues work on `stream`) over `iterations` calls,
// timed with CUDA events after one untimed call.
absl::StatusOr<double> CudaTimePerCall(void* stream, int iterations,
                                       const std::function<absl::Status()>& fn);

}  // namespace kvtier::kernels

#endif  // KVTIER_KERNELS_CUDA_MEMORY_H_
