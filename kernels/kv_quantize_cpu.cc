#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu_parallel.h"
#include "kernels/element_io.h"
#include "kernels/kv_quantize.h"

namespace kvtier::kernels {
namespace {

// One (page, layer, K or V, KV head): the unit that shares a scale. Scale `index` in the
// layout [page][layer][kv][head].
struct HeadOfPage {
  uint64_t page;
  uint32_t layer, kv, head;
};

HeadOfPage HeadAt(const KvPageShape& s, uint64_t index) {
  const uint64_t rest = index / s.num_kv_heads;
  return {.page = rest / 2 / s.num_layers,
          .layer = static_cast<uint32_t>((rest / 2) % s.num_layers),
          .kv = static_cast<uint32_t>(rest % 2),
          .head = static_cast<uint32_t>(index % s.num_kv_heads)};
}

// Element index of the head's row for `token`.
uint64_t RowIndex(const KvPageShape& s, const HeadOfPage& at, uint32_t token) {
  return ((((at.page * s.num_layers + at.layer) * 2 + at.kv) * s.tokens_per_page + token) *
              s.num_kv_heads +
          at.head) *
         s.head_dim;
}

}  // namespace

absl::Status QuantizeKvCpu(const void* src, DType src_dtype, const KvPageShape& shape,
                           DType dst_dtype, void* dst, float* scales, int threads) {
  if (absl::Status s = ValidateQuantizeKv(src, src_dtype, shape, dst_dtype, dst, scales);
      !s.ok() || shape.num_pages == 0) {
    return s;
  }
  const uint64_t in_bytes = DTypeBytes(src_dtype);
  const float qmax = dst_dtype == DType::kInt8 ? 127.0f : kE4m3Max;
  ParallelFor(shape.Scales(), threads, [&](size_t index) {
    const HeadOfPage at = HeadAt(shape, index);
    std::vector<float> row(shape.head_dim);
    float amax = 0;
    for (uint32_t t = 0; t < shape.tokens_per_page; ++t) {
      const uint64_t r = RowIndex(shape, at, t);
      LoadRow(static_cast<const uint8_t*>(src) + r * in_bytes, src_dtype, shape.head_dim, 1.0f,
              row.data());
      for (float x : row) amax = std::max(amax, std::fabs(x));
    }
    const float scale = amax > 0 ? amax / qmax : 1.0f;
    scales[index] = scale;
    for (uint32_t t = 0; t < shape.tokens_per_page; ++t) {
      const uint64_t r = RowIndex(shape, at, t);
      LoadRow(static_cast<const uint8_t*>(src) + r * in_bytes, src_dtype, shape.head_dim, 1.0f,
              row.data());
      StoreKvRow(row.data(), shape.head_dim, dst_dtype, scale, static_cast<uint8_t*>(dst) + r);
    }
  });
  return absl::OkStatus();
}

absl::Status DequantizeKvCpu(const void* src, DType src_dtype, const float* scales,
                             const KvPageShape& shape, DType dst_dtype, void* dst, int threads) {
  if (absl::Status s = ValidateDequantizeKv(src, src_dtype, scales, shape, dst_dtype, dst);
      !s.ok() || shape.num_pages == 0) {
    return s;
  }
  const uint64_t out_bytes = DTypeBytes(dst_dtype);
  ParallelFor(shape.Scales(), threads, [&](size_t index) {
    const HeadOfPage at = HeadAt(shape, index);
    std::vector<float> row(shape.head_dim);
    for (uint32_t t = 0; t < shape.tokens_per_page; ++t) {
      const uint64_t r = RowIndex(shape, at, t);
      LoadRow(static_cast<const uint8_t*>(src) + r, src_dtype, shape.head_dim, scales[index],
              row.data());
      StoreRow(row.data(), shape.head_dim, dst_dtype, static_cast<uint8_t*>(dst) + r * out_bytes);
    }
  });
  return absl::OkStatus();
}

}  // namespace kvtier::kernels
