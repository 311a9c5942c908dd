#include "bench/replay.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cache_store/block_store.h"
#include "client/cache_store_client.h"
#include "client/shard_endpoints.h"
#include "client/sharded_client.h"

namespace kvtier::bench {

KvLayout ReplayLayout() {
  return KvLayout{.model_id = "kvtier-replay",
                  .num_layers = 1,
                  .num_kv_heads = 1,
                  .head_dim = 16,
                  .dtype = DType::kFp16,
                  .tokens_per_block = kReplayTokensPerBlock};
}

std::vector<uint32_t> ReplayTokens(std::span<const uint64_t> hash_ids) {
  std::vector<uint32_t> tokens;
  tokens.reserve(hash_ids.size() * kReplayTokensPerBlock);
  for (uint64_t id : hash_ids) {
    tokens.push_back(static_cast<uint32_t>(id));
    tokens.push_back(static_cast<uint32_t>(id >> 32) ^ 0x5eed0000u);
  }
  return tokens;
}

std::vector<uint8_t> ReplayPayload(std::span<const uint64_t> hash_ids, uint32_t first, uint32_t n) {
  const uint64_t block_bytes = ReplayLayout().BlockBytes();
  std::vector<uint8_t> out(block_bytes * n);
  for (uint32_t i = 0; i < n; ++i) {
    uint64_t x = hash_ids[first + i] * 0x9E3779B97F4A7C15ull + 1;
    for (uint64_t b = 0; b < block_bytes; b += 8) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      std::memcpy(out.data() + i * block_bytes + b, &x, std::min<uint64_t>(8, block_bytes - b));
    }
  }
  return out;
}

namespace {

class EngineBackend final : public ReplayBackend {
 public:
  EngineBackend(std::shared_ptr<BlockStore> store, std::string tenant, uint64_t backlog_bytes)
      : backlog_bytes_(backlog_bytes),
        store_(std::move(store)),
        tenant_(std::move(tenant)),
        layout_(ReplayLayout()) {}

  absl::StatusOr<Hits> LookupFetchRelease(const ReplayPrompt& prompt) override {
    absl::StatusOr<LookupResult> found = store_->Lookup(
        PromptRef{.tenant = tenant_, .layout = &layout_, .tokens = prompt.tokens}, {});
    if (!found.ok()) return found.status();
    Hits hits;
    for (Tier t : found->tiers) ++(t == Tier::kHostDram ? hits.t1 : hits.t2);
    if (found->lease_id != 0) {
      {  // the read handle goes before the lease
        absl::StatusOr<std::unique_ptr<BlockReadHandle>> read =
            store_->ReadLease(tenant_, found->lease_id);
        hits.fetch_failed = !read.ok();
      }
      if (absl::Status s = store_->Release(tenant_, found->lease_id); !s.ok()) return s;
    }
    return hits;
  }

  absl::Status Put(const ReplayPrompt& prompt, uint32_t first_block,
                   std::span<const uint8_t> payload, bool last_block_partial) override {
    const absl::Status s = store_
        ->Put(PutSpec{.prompt = {.tenant = tenant_, .layout = &layout_, .tokens = prompt.tokens},
                      .first_block = first_block,
                      .num_blocks = static_cast<uint32_t>(payload.size() / layout_.BlockBytes()),
                      .last_block_partial = last_block_partial,
                      .output_tokens = prompt.output_tokens},
              payload)
        .status();
    // The replay offers requests as fast as the store takes them, but no faster than the
    // disk writes its demotions: past a small backlog it waits (a full queue would drop
    // demotions, and blocks waiting for their write hold their T2 slots: an arrival rate
    // the disk sustains keeps the backlog short).
    if (store_->t2_io_backlog_bytes() > backlog_bytes_) {
      store_->FlushT2Writes();
    }
    return s;
  }

  void Drain() override { store_->FlushT2Writes(); }
  bool ThreadSafe() const override { return true; }  // the store is; this holds no state

