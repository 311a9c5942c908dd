#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu_parallel.h"
#include "kernels/element_io.h"
#include "kernels/paged_attention.h"

namespace kvtier::kernels {

namespace {

// Softmax state of one query head over a range of tokens: running max, denominator and
// the unnormalised weighted sum of V.
struct Partial {
  float max = -std::numeric_limits<float>::infinity();
  float sum = 0;
  std::vector<float> acc;
};

// Eight independent partial sums, so the compiler can vectorise without reassociating a
// single floating-point reduction. REQUIRES: n % 8 == 0 (head dims are 64, 128, 256).
inline float Dot(const float* a, const float* b, uint32_t n) {
  float lanes[8] = {};
  for (uint32_t d = 0; d < n; d += 8) {
    for (int l = 0; l < 8; ++l) lanes[l] += a[d + l] * b[d + l];
  }
  return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
         ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

void MergeInto(Partial& into, const Partial& from) {
  if (from.sum == 0) return;
  if (into.sum == 0) {
    into = from;
    return;
  }
  const float m = std::max(into.max, from.max);
  const float a = std::exp(into.max - m);
  const float b = std::exp(from.max - m);
  for (size_t d = 0; d < into.acc.size(); ++d) into.acc[d] = into.acc[d] * a + from.acc[d] * b;
  into.sum = into.sum * a + from.sum * b;
  into.max = m;
}

}  // namespace

absl::Status PagedDecodeAttentionCpu(const KvPagePool& pool, const DecodeAttentionArgs& args,
                                     const CpuOptions& options) {
  if (absl::Status s = ValidateDecodeAttention(pool, args); !s.ok()) return s;
  if (args.num_seqs == 0) return absl::OkStatus();
  const uint32_t dim = pool.head_dim;
  const uint32_t kv_heads = pool.num_kv_heads;
  const uint32_t group = args.num_q_heads / kv_heads;
  const uint32_t split = std::max<uint32_t>(options.split_tokens, pool.tokens_per_page);
  const auto* pages = static_cast<const uint8_t*>(pool.pages);
  const uint64_t elem = DTypeBytes(pool.dtype);
  const uint64_t head_bytes = uint64_t{dim} * elem;
  const uint64_t act = DTypeBytes(args.q_dtype);

  // Work items: (sequence, KV head, chunk of at most `split` tokens).
  struct Item {
    uint32_t seq, kv_head, first, last;
  };
  std::vector<Item> items;
  std::vector<size_t> first_item(uint64_t{args.num_seqs} * kv_heads + 1, 0);
  for (uint32_t s = 0; s < args.num_seqs; ++s) {
    for (uint32_t g = 0; g < kv_heads; ++g) {
      first_item[s * kv_heads + g] = items.size();
      for (uint32_t t = 0; t < args.seq_lens[s]; t += split) {
        items.push_back({s, g, t, std::min(args.seq_lens[s], t + split)});
      }
    }
  }
  first_item[uint64_t{args.num_seqs} * kv_heads] = items.size();
  std::vector<std::vector<Partial>> partials(items.size());

  ParallelFor(items.size(), options.threads, [&](size_t i) {
    const Item& it = items[i];
    // The group's queries, scaled once.
    std::vector<float> q(uint64_t{group} * dim);
    for (uint32_t j = 0; j < group; ++j) {
      const uint32_t h = it.kv_head * group + j;
      const auto* src = static_cast<const uint8_t*>(args.q) +
                        (uint64_t{it.seq} * args.num_q_heads + h) * dim * act;
      LoadRow(src, args.q_dtype, dim, args.softmax_scale, &q[uint64_t{j} * dim]);
    }
    std::vector<Partial>& out = partials[i];
    out.assign(group, Partial{});
    for (Partial& p : out) p.acc.assign(dim, 0.0f);
    std::vector<float> k(dim), v(dim);
    const uint32_t* table = args.page_indices + args.page_indptr[it.seq];
    for (uint32_t t = it.first; t < it.last; ++t) {
      const uint32_t page = table[t / pool.tokens_per_page];
      const uint32_t slot = t % pool.tokens_per_page;
      const uint8_t* layer = pages + page * pool.PageBytes() + args.layer * pool.LayerBytes();
      const uint64_t row = uint64_t{slot} * pool.RowBytes() + it.kv_head * head_bytes;
      float k_scale = 1.0f, v_scale = 1.0f;
      if (pool.InlineScales()) {
        std::memcpy(&k_scale, layer + pool.ScaleOffset() + it.kv_head * sizeof(float),
                    sizeof(float));
        std::memcpy(&v_scale, layer + pool.ScaleOffset() + (kv_heads + it.kv_head) * sizeof(float),
                    sizeof(float));
      } else if (pool.scales != nullptr && IsQuantized(pool.dtype)) {
        const uint64_t base = (uint64_t{page} * pool.num_layers + args.layer) * 2 * kv_heads;
        k_scale = pool.scales[base + it.kv_head];
        v_scale = pool.scales[base + kv_heads + it.kv_head];
      }
      // One load of K and V serves every query head of the group.
      LoadRow(layer + row, pool.dtype, dim, k_scale, k.data());
      LoadRow(layer + pool.tokens_per_page * pool.RowBytes() + row, pool.dtype, dim, v_scale,
              v.data());
      for (uint32_t j = 0; j < group; ++j) {
        const float score = Dot(&q[uint64_t{j} * dim], k.data(), dim);
        Partial& p = out[j];
        if (score > p.max) {
          const float correction = std::exp(p.max - score);  // exp(-inf) = 0 at the start
          for (float& a : p.acc) a *= correction;
          p.sum *= correction;
          p.max = score;
        }
        const float w = std::exp(score - p.max);
        p.sum += w;
        for (uint32_t d = 0; d < dim; ++d) p.acc[d] += w * v[d];
      }
    }
  });

  // Merge the chunks of each (sequence, KV head) with their log-sum-exp, then normalise.
  ParallelFor(uint64_t{args.num_seqs} * kv_heads, options.threads, [&](size_t sg) {
    const uint32_t s = static_cast<uint32_t>(sg / kv_heads);
    const uint32_t g = static_cast<uint32_t>(sg % kv_heads);
    std::vector<Partial> merged(group);
    for (Partial& p : merged) p.acc.assign(dim, 0.0f);
    for (size_t i = first_item[sg]; i < first_item[sg + 1]; ++i) {
      for (uint32_t j = 0; j < group; ++j) MergeInto(merged[j], partials[i][j]);
    }
    std::vector<float> row(dim);
    for (uint32_t j = 0; j < group; ++j) {
      const uint32_t h = g * group + j;
      const Partial& p = merged[j];
      for (uint32_t d = 0; d < dim; ++d) row[d] = p.sum > 0 ? p.acc[d] / p.sum : 0.0f;
      auto* dst = static_cast<uint8_t*>(args.out) +
                  (uint64_t{s} * args.num_q_heads + h) * dim * DTypeBytes(args.out_dtype);
      StoreRow(row.data(), dim, args.out_dtype, dst);
      if (args.lse != nullptr) {
        args.lse[uint64_t{s} * args.num_q_heads + h] =
            p.sum > 0 ? p.max + std::log(p.sum) : -std::numeric_limits<float>::infinity();
      }
    }
  });
  return absl::OkStatus();
}

}  // namespace kvtier::kernels
