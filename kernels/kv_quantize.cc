// Argument validation shared by the CPU and CUDA implementations of K/V quantization.
#include "kernels/kv_quantize.h"

#include "absl/strings/str_cat.h"
#include "kernels/element_io.h"

namespace kvtier::kernels {
namespace {

absl::Status CheckShape(const KvPageShape& s) {
  if (s.num_layers == 0 || s.tokens_per_page == 0 || s.num_kv_heads == 0 || s.head_dim == 0) {
    return absl::InvalidArgumentError(
        "the page shape needs num_layers, tokens_per_page, num_kv_heads and head_dim > 0");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateQuantizeKv(const void* src, DType src_dtype, const KvPageShape& shape,
                                DType dst_dtype, const void* dst, const float* scales) {
  if (absl::Status s = CheckShape(shape); !s.ok()) return s;
  if (!IsActivationType(src_dtype) || !IsQuantized(dst_dtype)) {
    return absl::InvalidArgumentError(
        absl::StrCat("quantize goes from fp32/fp16/bf16 to fp8/int8 (got ", DTypeName(src_dtype),
                     " to ", DTypeName(dst_dtype), ")"));
  }
  if (shape.num_pages > 0 && (src == nullptr || dst == nullptr || scales == nullptr)) {
    return absl::InvalidArgumentError("src, dst and scales are required");
  }
  return absl::OkStatus();
}

absl::Status ValidateDequantizeKv(const void* src, DType src_dtype, const float* scales,
                                  const KvPageShape& shape, DType dst_dtype, const void* dst) {
  if (absl::Status s = CheckShape(shape); !s.ok()) return s;
  if (!IsQuantized(src_dtype) || !IsActivationType(dst_dtype)) {
    return absl::InvalidArgumentError(
        absl::StrCat("dequantize goes from fp8/int8 to fp32/fp16/bf16 (got ", DTypeName(src_dtype),
                     " to ", DTypeName(dst_dtype), ")"));
  }
  if (shape.num_pages > 0 && (src == nullptr || dst == nullptr || scales == nullptr)) {
    return absl::InvalidArgumentError("src, dst and scales are required");
  }
  return absl::OkStatus();
}

}  // namespace kvtier::kernels
