// The Mooncake trace parser (bench/trace.h) on arbitrary lines: it returns a record or an
// error, never crashes, and a parsed record satisfies what the replay relies on.
#include <cstdint>
#include <string_view>

#include "bench/trace.h"
#include "cache_store/log.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<kvtier::bench::TraceRequest> r = kvtier::bench::ParseTraceLine(line);
  if (r.ok()) {
    KVTIER_CHECK(r->input_length >= 0 && r->output_length >= 0) << "negative lengths parsed";
  } else {
    KVTIER_CHECK(!r.status().message().empty()) << "an error without a message";
  }
  return 0;
}
