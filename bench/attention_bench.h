// kvtier-bench attention: paged decode attention throughput as K/V bytes read per second,
// against memcpy of the same number of bytes measured in the same run (the practical
// memory-bandwidth limit of the CPU path). Llama-3-8B decode shape: 32 query heads, 8 KV
// heads, head_dim 128, bf16, 16-token pages.
#ifndef KVTIER_BENCH_ATTENTION_BENCH_H_
#define KVTIER_BENCH_ATTENTION_BENCH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kvtier::bench {

struct AttentionBenchOptions {
  std::vector<uint32_t> batches = {1, 16};
  std::vector<uint32_t> contexts = {1024, 4096};
  int threads = 0;
  int iterations = 3;  // best of
};

// One JSON object per (batch, context), one per line.
absl::StatusOr<std::vector<std::string>> RunAttentionBench(const AttentionBenchOptions& o);

}  // namespace kvtier::bench

#endif  // KVTIER_BENCH_ATTENTION_BENCH_H_
