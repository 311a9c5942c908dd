#include "bench/copy_bench.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <numeric>
#include <random>
#include <span>
#include <thread>

#include "absl/strings/str_format.h"
#include "cache_store/kv_layout.h"
#include "kernels/cuda_memory.h"
#include "kernels/page_copy.h"

namespace kvtier::bench {
namespace {

struct Layout {
  uint64_t page_bytes = 0;
  uint64_t total = 0;
  std::vector<kernels::CopyFragment> fragments;  // in staging order
};

absl::StatusOr<Layout> MakeLayout(const CopyBenchOptions& o) {
  Layout l;
  l.page_bytes = Llama3_8BLayout().BlockBytes();
  if (o.pages == 0) return absl::InvalidArgumentError("--pages must be positive");
  if (o.fragment_bytes == 0 || l.page_bytes % o.fragment_bytes != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--fragment_bytes must divide the %d-byte page (got %d)", l.page_bytes, o.fragment_bytes));
  }
  std::vector<uint32_t> order(o.pages);
  std::iota(order.begin(), order.end(), 0u);
  std::mt19937 rng(3);
  std::shuffle(order.begin(), order.end(), rng);
  for (uint32_t page : order) {
    for (uint64_t at = 0; at < l.page_bytes; at += o.fragment_bytes) {
      l.fragments.push_back({page, at, o.fragment_bytes});
    }
  }
  l.total = l.page_bytes * o.pages;
  return l;
}

std::string Line(const char* device, const char* method, const CopyBenchOptions& o, const Layout& l,
                 double seconds, const char* reference, double reference_s) {
  return absl::StrFormat(
      "{\"bench\": \"copy\", \"device\": \"%s\", \"method\": \"%s\", \"pages\": %d, "
      "\"fragment_bytes\": %d, \"fragments\": %d, \"bytes\": %d, \"seconds\": %.6f, "
      "\"gb_per_s\": %.3f, \"%s_gb_per_s\": %.3f, \"ratio_to_%s\": %.3f}",
      device, method, o.pages, o.fragment_bytes, l.fragments.size(), l.total, seconds,
      l.total / seconds / 1e9, reference, l.total / reference_s / 1e9, reference,
      reference_s / seconds);
}

template <typename Fn>
absl::StatusOr<double> BestOf(int iterations, Fn&& fn) {
  double best = 1e30;
  for (int i = 0; i < std::max(1, iterations); ++i) {
    const auto start = std::chrono::steady_clock::now();
    if (absl::Status s = fn(); !s.ok()) return s;
    best = std::min(
        best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

absl::StatusOr<std::vector<std::string>> RunCpu(const CopyBenchOptions& o, const Layout& l) {
  std::vector<uint8_t> staging(l.total, 0x5A), pages(l.total), copy(l.total);
  const kernels::PagePoolBytes pool{pages.data(), l.page_bytes, o.pages};
  absl::StatusOr<double> reference = BestOf(o.iterations, [&] {
    std::memcpy(copy.data(), staging.data(), l.total);
    return absl::OkStatus();
  });
  absl::StatusOr<double> scatter = BestOf(o.iterations, [&] {
    return kernels::ScatterPagesCpu(staging.data(), l.total, l.fragments, pool, o.threads);
  });
  absl::StatusOr<double> gather = BestOf(o.iterations, [&] {
    return kernels::GatherPagesCpu(pool, l.fragments, copy.data(), l.total, o.threads);
  });
  for (const auto* r : {&reference, &scatter, &gather}) {
    if (!r->ok()) return r->status();
  }
  return std::vector<std::string>{Line("cpu", "scatter", o, l, *scatter, "memcpy", *reference),
                                  Line("cpu", "gather", o, l, *gather, "memcpy", *reference)};
}

absl::StatusOr<std::vector<std::string>> RunCuda(const CopyBenchOptions& o, const Layout& l) {
  using kernels::CudaBuffer;
  absl::StatusOr<CudaBuffer> staging = CudaBuffer::Allocate(l.total, CudaBuffer::Kind::kPinnedHost);
  absl::StatusOr<CudaBuffer> pages = CudaBuffer::Allocate(l.total);
  if (!staging.ok()) return staging.status();
  if (!pages.ok()) return pages.status();
  std::memset(staging->data(), 0x5A, l.total);
  const kernels::PagePoolBytes pool{pages->data(), l.page_bytes, o.pages};
  const int n = std::max(1, o.iterations);
  absl::StatusOr<double> reference = kernels::CudaTimePerCall(nullptr, n, [&] {
    return kernels::CudaCopyAsync(pages->data(), staging->data(), l.total, nullptr);
  });
  absl::StatusOr<double> scatter = kernels::CudaTimePerCall(nullptr, n, [&] {
    return kernels::ScatterPagesCuda(staging->data(), l.total, l.fragments, pool);
  });
  absl::StatusOr<double> per_fragment = kernels::CudaTimePerCall(nullptr, n, [&] {
    uint64_t at = 0;
    for (const kernels::CopyFragment& f : l.fragments) {
      auto* dst = static_cast<uint8_t*>(pages->data()) + f.page * l.page_bytes + f.offset;
      if (absl::Status s = kernels::CudaCopyAsync(dst, static_cast<uint8_t*>(staging->data()) + at,
                                                  f.length, nullptr);
          !s.ok()) {
        return s;
      }
      at += f.length;
    }
    return absl::OkStatus();
  });
  absl::StatusOr<double> gather = kernels::CudaTimePerCall(nullptr, n, [&] {
    return kernels::GatherPagesCuda(pool, l.fragments, staging->data(), l.total);
  });
  for (const auto* r : {&reference, &scatter, &per_fragment, &gather}) {
    if (!r->ok()) return r->status();
  }
  return std::vector<std::string>{
      Line("cuda", "scatter_kernel_from_pinned", o, l, *scatter, "pinned_memcpy", *reference),
      Line("cuda", "memcpy_per_fragment", o, l, *per_fragment, "pinned_memcpy", *reference),
      Line("cuda", "gather_kernel_to_pinned", o, l, *gather, "pinned_memcpy", *reference)};
}

}  // namespace

absl::StatusOr<std::vector<std::string>> RunCopyBench(const CopyBenchOptions& o) {
  absl::StatusOr<Layout> layout = MakeLayout(o);
  if (!layout.ok()) return layout.status();
  return o.backend == kernels::Backend::kCuda ? RunCuda(o, *layout) : RunCpu(o, *layout);
}

}  // namespace kvtier::bench
