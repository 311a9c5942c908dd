// kvtier-bench ttft: time to first token for a prompt whose prefix (--prefixes tokens) is in
// the store, against the same prompt with everything recomputed, same model, same run.
//
// Per prefix length L: a worker engine with an empty pool runs prefix ‖ question A with the
// store empty (every token computed: the recompute time to first token), closes it (its full
// blocks are offloaded) and waits for the offload; a second engine, also with an empty pool,
// runs prefix ‖ question B: the prefix comes from the store, the question is computed (the
// restored time to first token). The store is a real kvtier-store server in this process on
// a loopback port (gRPC, checksums and all). Restore bandwidth (bytes restored / restore
// time) is reported against a memcpy of the same bytes, measured in the same run, and on
// the CUDA backend also against a pinned-host→device cudaMemcpy of them (the bound of the
// restore's last hop).
//
// --same_node makes the restore go through the same-node data plane: the store copies the
// blocks into the worker's shared-memory pages (or staging) instead of sending them.
//
// --backend=cuda runs the worker's GPU path: device pages, the CUDA decoder (bf16 GEMMs),
// restores through pinned staging and asynchronous copies. Its recompute baseline runs
// prefill attention through the paged decode kernel, one query row at a time (no
// FlashAttention-style prefill kernel here), so it is slower than a production prefill;
// the docs say so next to every GPU figure.
#ifndef KVTIER_BENCH_TTFT_BENCH_H_
#define KVTIER_BENCH_TTFT_BENCH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/backend.h"

namespace kvtier::bench {

struct TtftBenchOptions {
  std::vector<uint32_t> prefixes = {1024, 8192};
  uint32_t question_tokens = 16;
  std::string model = "tiny";  // tiny or llama-3-8b
  int threads = 0;
  kernels::Backend backend = kernels::Backend::kCpu;
  bool same_node = false;  // the restore through the same-node data plane
};

// One JSON object per prefix length, one per line.
absl::StatusOr<std::vector<std::string>> RunTtftBench(const TtftBenchOptions& o);

}  // namespace kvtier::bench

#endif  // KVTIER_BENCH_TTFT_BENCH_H_
