#include "services/worker_metrics.h"

#include "services/metric_families.h"

namespace kvtier {
namespace {

class WorkerCollector : public prometheus::Collectable {
 public:
  WorkerCollector(const worker::DecodeEngine* engine, const ShardedClient* cluster)
      : engine_(engine), cluster_(cluster) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    const worker::DecodeEngine::Stats s = engine_->stats();
    using T = prometheus::MetricType;
    MetricFamilies f;
    const char* pages_help = "KV pages of the worker's pool, by state.";
    f.Add("kvtier_worker_pages", pages_help, T::Gauge, s.pages.free, {{"state", "free"}});
    f.Add("kvtier_worker_pages", pages_help, T::Gauge, s.pages.active, {{"state", "active"}});
    f.Add("kvtier_worker_pages", pages_help, T::Gauge, s.pages.cached, {{"state", "cached"}});
    f.Add("kvtier_worker_pages_awaiting_offload",
          "Cached pages whose block is not yet safely in the store (not evictable).", T::Gauge,
          s.pages.unsafe);
    f.Add("kvtier_worker_page_evictions_total", "Cached pages reused for new K/V.", T::Counter,
          s.pages.evictions);
    f.Add("kvtier_worker_open_sequences", "Sequences open now.", T::Gauge, s.open_sequences);
    const char* tokens_help = "Prompt tokens whose K/V came from each source.";
    f.Add("kvtier_worker_prefix_tokens_total", tokens_help, T::Counter, s.local_tokens,
          {{"source", "local"}});
    f.Add("kvtier_worker_prefix_tokens_total", tokens_help, T::Counter, s.store_tokens,
          {{"source", "store"}});
    f.Add("kvtier_worker_prefix_tokens_total", tokens_help, T::Counter, s.computed_tokens,
          {{"source", "computed"}});
    f.Add("kvtier_worker_restored_bytes_total", "K/V bytes restored from the store.", T::Counter,
          s.restored_bytes);
    f.Add("kvtier_worker_restore_seconds_total",
          "Time spent restoring from the store (Lookup, Fetch, copy into pages).", T::Counter,
          s.restore_seconds);
    f.Add("kvtier_worker_restores_total", "Store restores attempted.", T::Counter, s.restores);
    f.Add("kvtier_worker_shm_offload_blocks_total",
          "Blocks the store copied out of this worker's shared memory (same node) for an "
          "offload; the rest went over the socket.",
          T::Counter, s.offload.shm_blocks);
    f.Add("kvtier_worker_shm_restores_total",
          "Restores the store delivered into the worker's shared memory (same node).", T::Counter,
          s.shm_restores);
    f.Add("kvtier_worker_restore_failures_total",
          "Restores that failed (store unreachable, late, full, or a bad checksum) and cost a "
          "recompute.",
          T::Counter, s.restore_failures);
    f.Add("kvtier_worker_offloaded_blocks_total", "Blocks written back to the store.", T::Counter,
          s.offload.blocks);
    f.Add("kvtier_worker_offloaded_bytes_total", "Bytes written back to the store.", T::Counter,
          s.offload.bytes);
    f.Add("kvtier_worker_offload_dropped_blocks_total",
          "Blocks whose offload failed and that were deliberately dropped.", T::Counter,
          s.offload.dropped_blocks);
    const char* swap_help =
        "Idle open sequences that gave up their pages under memory pressure (out) and got them "
        "back (in).";
    f.Add("kvtier_worker_swapped_sequences_total", swap_help, T::Counter, s.swapped_out,
          {{"direction", "out"}});
    f.Add("kvtier_worker_swapped_sequences_total", swap_help, T::Counter, s.swapped_in,
          {{"direction", "in"}});
    f.Add("kvtier_worker_decode_steps_total", "Batched decode steps run.", T::Counter,
          s.decode_steps);
    f.Add("kvtier_worker_decoded_tokens_total", "Tokens produced by decode steps.", T::Counter,
          s.decoded_tokens);
    f.Add("kvtier_worker_decode_step_seconds_total", "Time spent in decode steps.", T::Counter,
          s.decode_seconds);
    if (cluster_ != nullptr) AddShards(f);
    return f.Take();
  }

 private:
  // One series per shard (bounded by the cluster's size), labelled by the shard's name.
  void AddShards(MetricFamilies& f) const {
    using T = prometheus::MetricType;
    for (const ShardStatus& s : cluster_->Shards()) {
      if (s.id.empty()) continue;  // not joined yet
      const MetricFamilies::Labels shard = {{"shard", s.id}};
      auto with = [&](const char* k, const char* v) {
        MetricFamilies::Labels l = shard;
        l.push_back({k, v});
        return l;
      };
      f.Add("kvtier_worker_store_shard_up",
            "1 while the store shard answers; 0 while it is skipped after a failure.", T::Gauge,
            s.healthy ? 1 : 0, shard);
      const char* put_help = "Blocks put to the store shard, by outcome (each copy counts).";
      f.Add("kvtier_worker_store_shard_put_blocks_total", put_help, T::Counter,
            s.put_blocks_committed, with("result", "committed"));
      f.Add("kvtier_worker_store_shard_put_blocks_total", put_help, T::Counter,
            s.put_blocks_failed, with("result", "failed"));
      f.Add("kvtier_worker_store_shard_fetched_blocks_total", "Blocks fetched from the store shard.",
            T::Counter, s.fetched_blocks, shard);
      const char* fail_help = "Calls to the store shard that failed (a miss for its blocks).";
      f.Add("kvtier_worker_store_shard_failures_total", fail_help, T::Counter,
            s.lookup_failures, with("call", "lookup"));
      f.Add("kvtier_worker_store_shard_failures_total", fail_help, T::Counter, s.fetch_failures,
            with("call", "fetch"));
      f.Add("kvtier_worker_store_shard_failover_blocks_total",
            "Blocks fetched from this shard after another copy's shard failed.", T::Counter,
            s.failover_blocks, shard);
    }
  }

  const worker::DecodeEngine* engine_;
  const ShardedClient* cluster_;
};

}  // namespace

std::shared_ptr<prometheus::Collectable> MakeWorkerMetrics(const worker::DecodeEngine* engine,
                                                           const ShardedClient* cluster) {
  return std::make_shared<WorkerCollector>(engine, cluster);
}

}  // namespace kvtier
