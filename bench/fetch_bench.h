// kvtier-bench fetch: the restore's first hop on its own. A kvtier-store in this process
// (bench/local_store.h) holds --blocks blocks of the Llama-3-8B layout (32 layers, 8 KV
// heads, head_dim 128, bf16, --tokens_per_block tokens: 16 gives 2 MiB blocks of 64 KiB
// layers); the client Fetches all of them over loopback gRPC, in layer-major (as a restore does) or
// block-major order, into one host buffer, verifying every chunk and block checksum as a
// worker does. With --same_node the store copies the blocks into an attached
// SharedMemoryRegion of the client instead (the same-node data plane), verified the same way.
// Bandwidth = bytes / Fetch time, best of --iterations, against a memcpy of the same bytes in the
// same run.
#ifndef KVTIER_BENCH_FETCH_BENCH_H_
#define KVTIER_BENCH_FETCH_BENCH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kvtier::bench {

struct FetchBenchOptions {
  uint32_t blocks = 256;
  uint32_t tokens_per_block = 16;
  bool layer_major = true;
  bool same_node = false;  // false: over the socket
  int iterations = 3;
};

// One JSON object.
absl::StatusOr<std::string> RunFetchBench(const FetchBenchOptions& o);

}  // namespace kvtier::bench

#endif  // KVTIER_BENCH_FETCH_BENCH_H_