  absl::StatusOr<Counters> Stats() override {
    const BlockStoreStats s = store_->Stats();
    return Counters{.capacity_blocks = s.t1_capacity_blocks,
                    .ssd_capacity_blocks = s.t2_capacity_blocks,
                    .t2_bytes_written = s.t2_bytes_written,
                    .demoted_blocks = s.demoted_blocks,
                    .demotion_rejected_blocks = s.demotion_rejected_blocks,
                    .promoted_blocks = s.promoted_blocks,
                    .clean_demotions = s.clean_demotions,
                    .t2_write_queue_drops = s.t2_write_queue_drops,
                    .t2_evicted_blocks = s.t2_evicted_blocks,
                    .t2_direct_io = s.t2_direct_io,
                    .policy = s.eviction_policy,
                    .t1_bonus_weight = s.t1_bonus_weight};
  }

 private:
  const uint64_t backlog_bytes_;
  std::shared_ptr<BlockStore> store_;
  std::string tenant_;
  KvLayout layout_;
};

class GrpcBackend final : public ReplayBackend {
 public:
  GrpcBackend(std::shared_ptr<StoreClient> client, std::shared_ptr<CacheStoreClient> single,
              ShardedClient* cluster)
      : client_(std::move(client)),
        single_(std::move(single)),
        cluster_(cluster),
        layout_(ReplayLayout()) {}

  absl::StatusOr<Hits> LookupFetchRelease(const ReplayPrompt& prompt) override {
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<LookupReply> found = client_->Lookup(layout_, prompt.tokens);
    lookup_ms_.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
            .count());
    if (!found.ok()) return found.status();
    Hits hits;
    for (v1::Tier t : found->tiers) ++(t == v1::TIER_HOST_DRAM ? hits.t1 : hits.t2);
    if (found->lease_id != 0) {
      buffer_.resize(found->matched_blocks * layout_.BlockBytes());
      std::vector<std::span<uint8_t>> out;
      for (uint32_t i = 0; i < found->matched_blocks; ++i) {
        out.emplace_back(buffer_.data() + i * layout_.BlockBytes(), layout_.BlockBytes());
      }
      absl::StatusOr<FetchReply> fetched = client_->Fetch({.lease_id = found->lease_id}, out);
      hits.fetch_failed = !fetched.ok();
      if (fetched.ok() && buffer_ != ReplayPayload(prompt.hash_ids, 0, found->matched_blocks)) {
        return absl::DataLossError("the store returned bytes that differ from what was put");
      }
      if (absl::Status s = client_->Release(found->lease_id); !s.ok()) return s;
    }
    return hits;
  }

  absl::Status Put(const ReplayPrompt& prompt, uint32_t first_block,
                   std::span<const uint8_t> payload, bool last_block_partial) override {
    return client_
        ->Put(layout_, prompt.tokens, first_block, payload,
              PutParams{.last_block_partial = last_block_partial,
                        .output_tokens = prompt.output_tokens})
        .status();
  }

  absl::StatusOr<Counters> Stats() override {
    // A cluster's counters are its shards' summed.
    std::vector<std::shared_ptr<CacheStoreClient>> stores;
    if (single_) stores.push_back(single_);
    if (cluster_ != nullptr) {
      for (auto& [id, c] : cluster_->ShardClients()) stores.push_back(c);
    }
    Counters c;
    for (const auto& store : stores) {
      absl::StatusOr<v1::StatsResponse> s = store->Stats();
      if (!s.ok()) {
        if (cluster_ != nullptr) continue;  // a shard that is down counts nothing
        return s.status();
      }
      c.t2_bytes_written += s->t2_bytes_written();
      c.demoted_blocks += s->demoted_blocks();
      c.demotion_rejected_blocks += s->demotion_rejected_blocks();
      c.clean_demotions += s->clean_demotions();
      c.promoted_blocks += s->promoted_blocks();
      c.policy = s->eviction_policy();
      c.t1_bonus_weight = s->t1_bonus_weight();
      for (const v1::TierStats& t : s->tiers()) {
        if (t.tier() == v1::TIER_HOST_DRAM) c.capacity_blocks += t.capacity_blocks();
        if (t.tier() == v1::TIER_LOCAL_SSD) {
          c.ssd_capacity_blocks += t.capacity_blocks();
          c.t2_direct_io = t.direct_io();
        }
      }
    }
    return c;
  }

