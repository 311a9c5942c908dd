// kvtier-bench attention: paged decode attention throughput as K/V bytes read per second,
// against a plain copy measured in the same run: memcpy on the CPU path, a device-to-device
// cudaMemcpy on the GPU (the practical HBM limit; its bandwidth counts the bytes read and
// the bytes written, since a copy moves both). Llama-3-8B decode shape: 32 query heads,
// 8 KV heads, head_dim 128, bf16, 16-token pages, one layer.
#ifndef KVTIER_BENCH_ATTENTION_BENCH_H_
#define KVTIER_BENCH_ATTENTION_BENCH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/backend.h"

namespace kvtier::bench {

struct AttentionBenchOptions {
  kernels::Backend backend = kernels::Backend::kCpu;
  std::vector<uint32_t> batches = {1, 16};
  std::vector<uint32_t> contexts = {1024, 4096};
  int threads = 0;     // CPU threads (0: all cores)
  int iterations = 3;  // CPU: best of; GPU: mean over this many timed launches (after one)
};

// One JSON object per (batch, context), one per line.
absl::StatusOr<std::vector<std::string>> RunAttentionBench(const AttentionBenchOptions& o);

}  // namespace kvtier::bench

#endif  // KVTIER_BENCH_ATTENTION_BENCH_H_
