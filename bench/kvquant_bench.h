// kvtier-bench kvquant: what compressing K/V costs in quality and saves in bytes.
//
// The worker's reference decoder with the same (seeded) weights runs `prompts` prompts of
// `prompt_tokens` random tokens and then `generate` greedy tokens, once per kv_dtype (bf16,
// the reference, then fp8_e4m3 and int8: pages and blocks in the compressed format with
// calibrated per-layer, per-head scales, worker/kv_calibration.h). Per compressed dtype it
// reports against bf16: the largest and the mean |logit difference| after the prompt; the
// share of first generated tokens equal to bf16's; teacher-forced agreement (bf16's
// generation fed token by token, each greedy choice compared with bf16's next token: no
// divergence compounds); free-running, the share of generated tokens equal to bf16's at the
// same position, and the share of generations equal in full; and per dtype the block size, the blocks a GiB holds (payload
// alone, and in a 1 GiB store's size classes of slabs) and the bytes a restore of the
// prompt moves.
#ifndef KVTIER_BENCH_KVQUANT_BENCH_H_
#define KVTIER_BENCH_KVQUANT_BENCH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kvtier::bench {

struct KvQuantBenchOptions {
  uint32_t prompts = 300;
  uint32_t prompt_tokens = 64;
  uint32_t generate = 64;
  std::string model = "small";  // tiny (2 layers, hidden 128) or small (4 layers, hidden 512)
  uint64_t seed = 1;
  int threads = 0;
};

// One JSON line per kv_dtype.
absl::StatusOr<std::vector<std::string>> RunKvQuantBench(const KvQuantBenchOptions& options);

}  // namespace kvtier::bench

#endif  // KVTIER_BENCH_KVQUANT_BENCH_H_