  std::vector<double> LookupMillis() const override { return lookup_ms_; }

 private:
  std::shared_ptr<StoreClient> client_;
  std::shared_ptr<CacheStoreClient> single_;
  ShardedClient* cluster_;
  std::vector<double> lookup_ms_;
  KvLayout layout_;
  std::vector<uint8_t> buffer_;
};

}  // namespace

absl::StatusOr<std::shared_ptr<BlockStore>> MakeEngineStore(const EngineBackendOptions& o) {
  if (o.capacity_blocks == 0) return absl::InvalidArgumentError("capacity_blocks must be > 0");
  BlockStoreOptions options;
  options.t1 = {.capacity_bytes = o.capacity_blocks * kReplaySlotBytes,
                .min_slot_bytes = kReplaySlotBytes,
                .lock_mode = MemoryLockMode::kNone};
  options.eviction_policy = o.policy;
  options.t2_eviction_policy = o.ssd_policy;
  options.t2_admit_min_score = o.t2_admit_min_score;
  options.t2_admit_min_return = o.t2_admit_min_return;
  absl::StatusOr<BlockStoreOptions::T2Admission> admission = ParseT2Admission(o.t2_admission);
  if (!admission.ok()) return admission.status();
  options.t2_admission = *admission;
  options.t2_keep_promoted_copy = o.t2_keep_promoted_copy;
  options.t2_promote_after_reads = o.t2_promote_after_reads;
  options.t2_read_threads = o.t2_sync ? 1 : o.t2_read_threads;
  options.t2_write_threads = o.t2_sync ? 1 : o.t2_write_threads;
  if (o.ssd_capacity_blocks > 0) {
    if (o.ssd_dir.empty()) return absl::InvalidArgumentError("a T2 capacity needs a T2 directory");
    options.t2 = {.directory = o.ssd_dir,
                  .capacity_bytes = o.ssd_capacity_blocks * SsdTier::SlotBytesFor(kReplaySlotBytes)};
  }
  options.max_active_leases = 1 << 16;
  options.quotas = o.quotas;
  absl::StatusOr<std::unique_ptr<BlockStore>> store = BlockStore::Create(options);
  if (!store.ok()) return store.status();
  return std::shared_ptr<BlockStore>(*std::move(store));
}

std::unique_ptr<ReplayBackend> MakeEngineBackendOn(std::shared_ptr<BlockStore> store,
                                                   std::string tenant, uint64_t backlog_bytes) {
  return std::make_unique<EngineBackend>(std::move(store), std::move(tenant), backlog_bytes);
}

absl::StatusOr<std::unique_ptr<ReplayBackend>> MakeEngineBackend(const EngineBackendOptions& o) {
  absl::StatusOr<std::shared_ptr<BlockStore>> store = MakeEngineStore(o);
  if (!store.ok()) return store.status();
  return MakeEngineBackendOn(*std::move(store), o.tenant,
                             o.t2_sync ? 0 : EngineBackendOptions::kWriteBacklogBytes);
}

absl::StatusOr<std::unique_ptr<ReplayBackend>> MakeGrpcBackend(const GrpcBackendOptions& o) {
  ClientOptions options;
  options.target = o.target;
  options.tenant = o.tenant;
  options.auth_token = o.auth_token;
  if (!ShardEndpoints::IsCluster(o.target)) {
    auto single = std::make_shared<CacheStoreClient>(options);
    return std::make_unique<GrpcBackend>(single, single, nullptr);
  }
  absl::StatusOr<std::unique_ptr<ShardedClient>> cluster = ShardedClient::Create(
      {.targets = o.target,
       .shard = options,
       .replication = o.replication,
       .placement_span = o.placement_span});
  if (!cluster.ok()) return cluster.status();
  ShardedClient* raw = cluster->get();
  return std::make_unique<GrpcBackend>(std::shared_ptr<StoreClient>(*std::move(cluster)), nullptr,
                                       raw);
}

namespace {

class RoundRobinBackend final : public ReplayBackend {
 public:
  explicit RoundRobinBackend(std::vector<std::unique_ptr<ReplayBackend>> backends)
      : backends_(std::move(backends)) {}

