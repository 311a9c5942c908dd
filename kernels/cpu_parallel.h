// ParallelFor: runs fn(i) for i in [0, n) on up to `threads` threads (0: hardware
// concurrency), the calling thread included. Work is handed out in runs of consecutive
// indices, about 16 runs per thread, so that many small items (4 KiB copies) do not pay a
// contended atomic each, while a few large ones (attention work items) still balance.
#ifndef KVTIER_KERNELS_CPU_PARALLEL_H_
#define KVTIER_KERNELS_CPU_PARALLEL_H_

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <thread>
#include <vector>

namespace kvtier::kernels {

template <typename Fn>
void ParallelFor(size_t n, int threads, Fn&& fn) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const size_t workers = std::min<size_t>(static_cast<size_t>(threads), n);
  if (workers <= 1) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  const size_t grain = std::max<size_t>(1, n / (workers * 16));
  std::atomic<size_t> next{0};
  auto run = [&] {
    for (size_t first = next.fetch_add(grain); first < n; first = next.fetch_add(grain)) {
      const size_t last = std::min(n, first + grain);
      for (size_t i = first; i < last; ++i) fn(i);
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(workers - 1);
  for (size_t t = 1; t < workers; ++t) pool.emplace_back(run);
  run();
  for (std::thread& t : pool) t.join();
}

}  // namespace kvtier::kernels

#endif  // KVTIER_KERNELS_CPU_PARALLEL_H_
