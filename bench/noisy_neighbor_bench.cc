#include "bench/noisy_neighbor_bench.h"

#include <chrono>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/replay.h"

namespace kvtier::bench {
namespace {

// The scan's hash ids start far above any trace's.
constexpr uint64_t kScanIdBase = uint64_t{1} << 48;

struct Run {
  const char* name;
  uint64_t capacity_blocks;
  bool quota;
  bool scan;
};

}  // namespace

absl::StatusOr<NoisyNeighborResult> RunNoisyNeighborBench(const std::vector<TraceRequest>& trace,
                                                          const std::string& trace_name,
                                                          const NoisyNeighborOptions& o) {
  if (!(o.guarantee_fraction > 0 && o.guarantee_fraction < 1)) {
    return absl::InvalidArgumentError("guarantee_fraction must be in (0, 1)");
  }
  if (!(o.store_multiple >= 1)) return absl::InvalidArgumentError("store_multiple must be >= 1");
  if (o.scan_blocks == 0) return absl::InvalidArgumentError("scan_blocks must be > 0");
  const uint64_t unique = UniqueBlocks(trace);
  const auto guarantee = static_cast<uint64_t>(std::floor(o.guarantee_fraction * unique));
  if (guarantee == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the trace has ", unique, " unique blocks: a guarantee_fraction of ", o.guarantee_fraction,
        " is no block"));
  }
  const auto shared = static_cast<uint64_t>(std::floor(o.store_multiple * guarantee));
  const uint64_t guarantee_bytes = guarantee * ReplayLayout().BlockBytes();
  const size_t n = o.limit == 0 ? trace.size() : std::min(o.limit, trace.size());

  NoisyNeighborResult result;
  const Run runs[] = {{"alone", guarantee, false, false},
                      {"with_quota", shared, true, true},
                      {"without_quota", shared, false, true}};
  for (const Run& run : runs) {
    EngineBackendOptions options{.capacity_blocks = run.capacity_blocks, .policy = o.policy};
    if (run.quota) {
      options.quotas.tenants["b"] = {.t1_guarantee = guarantee_bytes,
                                     .t1_limit = o.limit_at_guarantee ? guarantee_bytes : 0};
    }
    absl::StatusOr<std::shared_ptr<BlockStore>> store = MakeEngineStore(options);
    if (!store.ok()) return store.status();
    std::unique_ptr<ReplayBackend> a = MakeEngineBackendOn(*store, "a");
    std::unique_ptr<ReplayBackend> b = MakeEngineBackendOn(*store, "b");
    ReplayResult rb, ra;
    uint64_t next_scan_id = kScanIdBase;
    size_t next_neighbour = 0;
    TraceRequest scan;
    scan.input_length = 512 * o.scan_blocks;
    const auto start = std::chrono::steady_clock::now();
    for (size_t i = 0; i < n; ++i) {
      for (uint32_t s = 0; run.scan && s < o.scan_requests; ++s) {
        const TraceRequest* next = &scan;
        if (!o.neighbour.empty()) {
          if (next_neighbour == o.neighbour.size()) break;
          next = &o.neighbour[next_neighbour++];
        } else {
          scan.hash_ids.clear();
          for (uint32_t k = 0; k < o.scan_blocks; ++k) scan.hash_ids.push_back(next_scan_id++);
        }
        if (absl::Status st = ReplayRequest(*next, *a, ra); !st.ok()) {
          return absl::Status(st.code(), absl::StrCat(run.name, o.neighbour.empty() ? ": scan: "
                                                                                : ": neighbour: ",
                                                      st.message()));
        }
      }
      if (absl::Status st = ReplayRequest(trace[i], *b, rb); !st.ok()) {
        return absl::Status(st.code(),
                            absl::StrCat(run.name, ": request ", i, ": ", st.message()));
      }
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const BlockStoreStats stats = (*store)->Stats();
    uint64_t b_blocks = 0, a_blocks = 0;
    for (const TenantUsage& u : stats.tenants) (u.tenant == "b" ? b_blocks : a_blocks) = u.t1_blocks;
    result.lines.push_back(absl::StrFormat(
        "{\"trace\": \"%s\", \"run\": \"%s\", \"policy\": \"%s\", \"capacity_blocks\": %d, "
        "\"b_guarantee_blocks\": %d, \"b_requests\": %d, \"b_hit_rate\": %.6f, "
        "\"a_requests\": %d, \"a_blocks\": %d, \"a_hit_rate\": %.6f, \"b_blocks_at_end\": %d, "
        "\"a_blocks_at_end\": %d, \"seconds\": %.2f}",
        trace_name, run.name, o.policy, run.capacity_blocks, run.quota ? guarantee : 0,
        rb.requests, rb.hit_rate(), ra.requests, ra.blocks, ra.hit_rate(), b_blocks, a_blocks,
        seconds));
    (run.name == std::string("alone")        ? result.alone
     : run.name == std::string("with_quota") ? result.with_quota
                                             : result.without_quota) = rb.hit_rate();
  }
  result.lines.push_back(absl::StrFormat(
      "{\"trace\": \"%s\", \"summary\": true, \"b_alone\": %.6f, \"b_with_quota\": %.6f, "
      "\"b_without_quota\": %.6f, \"with_quota_vs_alone\": %.4f, "
      "\"without_quota_vs_alone\": %.4f}",
      trace_name, result.alone, result.with_quota, result.without_quota,
      result.alone > 0 ? result.with_quota / result.alone : 0.0,
      result.alone > 0 ? result.without_quota / result.alone : 0.0));
  return result;
}

}  // namespace kvtier::bench
