// kvtier-bench soak: a real kvtier-store (T1 and T2, per-tenant limits) under --clients
// clients for --seconds. Each client acts for one of four tenants and loops over prompts
// drawn from a shared, skewed pool (so prefixes are shared and evicted): Lookup with a
// lease, Fetch of what matched, Release, Put of the rest; now and then it Puts a prompt of
// its own and Deletes it (skipping blocks evicted meanwhile). One watcher per eight clients
// keeps a WatchEvents stream open, reopening it when it ends. A sampler reads the store's
// RSS, open fds and threads from /proc every second.
//
// Reports (JSON lines): per method the calls, p50 and p99 latency and the errors by code;
// the RSS, fd and thread samples (first, last, max); and the limits it was held to: errors
// other than RESOURCE_EXHAUSTED, RSS above T1 + --max_overhead_bytes, or fds or threads
// growing by more than a small allowance after the first minute fail the run (exit 1).
#ifndef KVTIER_BENCH_SOAK_BENCH_H_
#define KVTIER_BENCH_SOAK_BENCH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kvtier::bench {

struct SoakOptions {
  uint32_t clients = 32;
  double seconds = 600;
  uint64_t t1_bytes = uint64_t{256} << 20;
  uint64_t t2_bytes = uint64_t{1} << 30;
  std::string t2_dir;  // empty: a temporary directory
  // RSS may exceed T1 by at most this (docs/deploy.md states the figure).
  uint64_t max_overhead_bytes = uint64_t{512} << 20;
  std::string store_binary;  // empty: kvtier-store beside kvtier-bench
};

struct SoakResult {
  std::vector<std::string> lines;
  std::vector<std::string> violations;  // empty: the run held every limit
};

absl::StatusOr<SoakResult> RunSoakBench(const SoakOptions& options);

}  // namespace kvtier::bench

#endif  // KVTIER_BENCH_SOAK_BENCH_H_
