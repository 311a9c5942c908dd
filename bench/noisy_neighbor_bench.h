// kvtier-bench noisy: one tenant's hit rate while another floods the store. Tenant "b"
// replays a trace; tenant "a" runs a scan: before each of b's requests, --scan_requests
// prompts of --scan_blocks blocks never seen before (far more than the store holds over a
// run). Three runs on the in-process engine (bench/replay.h):
//   alone          b by itself in a store of exactly its guarantee G (the reference);
//   with_quota     a and b in a store of --store_multiple x G, b guaranteed G (t1_guarantee);
//   without_quota  the same store and traffic without quotas.
// G = --guarantee_fraction of the trace's unique blocks. The quota holds when b's hit rate
// with_quota is at least (about) its hit rate alone.
// With a neighbour trace (--neighbour_trace), tenant a is a real workload instead of a
// scan: before each of b's requests it replays the next --scan_requests requests of that
// trace (and stops when the trace ends), so the two tenants' blocks compete on their
// merits; a's hit rate is reported beside b's.
#ifndef KVTIER_BENCH_NOISY_NEIGHBOR_BENCH_H_
#define KVTIER_BENCH_NOISY_NEIGHBOR_BENCH_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/trace.h"

namespace kvtier::bench {

struct NoisyNeighborOptions {
  double guarantee_fraction = 0.05;
  double store_multiple = 4;
  uint32_t scan_requests = 4;
  uint32_t scan_blocks = 32;
  std::string policy = "adaptive";
  size_t limit = 0;  // b's requests (0: the whole trace)
  // b's limit equals its guarantee (t1_limit = t1_guarantee): b is a cache of exactly G
  // inside the shared store, and makes room only among its own blocks.
  bool limit_at_guarantee = false;
  // Tenant a's workload instead of the scan (empty: the scan).
  std::vector<TraceRequest> neighbour;
};

struct NoisyNeighborResult {
  std::vector<std::string> lines;  // one JSON line per run, then a summary line
  double alone = 0;
  double with_quota = 0;
  double without_quota = 0;
};

absl::StatusOr<NoisyNeighborResult> RunNoisyNeighborBench(const std::vector<TraceRequest>& trace,
                                                          const std::string& trace_name,
                                                          const NoisyNeighborOptions& o);

}  // namespace kvtier::bench

#endif  // KVTIER_BENCH_NOISY_NEIGHBOR_BENCH_H_