  absl::StatusOr<Hits> LookupFetchRelease(const ReplayPrompt& prompt) override {
    current_ = next_++ % backends_.size();
    return backends_[current_]->LookupFetchRelease(prompt);
  }
  absl::Status Put(const ReplayPrompt& prompt, uint32_t first_block,
                   std::span<const uint8_t> payload, bool last_block_partial) override {
    return backends_[current_]->Put(prompt, first_block, payload, last_block_partial);
  }
  absl::StatusOr<Counters> Stats() override {
    Counters sum;
    for (auto& b : backends_) {
      absl::StatusOr<Counters> c = b->Stats();
      if (!c.ok()) return c.status();
      sum.capacity_blocks += c->capacity_blocks;
      sum.ssd_capacity_blocks += c->ssd_capacity_blocks;
      sum.t2_bytes_written += c->t2_bytes_written;
      sum.demoted_blocks += c->demoted_blocks;
      sum.demotion_rejected_blocks += c->demotion_rejected_blocks;
      sum.clean_demotions += c->clean_demotions;
      sum.t2_write_queue_drops += c->t2_write_queue_drops;
      sum.t2_evicted_blocks += c->t2_evicted_blocks;
      sum.promoted_blocks += c->promoted_blocks;
      sum.t2_direct_io = c->t2_direct_io;
      sum.policy = c->policy;
      sum.t1_bonus_weight = c->t1_bonus_weight;
    }
    return sum;
  }
  std::vector<double> LookupMillis() const override {
    std::vector<double> all;
    for (const auto& b : backends_) {
      const std::vector<double> one = b->LookupMillis();
      all.insert(all.end(), one.begin(), one.end());
    }
    return all;
  }

 private:
  std::vector<std::unique_ptr<ReplayBackend>> backends_;
  size_t next_ = 0;
  size_t current_ = 0;
};

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

}  // namespace

std::unique_ptr<ReplayBackend> MakeRoundRobinBackend(
    std::vector<std::unique_ptr<ReplayBackend>> backends) {
  return std::make_unique<RoundRobinBackend>(std::move(backends));
}

