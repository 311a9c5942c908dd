// kvtier-bench lookup: how long a Lookup of a long prompt takes. Starts a real kvtier-store
// process (the one next to this program, or --store_binary), Puts the longest prompt's
// blocks once (a small layout: 4 KiB blocks of 16 tokens, so that 128k tokens are 8,192
// blocks), then for each prompt length looks up a prompt whose every block is cached
// (with a lease, released after each call, as a restore would) and one that shares nothing
// (a miss: all the key derivation, no matches). Reports per length the server-side time
// from the store's own timer (the mean of kvtier_rpc_duration_seconds{method="Lookup"}
// over the calls, scraped from /metrics before and after) and the client's round trip
// (median and best).
#ifndef KVTIER_BENCH_LOOKUP_BENCH_H_
#define KVTIER_BENCH_LOOKUP_BENCH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kvtier::bench {

struct LookupBenchOptions {
  std::vector<uint32_t> prompt_tokens = {8192, 32768, 131072};
  int iterations = 20;
  std::string store_binary;  // empty: the kvtier-store next to this program
};

// One JSON object per prompt length.
absl::StatusOr<std::vector<std::string>> RunLookupBench(const LookupBenchOptions& o);

}  // namespace kvtier::bench

#endif  // KVTIER_BENCH_LOOKUP_BENCH_H_
