// kvtier-bench cluster: the hit rate of one cache spread over N shards against N isolated
// caches. Replays a Mooncake-format trace (grpc mode, real kvtier-store processes next to
// this program) three ways, all with the same total T1 capacity C (capacity_fraction of the
// trace's unique blocks):
//   - one store of capacity C (N = 1);
//   - N shards of C/N as one cache (ShardedClient, replication R);
//   - N isolated stores of C/N, requests spread round-robin (each node's local cache).
// Reports per N and setup the hit rate (and its ratio to the one store's), requests/s and
// the Lookup round trip p50/p99.
#ifndef KVTIER_BENCH_CLUSTER_BENCH_H_
#define KVTIER_BENCH_CLUSTER_BENCH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kvtier::bench {

struct ClusterBenchOptions {
  std::string trace;
  std::vector<uint32_t> shards = {1, 2, 4};
  double capacity_fraction = 0.1;
  uint32_t replication = 1;
  uint64_t limit_requests = 0;      // 0: the whole trace
  std::string store_binary;         // empty: the kvtier-store next to this program
  std::string policy = "adaptive";  // the stores' T1 eviction policy
  uint32_t placement_span = 128;    // ShardedClientOptions::placement_span
};

// One JSON object per (N, setup).
absl::StatusOr<std::vector<std::string>> RunClusterBench(const ClusterBenchOptions& o);

}  // namespace kvtier::bench

#endif  // KVTIER_BENCH_CLUSTER_BENCH_H_