absl::Status ReplayRequest(const TraceRequest& req, ReplayBackend& backend, ReplayResult& r) {
  if (req.hash_ids.empty()) {
    ++r.requests;
    return absl::OkStatus();
  }
  const ReplayPrompt prompt{.hash_ids = req.hash_ids,
                            .tokens = ReplayTokens(req.hash_ids),
                            .output_tokens = static_cast<uint32_t>(
                                std::clamp<int64_t>(req.output_length, 0, UINT32_MAX))};
  absl::StatusOr<ReplayBackend::Hits> hits = backend.LookupFetchRelease(prompt);
  if (!hits.ok()) {
    return absl::Status(hits.status().code(), absl::StrCat("lookup: ", hits.status().message()));
  }
  const uint32_t matched = hits->t1 + hits->t2;
  r.hit_blocks += matched;
  r.t1_hit_blocks += hits->t1;
  r.t2_hit_blocks += hits->t2;
  r.fetch_failures += hits->fetch_failed ? 1 : 0;
  r.blocks += req.hash_ids.size();
  ++r.requests;
  if (matched < req.hash_ids.size()) {
    const bool partial = req.input_length > 0 && req.input_length % kTraceBlockTokens != 0;
    const auto n = static_cast<uint32_t>(req.hash_ids.size()) - matched;
    const std::vector<uint8_t> payload = ReplayPayload(req.hash_ids, matched, n);
    if (absl::Status s = backend.Put(prompt, matched, payload, partial); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("put: ", s.message()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ReplayResult> Replay(const std::vector<TraceRequest>& trace, ReplayBackend& backend,
                                    size_t limit, uint32_t concurrency) {
  if (concurrency == 0) return absl::InvalidArgumentError("replay concurrency must be >= 1");
  if (concurrency > 1 && !backend.ThreadSafe()) {
    return absl::InvalidArgumentError(
        "this replay backend takes one request at a time; use concurrency 1");
  }
  ReplayResult r;
  r.concurrency = concurrency;
  const size_t n = limit == 0 ? trace.size() : std::min(limit, trace.size());
  const auto start = std::chrono::steady_clock::now();
  if (concurrency == 1) {
    for (size_t i = 0; i < n; ++i) {
      if (absl::Status s = ReplayRequest(trace[i], backend, r); !s.ok()) {
        return absl::Status(s.code(), absl::StrCat("request ", i, ": ", s.message()));
      }
    }
  } else {
    std::atomic<size_t> next{0};
    std::vector<ReplayResult> part(concurrency);
    std::vector<absl::Status> error(concurrency);
    std::vector<std::thread> threads;
    for (uint32_t t = 0; t < concurrency; ++t) {
      threads.emplace_back([&, t] {
        for (size_t i = next++; i < n; i = next++) {
          if (absl::Status s = ReplayRequest(trace[i], backend, part[t]); !s.ok()) {
            error[t] = absl::Status(s.code(), absl::StrCat("request ", i, ": ", s.message()));
            next = n;  // the others stop after their current request
            return;
          }
        }
      });
    }
    for (std::thread& t : threads) t.join();
    for (uint32_t t = 0; t < concurrency; ++t) {
      if (!error[t].ok()) return error[t];
      r.requests += part[t].requests;
      r.blocks += part[t].blocks;
      r.hit_blocks += part[t].hit_blocks;
      r.t1_hit_blocks += part[t].t1_hit_blocks;
      r.t2_hit_blocks += part[t].t2_hit_blocks;
      r.fetch_failures += part[t].fetch_failures;
    }
  }
  backend.Drain();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  absl::StatusOr<ReplayBackend::Counters> counters = backend.Stats();
  if (!counters.ok()) return counters.status();
  r.counters = *counters;
  const std::vector<double> lookups = backend.LookupMillis();
  r.lookup_p50_ms = Percentile(lookups, 0.50);
  r.lookup_p99_ms = Percentile(lookups, 0.99);
  return r;
}

std::string ReplayResult::ToJson() const {
  const double total = blocks ? double(blocks) : 1.0;
  return absl::StrFormat(
      "{\"trace\": \"%s\", \"mode\": \"%s\", \"requests\": %d, \"blocks\": %d, "
      "\"unique_blocks\": %d, \"capacity_blocks\": %d, \"capacity_fraction\": %.4f, "
      "\"ssd_capacity_blocks\": %d, \"policy\": \"%s\", \"hit_rate\": %.6f, "
      "\"t1_hit_rate\": %.6f, \"t2_hit_rate\": %.6f, \"fetch_failures\": %d, "
      "\"concurrency\": %d, \"requests_per_second\": %.1f, \"seconds\": %.3f, "
      "\"demoted_blocks\": %d, "
      "\"demotion_rejected_blocks\": %d, \"promoted_blocks\": %d, \"clean_demotions\": %d, \"t2_write_queue_drops\": %d, \"t2_evicted_blocks\": %d, "
      "\"ssd_blocks_written_per_request\": %.3f, \"ssd_bytes_written_per_request\": %.1f, "
      "\"t2_direct_io\": %s, \"lookup_p50_ms\": %.3f, \"lookup_p99_ms\": %.3f, "
      "\"t1_bonus_weight\": %g}",
      trace, mode, requests, blocks, unique_blocks, counters.capacity_blocks,
      unique_blocks ? double(counters.capacity_blocks) / double(unique_blocks) : 0.0,
      counters.ssd_capacity_blocks, counters.policy, hit_rate(), t1_hit_blocks / total,
      t2_hit_blocks / total, fetch_failures, concurrency,
      seconds > 0 ? requests / seconds : 0.0, seconds,
      counters.demoted_blocks, counters.demotion_rejected_blocks, counters.promoted_blocks,
      counters.clean_demotions, counters.t2_write_queue_drops, counters.t2_evicted_blocks,
      requests ? double(counters.demoted_blocks) / double(requests) : 0.0,
      requests ? double(counters.t2_bytes_written) / double(requests) : 0.0,
      counters.t2_direct_io ? "true" : "false", lookup_p50_ms, lookup_p99_ms,
      counters.t1_bonus_weight);
}

}  // namespace kvtier::bench
