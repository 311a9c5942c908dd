// kvtier-bench copy: the restore copy, contiguous staging → scattered pages, as a worker
// does it after a Fetch (and the reverse gather of an offload). Pages are Llama-3-8B blocks
// (32 layers × 64 KiB of K and V, 2 MiB); the staging buffer holds them back to back and
// each page is placed at a shuffled pool position, in fragments of --fragment_bytes.
//
// CPU path: ScatterPagesCpu / GatherPagesCpu against one memcpy of the same bytes.
// GPU path: the scatter kernel reading mapped pinned staging, and one cudaMemcpyAsync per
// fragment, both against one plain pinned cudaMemcpy of the same bytes (the restore
// target: ≥ 85% of it); and the gather kernel into pinned memory (offload).
#ifndef KVTIER_BENCH_COPY_BENCH_H_
#define KVTIER_BENCH_COPY_BENCH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/backend.h"

namespace kvtier::bench {

struct CopyBenchOptions {
  kernels::Backend backend = kernels::Backend::kCpu;
  uint32_t pages = 128;                 // 2 MiB each
  uint64_t fragment_bytes = 64 * 1024;  // one layer of one page; must divide 2 MiB
  int threads = 0;
  int iterations = 5;
};

// One JSON object per method, one per line.
absl::StatusOr<std::vector<std::string>> RunCopyBench(const CopyBenchOptions& o);

}  // namespace kvtier::bench

#endif  // KVTIER_BENCH_COPY_BENCH_H_
