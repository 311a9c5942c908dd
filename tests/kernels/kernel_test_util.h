// Test helpers for the kernels: random K/V written into pages in any dtype, and the
// textbook attention softmax(q·Kᵀ·scale)·V computed in double from the same values.
#ifndef KVTIER_TESTS_KERNELS_KERNEL_TEST_UTIL_H_
#define KVTIER_TESTS_KERNELS_KERNEL_TEST_UTIL_H_

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/element_io.h"
#include "kernels/kv_quantize.h"
#include "kernels/paged_attention.h"

namespace kvtier::kernels::testing {

// Bytes of n values of dtype holding `values` (rounded to the dtype).
inline std::vector<uint8_t> Encode(const std::vector<float>& values, DType dtype) {
  std::vector<uint8_t> out(values.size() * DTypeBytes(dtype));
  StoreRow(values.data(), static_cast<uint32_t>(values.size()), dtype, out.data());
  return out;
}
inline std::vector<float> Decode(const std::vector<uint8_t>& bytes, DType dtype, size_t n) {
  std::vector<float> out(n);
  LoadRow(bytes.data(), dtype, static_cast<uint32_t>(n), 1.0f, out.data());
  return out;
}

// A batch: sequences with their lengths, a shuffled page table, pages filled with random
// K/V (unused page slots hold garbage that must not matter), and q.
struct Batch {
  KvPagePool pool;
  std::vector<uint8_t> pages;
  std::vector<float> scales;
  std::vector<uint32_t> indptr, indices, lens;
  std::vector<float> page_values;  // the K/V as the kernels will see them (after rounding)
  std::vector<float> q_values;     // rounded to q dtype
  std::vector<uint8_t> q;
  DType q_dtype = DType::kFp32;
  uint32_t num_q_heads = 0;
};

inline Batch MakeBatch(std::vector<uint32_t> lens, uint32_t num_q_heads, uint32_t num_kv_heads,
                       uint32_t head_dim, uint32_t tokens_per_page, DType kv_dtype, DType q_dtype,
                       uint32_t num_layers, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Batch b;
  b.lens = std::move(lens);
  b.num_q_heads = num_q_heads;
  uint32_t total_pages = 0;
  b.indptr.push_back(0);
  for (uint32_t len : b.lens) {
    total_pages += (len + tokens_per_page - 1) / tokens_per_page;
    b.indptr.push_back(total_pages);
  }
  const uint32_t spare = 3;  // pages nobody uses
  const uint32_t num_pages = total_pages + spare;
  std::vector<uint32_t> order(num_pages);
  for (uint32_t i = 0; i < num_pages; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  b.indices.assign(order.begin(), order.begin() + total_pages);

  KvPageShape shape{.num_pages = num_pages,
                    .num_layers = num_layers,
                    .tokens_per_page = tokens_per_page,
                    .num_kv_heads = num_kv_heads,
                    .head_dim = head_dim};
  std::vector<float> raw(shape.Elements());
  for (float& x : raw) x = normal(rng);
  if (IsQuantized(kv_dtype)) {
    const std::vector<uint8_t> f32 = Encode(raw, DType::kFp32);
    b.pages.resize(shape.Elements());
    b.scales.resize(shape.Scales());
    (void)QuantizeKvCpu(f32.data(), DType::kFp32, shape, kv_dtype, b.pages.data(), b.scales.data());
    std::vector<uint8_t> back(shape.Elements() * 4);
    (void)DequantizeKvCpu(b.pages.data(), kv_dtype, b.scales.data(), shape, DType::kFp32,
                          back.data());
    b.page_values = Decode(back, DType::kFp32, raw.size());
  } else {
    b.pages = Encode(raw, kv_dtype);
    b.page_values = Decode(b.pages, kv_dtype, raw.size());
  }
  std::vector<float> q(uint64_t{b.lens.size()} * num_q_heads * head_dim);
  for (float& x : q) x = normal(rng);
  b.q = Encode(q, q_dtype);
  b.q_dtype = q_dtype;
  b.q_values = Decode(b.q, q_dtype, q.size());
  b.pool = KvPagePool{.pages = b.pages.data(),
                      .num_pages = num_pages,
                      .num_layers = num_layers,
                      .tokens_per_page = tokens_per_page,
                      .num_kv_heads = num_kv_heads,
                      .head_dim = head_dim,
                      .dtype = kv_dtype,
                      .scales = b.scales.empty() ? nullptr : b.scales.data()};
  return b;
}

// Textbook attention for one (sequence, query head) over the logical K/V, in double.
// Returns the output row and the log-sum-exp.
inline std::pair<std::vector<double>, double> Reference(const Batch& b, uint32_t seq, uint32_t head,
                                                        uint32_t layer, double scale) {
  const KvPagePool& p = b.pool;
  const uint32_t dim = p.head_dim;
  const uint32_t kv_head = head / (b.num_q_heads / p.num_kv_heads);
  auto value = [&](uint32_t token, uint32_t kv, uint32_t d) {
    const uint32_t page = b.indices[b.indptr[seq] + token / p.tokens_per_page];
    const uint32_t slot = token % p.tokens_per_page;
    const uint64_t index =
        ((((uint64_t{page} * p.num_layers + layer) * 2 + kv) * p.tokens_per_page + slot) *
             p.num_kv_heads +
         kv_head) *
            dim +
        d;
    return static_cast<double>(b.page_values[index]);
  };
  const float* q = &b.q_values[(uint64_t{seq} * b.num_q_heads + head) * dim];
  const uint32_t n = b.lens[seq];
  std::vector<double> scores(n);
  double max = -INFINITY;
  for (uint32_t t = 0; t < n; ++t) {
    double s = 0;
    for (uint32_t d = 0; d < dim; ++d) s += q[d] * value(t, 0, d);
    scores[t] = s * scale;
    max = std::max(max, scores[t]);
  }
  double sum = 0;
  for (double& s : scores) {
    s = std::exp(s - max);
    sum += s;
  }
  std::vector<double> out(dim, 0.0);
  for (uint32_t t = 0; t < n; ++t) {
    for (uint32_t d = 0; d < dim; ++d) out[d] += scores[t] / sum * value(t, 1, d);
  }
  return {out, n == 0 ? -INFINITY : max + std::log(sum)};
}

}  // namespace kvtier::kernels::testing

#endif  // KVTIER_TESTS_KERNELS_KERNEL_TEST_UTIL_H_
