// WorkerMetrics: the Prometheus metrics of kvtier-worker (names in docs/metrics.md), read
// from DecodeEngine::stats() at each scrape: pages by state, prompt tokens by source
// (local pages, store, recomputed), restore bytes/latency/failures, offload blocks/bytes/
// drops, decode steps and their time; with a cluster of store shards, what each shard did
// (kvtier_worker_store_shard_*). Thread-safe; the engine and the cluster client must
// outlive it.
#ifndef KVTIER_SERVICES_WORKER_METRICS_H_
#define KVTIER_SERVICES_WORKER_METRICS_H_

#include <prometheus/collectable.h>

#include <memory>

#include "client/sharded_client.h"
#include "worker/decode_engine.h"

namespace kvtier {

std::shared_ptr<prometheus::Collectable> MakeWorkerMetrics(const worker::DecodeEngine* engine,
                                                           const ShardedClient* cluster = nullptr);

}  // namespace kvtier

#endif  // KVTIER_SERVICES_WORKER_METRICS_H_
