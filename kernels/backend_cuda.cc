// Device discovery and synchronisation for builds with the CUDA kernels.
#include <cuda_runtime_api.h>

#include "absl/strings/str_cat.h"
#include "kernels/backend.h"
#include "kernels/cuda_status.h"

namespace kvtier::kernels {
namespace {

struct Discovery {
  bool available = false;
  std::string description;
};

const Discovery& Discover() {
  static const Discovery discovery = [] {
    Discovery d;
    int count = 0;
    const cudaError_t error = cudaGetDeviceCount(&count);
    if (error != cudaSuccess) {
      d.description = absl::StrCat("no CUDA device: ", cudaGetErrorString(error));
      cudaGetLastError();  // the failed probe is not a sticky error of later calls
      return d;
    }
    if (count == 0) {
      d.description = "no CUDA device";
      return d;
    }
    int device = 0;
    cudaDeviceProp prop{};
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
      d.description = "a CUDA device that cannot be queried";
      return d;
    }
    d.available = true;
    d.description = absl::StrCat(prop.name, " (sm_", prop.major, prop.minor, ", ",
                                 prop.multiProcessorCount, " SMs)");
    return d;
  }();
  return discovery;
}

}  // namespace

bool CudaBuilt() { return true; }
bool CudaDeviceAvailable() { return Discover().available; }
std::string CudaDeviceDescription() { return Discover().description; }

absl::Status CudaSynchronize(void* stream) {
  return CudaStatus(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)),
                    "cudaStreamSynchronize");
}

}  // namespace kvtier::kernels
