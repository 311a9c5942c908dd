#include "bench/attention_bench.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>
#include <thread>

#include "absl/strings/str_format.h"
#include "kernels/numeric.h"
#include "kernels/paged_attention.h"

namespace kvtier::bench {
namespace {

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

absl::StatusOr<std::vector<std::string>> RunAttentionBench(const AttentionBenchOptions& o) {
  constexpr uint32_t kQHeads = 32, kKvHeads = 8, kDim = 128, kPage = 16;
  std::vector<std::string> lines;
  std::mt19937 rng(1);
  for (uint32_t batch : o.batches) {
    for (uint32_t context : o.contexts) {
      const uint32_t pages_per_seq = (context + kPage - 1) / kPage;
      const uint32_t num_pages = batch * pages_per_seq;
      kernels::KvPagePool pool{.num_pages = num_pages,
                               .num_layers = 1,
                               .tokens_per_page = kPage,
                               .num_kv_heads = kKvHeads,
                               .head_dim = kDim,
                               .dtype = DType::kBf16};
      const uint64_t kv_bytes = pool.PageBytes() * num_pages;
      std::vector<uint16_t> pages(kv_bytes / 2);
      for (size_t i = 0; i < pages.size(); ++i) {
        pages[i] = kernels::FloatToBf16(static_cast<float>(static_cast<int>(rng() % 2001) - 1000) /
                                        1000.0f);
      }
      pool.pages = pages.data();
      std::vector<uint32_t> indptr(batch + 1), indices(num_pages), lens(batch, context);
      for (uint32_t s = 0; s <= batch; ++s) indptr[s] = s * pages_per_seq;
      for (uint32_t i = 0; i < num_pages; ++i) indices[i] = i;
      std::shuffle(indices.begin(), indices.end(), rng);
      std::vector<uint16_t> q(uint64_t{batch} * kQHeads * kDim, kernels::FloatToBf16(0.1f));
      std::vector<uint16_t> out(q.size());
      kernels::DecodeAttentionArgs args{.q = q.data(),
                                        .q_dtype = DType::kBf16,
                                        .out = out.data(),
                                        .out_dtype = DType::kBf16,
                                        .num_seqs = batch,
                                        .num_q_heads = kQHeads,
                                        .layer = 0,
                                        .softmax_scale = 0.088388f,
                                        .page_indptr = indptr.data(),
                                        .page_indices = indices.data(),
                                        .seq_lens = lens.data()};
      double best_attention = 1e30, best_memcpy = 1e30;
      std::vector<uint8_t> copy(kv_bytes);
      for (int it = 0; it < std::max(1, o.iterations); ++it) {
        auto start = std::chrono::steady_clock::now();
        if (absl::Status s = kernels::PagedDecodeAttentionCpu(pool, args, {.threads = o.threads});
            !s.ok()) {
          return s;
        }
        best_attention = std::min(best_attention, Seconds(start));
        start = std::chrono::steady_clock::now();
        std::memcpy(copy.data(), pages.data(), kv_bytes);
        best_memcpy = std::min(best_memcpy, Seconds(start));
      }
      const double attention_gbs = kv_bytes / best_attention / 1e9;
      const double memcpy_gbs = kv_bytes / best_memcpy / 1e9;
      lines.push_back(absl::StrFormat(
          "{\"bench\": \"attention\", \"device\": \"cpu\", \"threads\": %d, \"batch\": %d, "
          "\"context\": %d, \"q_heads\": %d, \"kv_heads\": %d, \"head_dim\": %d, "
          "\"kv_dtype\": \"bf16\", \"page_tokens\": %d, \"kv_bytes\": %d, "
          "\"attention_seconds\": %.6f, \"attention_kv_gb_per_s\": %.3f, "
          "\"memcpy_gb_per_s\": %.3f, \"ratio_to_memcpy\": %.3f}",
          o.threads > 0 ? o.threads : static_cast<int>(std::thread::hardware_concurrency()), batch,
          context, kQHeads, kKvHeads, kDim, kPage, kv_bytes, best_attention, attention_gbs,
          memcpy_gbs, attention_gbs / memcpy_gbs));
    }
  }
  return lines;
}

}  // namespace kvtier::bench
