#include "cache_store/host_memory_lock.h"

#include <dlfcn.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace kvtier {
namespace {

// The few CUDA driver entry points we need, loaded at run time so that the store builds
// and runs without the CUDA toolkit or a GPU.
struct CudaDriver {
  using CUresult = int;
  using CUdevice = int;
  using CUcontext = void*;
  static constexpr unsigned kHostRegisterPortable = 0x01;

  CUresult (*cuInit)(unsigned) = nullptr;
  CUresult (*cuDeviceGetCount)(int*) = nullptr;
  CUresult (*cuDeviceGet)(CUdevice*, int) = nullptr;
  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext*, CUdevice) = nullptr;
  CUresult (*cuCtxSetCurrent)(CUcontext) = nullptr;
  CUresult (*cuMemHostRegister)(void*, size_t, unsigned) = nullptr;
  CUresult (*cuMemHostUnregister)(void*) = nullptr;
  bool usable = false;

  static const CudaDriver& Get() {
    static const CudaDriver* driver = Load();
    return *driver;
  }

 private:
  template <typename F>
  static bool Bind(void* lib, const char* name, F* fn) {
    *fn = reinterpret_cast<F>(dlsym(lib, name));
    return *fn != nullptr;
  }

  static CudaDriver* Load() {
    auto* d = new CudaDriver();
    void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) return d;
    bool ok = Bind(lib, "cuInit", &d->cuInit) &&
              Bind(lib, "cuDeviceGetCount", &d->cuDeviceGetCount) &&
              Bind(lib, "cuDeviceGet", &d->cuDeviceGet) &&
              Bind(lib, "cuDevicePrimaryCtxRetain", &d->cuDevicePrimaryCtxRetain) &&
              Bind(lib, "cuCtxSetCurrent", &d->cuCtxSetCurrent) &&
              Bind(lib, "cuMemHostRegister_v2", &d->cuMemHostRegister) &&
              Bind(lib, "cuMemHostUnregister", &d->cuMemHostUnregister);
    int count = 0;
    CUdevice dev = 0;
    CUcontext ctx = nullptr;
    // Registration needs a current context; the primary context of device 0 serves, and
    // the portable flag makes the pinning visible to every context.
    d->usable = ok && d->cuInit(0) == 0 && d->cuDeviceGetCount(&count) == 0 && count > 0 &&
                d->cuDeviceGet(&dev, 0) == 0 && d->cuDevicePrimaryCtxRetain(&ctx, dev) == 0 &&
                d->cuCtxSetCurrent(ctx) == 0;
    return d;
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<HostMemoryLock>> HostMemoryLock::Lock(void* data, size_t size) {
  const CudaDriver& cuda = CudaDriver::Get();
  std::string cuda_error;
  if (cuda.usable) {
    int rc = cuda.cuMemHostRegister(data, size, CudaDriver::kHostRegisterPortable);
    if (rc == 0) {
      return std::unique_ptr<HostMemoryLock>(
          new HostMemoryLock(data, size, Method::kCudaHostRegister));
    }
    cuda_error = absl::StrCat("cuMemHostRegister failed with CUresult ", rc, "; ");
  }
  if (mlock(data, size) == 0) {
    return std::unique_ptr<HostMemoryLock>(new HostMemoryLock(data, size, Method::kMlock));
  }
  int err = errno;
  return absl::ResourceExhaustedError(absl::StrCat(
      cuda_error, "mlock of ", size, " bytes failed: ", std::strerror(err),
      " (raise RLIMIT_MEMLOCK, e.g. `ulimit -l unlimited` or the IPC_LOCK capability)"));
}

HostMemoryLock::~HostMemoryLock() {
  if (method_ == Method::kCudaHostRegister) {
    CudaDriver::Get().cuMemHostUnregister(data_);
  } else {
    munlock(data_, size_);
  }
}

const char* HostMemoryLock::MethodName() const {
  return method_ == Method::kCudaHostRegister ? "cuda_host_register" : "mlock";
}

}  // namespace kvtier
