// Mooncake-format KV traces (../shared/data/traces/README.md): JSONL, one request per line
// with timestamp (ms), input_length, output_length and hash_ids (one id per 512-token block;
// equal ids at equal positions mean an identical prefix up to that block).
#ifndef KVTIER_BENCH_TRACE_H_
#define KVTIER_BENCH_TRACE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kvtier::bench {

struct TraceRequest {
  int64_t timestamp_ms = 0;
  int64_t input_length = 0;
  int64_t output_length = 0;
  std::vector<uint64_t> hash_ids;
};

inline constexpr int64_t kTraceBlockTokens = 512;

// Parses one JSON object. Unknown keys are skipped; hash_ids is required. Errors name the
// field and the offending text.
absl::StatusOr<TraceRequest> ParseTraceLine(std::string_view line);
// Reads a whole trace; errors name the file and line. Blank lines are skipped.
absl::StatusOr<std::vector<TraceRequest>> LoadTrace(const std::string& path);

// Distinct hash ids in the trace (the "unique blocks" capacities are fractions of).
uint64_t UniqueBlocks(const std::vector<TraceRequest>& trace);

}  // namespace kvtier::bench

#endif  // KVTIER_BENCH_TRACE_H_
