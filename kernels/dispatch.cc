#include "kernels/dispatch.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace kvtier::kernels {

const char* BackendName(Backend backend) { return backend == Backend::kCuda ? "cuda" : "cpu"; }

KernelContext AutoContext() {
  KernelContext context;
  context.backend = CudaDeviceAvailable() ? Backend::kCuda : Backend::kCpu;
  return context;
}

absl::Status ContextFromName(std::string_view name, KernelContext* context) {
  if (name == "auto") {
    *context = AutoContext();
  } else if (name == "cpu") {
    *context = KernelContext{};
  } else if (name == "cuda") {
    if (!CudaDeviceAvailable()) {
      return absl::FailedPreconditionError(
          absl::StrCat("backend cuda asked for, but ", CudaDeviceDescription()));
    }
    *context = KernelContext{.backend = Backend::kCuda};
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown kernel backend '", std::string(name), "' (auto, cpu or cuda)"));
  }
  return absl::OkStatus();
}

absl::Status PagedDecodeAttention(const KernelContext& context, const KvPagePool& pool,
                                  const DecodeAttentionArgs& args) {
  return context.backend == Backend::kCuda ? PagedDecodeAttentionCuda(pool, args, context.cuda)
                                           : PagedDecodeAttentionCpu(pool, args, context.cpu);
}

absl::Status GatherPages(const KernelContext& context, const PagePoolBytes& pool,
                         std::span<const CopyFragment> fragments, void* dst, uint64_t dst_bytes) {
  return context.backend == Backend::kCuda
             ? GatherPagesCuda(pool, fragments, dst, dst_bytes, context.cuda)
             : GatherPagesCpu(pool, fragments, dst, dst_bytes, context.cpu.threads);
}

absl::Status ScatterPages(const KernelContext& context, const void* src, uint64_t src_bytes,
                          std::span<const CopyFragment> fragments, const PagePoolBytes& pool) {
  return context.backend == Backend::kCuda
             ? ScatterPagesCuda(src, src_bytes, fragments, pool, context.cuda)
             : ScatterPagesCpu(src, src_bytes, fragments, pool, context.cpu.threads);
}

absl::Status MovePages(const KernelContext& context, const PagePoolBytes& from,
                       const PagePoolBytes& to, std::span<const PageMove> moves) {
  return context.backend == Backend::kCuda ? MovePagesCuda(from, to, moves, context.cuda)
                                           : MovePagesCpu(from, to, moves, context.cpu.threads);
}

absl::Status QuantizeKv(const KernelContext& context, const void* src, DType src_dtype,
                        const KvPageShape& shape, DType dst_dtype, void* dst, float* scales) {
  return context.backend == Backend::kCuda
             ? QuantizeKvCuda(src, src_dtype, shape, dst_dtype, dst, scales, context.cuda)
             : QuantizeKvCpu(src, src_dtype, shape, dst_dtype, dst, scales, context.cpu.threads);
}

absl::Status DequantizeKv(const KernelContext& context, const void* src, DType src_dtype,
                          const float* scales, const KvPageShape& shape, DType dst_dtype,
                          void* dst) {
  return context.backend == Backend::kCuda
             ? DequantizeKvCuda(src, src_dtype, scales, shape, dst_dtype, dst, context.cuda)
             : DequantizeKvCpu(src, src_dtype, scales, shape, dst_dtype, dst, context.cpu.threads);
}

absl::Status Synchronize(const KernelContext& context) {
  return context.backend == Backend::kCuda ? CudaSynchronize(context.cuda.stream)
                                           : absl::OkStatus();
}

}  // namespace kvtier::kernels
