// HostMemoryLock: keeps a host memory range resident for DMA.
//
// With a CUDA driver present (libcuda.so.1 loads and reports a device), the range is
// registered with cuMemHostRegister (portable), so GPUs can copy from it directly. Without
// one, the range is mlock()ed. The range is unlocked when the object is destroyed.
// Not thread-safe; owned by the arena it locks.
#ifndef KVTIER_CACHE_STORE_HOST_MEMORY_LOCK_H_
#define KVTIER_CACHE_STORE_HOST_MEMORY_LOCK_H_

#include <cstddef>
#include <memory>

#include "absl/status/statusor.h"

namespace kvtier {

class HostMemoryLock {
 public:
  enum class Method { kCudaHostRegister, kMlock };

  // Locks [data, data + size). Fails (nothing locked) with the reason when neither method
  // works, e.g. RLIMIT_MEMLOCK too low.
  static absl::StatusOr<std::unique_ptr<HostMemoryLock>> Lock(void* data, size_t size);

  ~HostMemoryLock();
  HostMemoryLock(const HostMemoryLock&) = delete;
  HostMemoryLock& operator=(const HostMemoryLock&) = delete;

  Method method() const { return method_; }
  const char* MethodName() const;

 private:
  HostMemoryLock(void* data, size_t size, Method method)
      : data_(data), size_(size), method_(method) {}

  void* data_;
  size_t size_;
  Method method_;
};

}  // namespace kvtier

#endif  // KVTIER_CACHE_STORE_HOST_MEMORY_LOCK_H_
