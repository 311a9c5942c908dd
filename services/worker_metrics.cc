#include "services/worker_metrics.h"

#include "services/metric_families.h"

namespace kvtier {
namespace {

class WorkerCollector : public prometheus::Collectable {
 public:
  explicit WorkerCollector(const worker::DecodeEngine* engine) : engine_(engine) {}

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
    return f.Take();
  }

 private:
  const worker::DecodeEngine* engine_;
};

}  // namespace

std::shared_ptr<prometheus::Collectable> MakeWorkerMetrics(const worker::DecodeEngine* engine) {
  return std::make_shared<WorkerCollector>(engine);
}

}  // namespace kvtier
