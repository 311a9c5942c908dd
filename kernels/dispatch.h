// Runtime dispatch: one call per kernel that runs the CUDA implementation when the context
// says so and the CPU one otherwise. The worker builds one KernelContext at start-up
// (AutoContext: CUDA when a device is present) and passes it everywhere; where its data
// lives follows from the backend (device memory for kCuda, host memory for kCpu).
#ifndef KVTIER_KERNELS_DISPATCH_H_
#define KVTIER_KERNELS_DISPATCH_H_

#include <span>

#include "absl/status/status.h"
#include "kernels/backend.h"
#include "kernels/kv_quantize.h"
#include "kernels/page_copy.h"
#include "kernels/paged_attention.h"

namespace kvtier::kernels {

struct KernelContext {
  Backend backend = Backend::kCpu;
  CpuOptions cpu;
  CudaOptions cuda;
};

// kCuda when the kernels were built with CUDA and a device is present, else kCpu.
KernelContext AutoContext();
// The context for a backend named "auto", "cpu" or "cuda"; "cuda" without a device is an
// error that says why (CudaDeviceDescription).
absl::Status ContextFromName(std::string_view name, KernelContext* context);

absl::Status PagedDecodeAttention(const KernelContext& context, const KvPagePool& pool,
                                  const DecodeAttentionArgs& args);
absl::Status GatherPages(const KernelContext& context, const PagePoolBytes& pool,
                         std::span<const CopyFragment> fragments, void* dst, uint64_t dst_bytes);
absl::Status ScatterPages(const KernelContext& context, const void* src, uint64_t src_bytes,
                          std::span<const CopyFragment> fragments, const PagePoolBytes& pool);
absl::Status MovePages(const KernelContext& context, const PagePoolBytes& from,
                       const PagePoolBytes& to, std::span<const PageMove> moves);
absl::Status QuantizeKv(const KernelContext& context, const void* src, DType src_dtype,
                        const KvPageShape& shape, DType dst_dtype, void* dst, float* scales);
absl::Status DequantizeKv(const KernelContext& context, const void* src, DType src_dtype,
                          const float* scales, const KvPageShape& shape, DType dst_dtype,
                          void* dst);
// Waits for the context's queued work (a no-op on the CPU, which is synchronous).
absl::Status Synchronize(const KernelContext& context);

}  // namespace kvtier::kernels

#endif  // KVTIER_KERNELS_DISPATCH_H_
