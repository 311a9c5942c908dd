#include "kernels/cuda_memory.h"

#include <cuda_runtime_api.h>

#include <utility>

#include "kernels/cuda_status.h"

namespace kvtier::kernels {

absl::StatusOr<CudaBuffer> CudaBuffer::Allocate(uint64_t bytes, Kind kind) {
  void* p = nullptr;
  if (bytes == 0) return CudaBuffer(nullptr, 0, kind);
  if (kind == Kind::kDevice) {
    if (absl::Status s = CudaStatus(cudaMalloc(&p, bytes), "cudaMalloc"); !s.ok()) return s;
  } else {
    if (absl::Status s =
            CudaStatus(cudaHostAlloc(&p, bytes, cudaHostAllocMapped), "cudaHostAlloc(mapped)");
        !s.ok()) {
      return s;
    }
  }
  return CudaBuffer(p, bytes, kind);
}

CudaBuffer::CudaBuffer(CudaBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      kind_(other.kind_) {}

CudaBuffer& CudaBuffer::operator=(CudaBuffer&& other) noexcept {
  if (this != &other) {
    Free();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    kind_ = other.kind_;
  }
  return *this;
}

CudaBuffer::~CudaBuffer() { Free(); }

void CudaBuffer::Free() {
  if (data_ == nullptr) return;
  if (kind_ == Kind::kDevice) {
    cudaFree(data_);
  } else {
    cudaFreeHost(data_);
  }
  data_ = nullptr;
  size_ = 0;
}

absl::StatusOr<CudaHostRegistration> CudaHostRegistration::Register(void* data, uint64_t bytes) {
  if (absl::Status s = CudaStatus(
          cudaHostRegister(data, bytes, cudaHostRegisterMapped | cudaHostRegisterPortable),
          "cudaHostRegister");
      !s.ok()) {
    return s;
  }
  return CudaHostRegistration(data);
}

CudaHostRegistration::CudaHostRegistration(CudaHostRegistration&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)) {}

CudaHostRegistration& CudaHostRegistration::operator=(CudaHostRegistration&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) cudaHostUnregister(data_);
    data_ = std::exchange(other.data_, nullptr);
  }
  return *this;
}

CudaHostRegistration::~CudaHostRegistration() {
  if (data_ != nullptr) cudaHostUnregister(data_);
}

absl::StatusOr<CudaStream> CudaStream::Create() {
  cudaStream_t stream = nullptr;
  if (absl::Status s =
          CudaStatus(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
      !s.ok()) {
    return s;
  }
  return CudaStream(stream);
}

CudaStream::CudaStream(CudaStream&& other) noexcept
    : stream_(std::exchange(other.stream_, nullptr)) {}

CudaStream& CudaStream::operator=(CudaStream&& other) noexcept {
  if (this != &other) {
    if (stream_ != nullptr) cudaStreamDestroy(static_cast<cudaStream_t>(stream_));
    stream_ = std::exchange(other.stream_, nullptr);
  }
  return *this;
}

CudaStream::~CudaStream() {
  if (stream_ != nullptr) cudaStreamDestroy(static_cast<cudaStream_t>(stream_));
}

absl::StatusOr<CudaEvent> CudaEvent::Create() {
  cudaEvent_t event = nullptr;
  if (absl::Status s =
          CudaStatus(cudaEventCreateWithFlags(&event, cudaEventDisableTiming), "cudaEventCreate");
      !s.ok()) {
    return s;
  }
  return CudaEvent(event);
}

CudaEvent::CudaEvent(CudaEvent&& other) noexcept : event_(std::exchange(other.event_, nullptr)) {}

CudaEvent& CudaEvent::operator=(CudaEvent&& other) noexcept {
  if (this != &other) {
    if (event_ != nullptr) cudaEventDestroy(static_cast<cudaEvent_t>(event_));
    event_ = std::exchange(other.event_, nullptr);
  }
  return *this;
}

CudaEvent::~CudaEvent() {
  if (event_ != nullptr) cudaEventDestroy(static_cast<cudaEvent_t>(event_));
}

absl::Status CudaEvent::Record(void* stream) {
  return CudaStatus(
      cudaEventRecord(static_cast<cudaEvent_t>(event_), static_cast<cudaStream_t>(stream)),
      "cudaEventRecord");
}

absl::Status CudaEvent::Synchronize() {
  return CudaStatus(cudaEventSynchronize(static_cast<cudaEvent_t>(event_)), "cudaEventSynchronize");
}

absl::Status CudaCopy(void* dst, const void* src, uint64_t bytes) {
  return CudaStatus(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault), "cudaMemcpy");
}

absl::Status CudaCopyAsync(void* dst, const void* src, uint64_t bytes, void* stream) {
  return CudaStatus(
      cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, static_cast<cudaStream_t>(stream)),
      "cudaMemcpyAsync");
}

absl::Status CudaFill(void* dst, uint8_t byte, uint64_t bytes) {
  return CudaStatus(cudaMemset(dst, byte, bytes), "cudaMemset");
}

absl::StatusOr<double> CudaTimePerCall(void* stream, int iterations,
                                       const std::function<absl::Status()>& fn) {
  const auto s = static_cast<cudaStream_t>(stream);
  cudaEvent_t start = nullptr, stop = nullptr;
  if (absl::Status st = CudaStatus(cudaEventCreate(&start), "cudaEventCreate"); !st.ok()) {
    return st;
  }
  if (absl::Status st = CudaStatus(cudaEventCreate(&stop), "cudaEventCreate"); !st.ok()) {
    cudaEventDestroy(start);
    return st;
  }
  auto run = [&]() -> absl::StatusOr<double> {
    if (absl::Status st = fn(); !st.ok()) return st;  // warm-up
    if (absl::Status st = CudaStatus(cudaEventRecord(start, s), "cudaEventRecord"); !st.ok()) {
      return st;
    }
    for (int i = 0; i < iterations; ++i) {
      if (absl::Status st = fn(); !st.ok()) return st;
    }
    if (absl::Status st = CudaStatus(cudaEventRecord(stop, s), "cudaEventRecord"); !st.ok()) {
      return st;
    }
    if (absl::Status st = CudaStatus(cudaEventSynchronize(stop), "timed work"); !st.ok()) {
      return st;
    }
    float ms = 0;
    if (absl::Status st = CudaStatus(cudaEventElapsedTime(&ms, start, stop), "event time");
        !st.ok()) {
      return st;
    }
    return ms / 1e3 / iterations;
  };
  absl::StatusOr<double> result = run();
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return result;
}

}  // namespace kvtier::kernels
