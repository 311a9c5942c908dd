#include "bench/cluster_bench.h"

#include <algorithm>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "bench/child_process.h"
#include "bench/replay.h"
#include "bench/trace.h"

namespace kvtier::bench {
namespace {

// N stores whose T1 capacities add up to `total` blocks of the replay layout.
absl::StatusOr<std::vector<std::unique_ptr<ServerProcess>>> StartStores(const std::string& binary,
                                                                        uint32_t n, uint64_t total,
                                                                        const std::string& policy) {
  // Slots are whole pages (the store rounds them up to 4 KiB).
  const uint64_t slot_bytes = std::max<uint64_t>(4096, ReplayLayout().BlockBytes());
  std::vector<std::unique_ptr<ServerProcess>> stores;
  for (uint32_t i = 0; i < n; ++i) {
    const uint64_t blocks = total / n + (i < total % n ? 1 : 0);
    absl::StatusOr<std::unique_ptr<ServerProcess>> s = ServerProcess::Start(
        binary, {"--t1_lock=none", absl::StrCat("--t1_min_slot_bytes=", slot_bytes),
                 absl::StrCat("--t1_bytes=", blocks * slot_bytes),
                 absl::StrCat("--shard_id=bench-", i), absl::StrCat("--eviction_policy=", policy)});
    if (!s.ok()) return s.status();
    stores.push_back(*std::move(s));
  }
  return stores;
}

std::string Line(uint32_t n, const std::string& setup, uint32_t replication, const ReplayResult& r,
                 double single_hit_rate) {
  return absl::StrFormat(
      "{\"shards\": %d, \"setup\": \"%s\", \"replication\": %d, \"capacity_blocks\": %d, "
      "\"hit_rate\": %.6f, \"vs_one_store\": %.4f, \"requests\": %d, "
      "\"requests_per_second\": %.1f, \"lookup_p50_ms\": %.3f, \"lookup_p99_ms\": %.3f, "
      "\"fetch_failures\": %d}",
      n, setup, replication, r.counters.capacity_blocks, r.hit_rate(),
      single_hit_rate > 0 ? r.hit_rate() / single_hit_rate : 0.0, r.requests,
      r.seconds > 0 ? r.requests / r.seconds : 0.0, r.lookup_p50_ms, r.lookup_p99_ms,
      r.fetch_failures);
}

}  // namespace

absl::StatusOr<std::vector<std::string>> RunClusterBench(const ClusterBenchOptions& o) {
  if (o.trace.empty()) return absl::InvalidArgumentError("cluster needs --trace");
  if (o.shards.empty() || o.capacity_fraction <= 0 || o.replication == 0) {
    return absl::InvalidArgumentError(
        "cluster needs --shards (e.g. 1,2,4), --capacity_fraction > 0 and --replication >= 1");
  }
  absl::StatusOr<std::vector<TraceRequest>> trace = LoadTrace(o.trace);
  if (!trace.ok()) return trace.status();
  if (o.limit_requests > 0 && o.limit_requests < trace->size()) trace->resize(o.limit_requests);
  const uint64_t total =
      static_cast<uint64_t>(o.capacity_fraction * static_cast<double>(UniqueBlocks(*trace)));
  if (total == 0) return absl::InvalidArgumentError("the capacity is under one block");
  const std::string binary =
      o.store_binary.empty() ? SiblingBinary("kvtier-store") : o.store_binary;

  std::vector<std::string> lines;
  double single = 0;
  std::vector<uint32_t> shards = o.shards;
  if (shards.front() != 1) shards.insert(shards.begin(), 1);  // the reference comes first
  for (uint32_t n : shards) {
    for (const bool isolated : {false, true}) {
      if (isolated && n == 1) continue;
      absl::StatusOr<std::vector<std::unique_ptr<ServerProcess>>> stores =
          StartStores(binary, n, total, o.policy);
      if (!stores.ok()) return stores.status();
      std::unique_ptr<ReplayBackend> backend;
      if (isolated) {
        std::vector<std::unique_ptr<ReplayBackend>> each;
        for (const auto& s : *stores) {
          absl::StatusOr<std::unique_ptr<ReplayBackend>> b =
              MakeGrpcBackend({.target = s->target()});
          if (!b.ok()) return b.status();
          each.push_back(*std::move(b));
        }
        backend = MakeRoundRobinBackend(std::move(each));
      } else {
        std::vector<std::string> targets;
        for (const auto& s : *stores) targets.push_back(s->target());
        // N = 1: one store, its own client; N > 1: the sharded client over the list.
        absl::StatusOr<std::unique_ptr<ReplayBackend>> b =
            MakeGrpcBackend({.target = absl::StrJoin(targets, ","),
                             .replication = std::min<uint32_t>(o.replication, n),
                             .placement_span = o.placement_span});
        if (!b.ok()) return b.status();
        backend = *std::move(b);
      }
      absl::StatusOr<ReplayResult> r = Replay(*trace, *backend);
      if (!r.ok()) return r.status();
      if (n == 1) single = r->hit_rate();
      lines.push_back(Line(n,
                           isolated ? "isolated_round_robin" : (n == 1 ? "one_store" : "one_cache"),
                           std::min<uint32_t>(o.replication, n), *r, single));
    }
  }
  return lines;
}

}  // namespace kvtier::bench
