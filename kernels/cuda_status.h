// cudaError_t → absl::Status at the launcher boundary (CUDA translation units only).
#ifndef KVTIER_KERNELS_CUDA_STATUS_H_
#define KVTIER_KERNELS_CUDA_STATUS_H_

#include <cuda_runtime_api.h>

#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace kvtier::kernels {

// OK for cudaSuccess; otherwise an error naming the call and CUDA's message. Out of device
// memory is RESOURCE_EXHAUSTED, a missing driver or device UNAVAILABLE, the rest INTERNAL.
inline absl::Status CudaStatus(cudaError_t error, std::string_view what) {
  if (error == cudaSuccess) return absl::OkStatus();
  const std::string message = absl::StrCat(std::string(what), ": ", cudaGetErrorName(error), " (",
                                           cudaGetErrorString(error), ")");
  switch (error) {
    case cudaErrorMemoryAllocation:
      return absl::ResourceExhaustedError(message);
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorInitializationError:
      return absl::UnavailableError(message);
    default:
      return absl::InternalError(message);
  }
}

}  // namespace kvtier::kernels

#endif  // KVTIER_KERNELS_CUDA_STATUS_H_
