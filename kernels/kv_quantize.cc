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

// The checks of one direction: `from` and `to` dtypes of the right kinds, the pointers.
absl::Status CheckConversion(const char* what, bool dtypes_ok, DType from, DType to,
                             const KvPageShape& shape, bool pointers_present) {
  if (absl::Status s = CheckShape(shape); !s.ok()) return s;
  if (!dtypes_ok) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " (got ", DTypeName(from), " to ", DTypeName(to), ")"));
  }
  if (shape.num_pages > 0 && !pointers_present) {
    return absl::InvalidArgumentError("src, dst and scales are required");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateQuantizeKv(const void* src, DType src_dtype, const KvPageShape& shape,
                                DType dst_dtype, const void* dst, const float* scales) {
  return CheckConversion("quantize goes from fp32/fp16/bf16 to fp8/int8",
                         IsActivationType(src_dtype) && IsQuantized(dst_dtype), src_dtype,
                         dst_dtype, shape, src && dst && scales);
}

absl::Status ValidateDequantizeKv(const void* src, DType src_dtype, const float* scales,
                                  const KvPageShape& shape, DType dst_dtype, const void* dst) {
  return CheckConversion("dequantize goes from fp8/int8 to fp32/fp16/bf16",
                         IsQuantized(src_dtype) && IsActivationType(dst_dtype), src_dtype,
                         dst_dtype, shape, src && dst && scales);
}

}  // namespace kvtier::kernels
