#include "bench/attention_bench.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>
#include <thread>

#include "absl/strings/str_format.h"
#include "kernels/cuda_memory.h"
#include "kernels/numeric.h"
#include "kernels/paged_attention.h"

namespace kvtier::bench {
namespace {

constexpr uint32_t kQHeads = 32, kKvHeads = 8, kDim = 128, kPage = 16;

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// One shape's inputs on the host: pages of bf16 in [-1, 1], a shuffled page table.
struct Problem {
  kernels::KvPagePool pool;
  std::vector<uint16_t> pages;
  std::vector<uint32_t> indptr, indices, lens;
  std::vector<uint16_t> q, out;
  uint64_t kv_bytes = 0;

  kernels::DecodeAttentionArgs Args(const void* q_ptr, void* out_ptr) const {
    return {.q = q_ptr,
            .q_dtype = DType::kBf16,
            .out = out_ptr,
            .out_dtype = DType::kBf16,
            .num_seqs = static_cast<uint32_t>(lens.size()),
            .num_q_heads = kQHeads,
            .layer = 0,
            .softmax_scale = 0.088388f,
            .page_indptr = indptr.data(),
            .page_indices = indices.data(),
            .seq_lens = lens.data()};
  }
};

Problem MakeProblem(uint32_t batch, uint32_t context, std::mt19937& rng) {
  Problem p;
  const uint32_t pages_per_seq = (context + kPage - 1) / kPage;
  const uint32_t num_pages = batch * pages_per_seq;
  p.pool = {.num_pages = num_pages,
            .num_layers = 1,
            .tokens_per_page = kPage,
            .num_kv_heads = kKvHeads,
            .head_dim = kDim,
            .dtype = DType::kBf16};
  p.kv_bytes = p.pool.PageBytes() * num_pages;
  p.pages.resize(p.kv_bytes / 2);
  // A 64 Ki-value random pattern repeated: random enough for the arithmetic, cheap for 8 GB.
  std::vector<uint16_t> pattern(65536);
  for (uint16_t& v : pattern) {
    v = kernels::FloatToBf16(static_cast<float>(static_cast<int>(rng() % 2001) - 1000) / 1000.0f);
  }
  for (size_t i = 0; i < p.pages.size(); i += pattern.size()) {
    std::memcpy(&p.pages[i], pattern.data(),
                std::min(pattern.size(), p.pages.size() - i) * sizeof(uint16_t));
  }
  p.pool.pages = p.pages.data();
  p.indptr.resize(batch + 1);
  p.indices.resize(num_pages);
  p.lens.assign(batch, context);
  for (uint32_t s = 0; s <= batch; ++s) p.indptr[s] = s * pages_per_seq;
  for (uint32_t i = 0; i < num_pages; ++i) p.indices[i] = i;
  std::shuffle(p.indices.begin(), p.indices.end(), rng);
  p.q.assign(uint64_t{batch} * kQHeads * kDim, kernels::FloatToBf16(0.1f));
  p.out.resize(p.q.size());
  return p;
}

std::string Line(const char* device, int threads, uint32_t batch, uint32_t context,
                 const Problem& p, double attention_seconds, const char* reference,
                 double reference_gbs) {
  const double gbs = p.kv_bytes / attention_seconds / 1e9;
  return absl::StrFormat(
      "{\"bench\": \"attention\", \"device\": \"%s\", \"threads\": %d, \"batch\": %d, "
      "\"context\": %d, \"q_heads\": %d, \"kv_heads\": %d, \"head_dim\": %d, "
      "\"kv_dtype\": \"bf16\", \"page_tokens\": %d, \"kv_bytes\": %d, "
      "\"attention_seconds\": %.6f, \"attention_kv_gb_per_s\": %.3f, "
      "\"%s_gb_per_s\": %.3f, \"ratio_to_%s\": %.3f}",
      device, threads, batch, context, kQHeads, kKvHeads, kDim, kPage, p.kv_bytes,
      attention_seconds, gbs, reference, reference_gbs, reference, gbs / reference_gbs);
}

absl::StatusOr<std::string> RunCpu(const AttentionBenchOptions& o, uint32_t batch, uint32_t context,
                                   Problem& p) {
  const kernels::DecodeAttentionArgs args = p.Args(p.q.data(), p.out.data());
  double best_attention = 1e30, best_memcpy = 1e30;
  std::vector<uint8_t> copy(p.kv_bytes);
  for (int it = 0; it < std::max(1, o.iterations); ++it) {
    auto start = std::chrono::steady_clock::now();
    if (absl::Status s = kernels::PagedDecodeAttentionCpu(p.pool, args, {.threads = o.threads});
        !s.ok()) {
      return s;
    }
    best_attention = std::min(best_attention, Seconds(start));
    start = std::chrono::steady_clock::now();
    std::memcpy(copy.data(), p.pages.data(), p.kv_bytes);
    best_memcpy = std::min(best_memcpy, Seconds(start));
  }
  const int threads =
      o.threads > 0 ? o.threads : static_cast<int>(std::thread::hardware_concurrency());
  return Line("cpu", threads, batch, context, p, best_attention, "memcpy",
              p.kv_bytes / best_memcpy / 1e9);
}

absl::StatusOr<std::string> RunCuda(const AttentionBenchOptions& o, uint32_t batch,
                                    uint32_t context, const Problem& p) {
  using kernels::CudaBuffer;
  absl::StatusOr<CudaBuffer> pages = CudaBuffer::Allocate(p.kv_bytes);
  if (!pages.ok()) return pages.status();
  if (absl::Status s = kernels::CudaCopy(pages->data(), p.pages.data(), p.kv_bytes); !s.ok()) {
    return s;
  }
  absl::StatusOr<CudaBuffer> q = CudaBuffer::Allocate(p.q.size() * 2);
  absl::StatusOr<CudaBuffer> out = CudaBuffer::Allocate(p.out.size() * 2);
  if (!q.ok()) return q.status();
  if (!out.ok()) return out.status();
  if (absl::Status s = kernels::CudaCopy(q->data(), p.q.data(), q->size()); !s.ok()) return s;
  kernels::KvPagePool pool = p.pool;
  pool.pages = pages->data();
  const kernels::DecodeAttentionArgs args = p.Args(q->data(), out->data());
  const int iterations = std::max(1, o.iterations);
  absl::StatusOr<double> attention = kernels::CudaTimePerCall(
      nullptr, iterations, [&] { return kernels::PagedDecodeAttentionCuda(pool, args); });
  if (!attention.ok()) return attention.status();
  // The reference: the same bytes copied device to device (read + written).
  absl::StatusOr<CudaBuffer> copy = CudaBuffer::Allocate(p.kv_bytes);
  if (!copy.ok()) return copy.status();
  absl::StatusOr<double> copy_seconds = kernels::CudaTimePerCall(nullptr, iterations, [&] {
    return kernels::CudaCopyAsync(copy->data(), pages->data(), p.kv_bytes, nullptr);
  });
  if (!copy_seconds.ok()) return copy_seconds.status();
  return Line("cuda", 0, batch, context, p, *attention, "d2d_copy_traffic",
              2.0 * p.kv_bytes / *copy_seconds / 1e9);
}

}  // namespace

absl::StatusOr<std::vector<std::string>> RunAttentionBench(const AttentionBenchOptions& o) {
  std::vector<std::string> lines;
  std::mt19937 rng(1);
  for (uint32_t batch : o.batches) {
    for (uint32_t context : o.contexts) {
      Problem p = MakeProblem(batch, context, rng);
      absl::StatusOr<std::string> line = o.backend == kernels::Backend::kCuda
                                             ? RunCuda(o, batch, context, p)
                                             : RunCpu(o, batch, context, p);
      if (!line.ok()) return line.status();
      lines.push_back(*std::move(line));
    }
  }
  return lines;
}

}  // namespace kvtier::bench
