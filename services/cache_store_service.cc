#include "services/cache_store_service.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "proto/payload_wire.h"
#include "services/fetch_reactor.h"
#include "services/proto_convert.h"
#include "services/put_reactor.h"
#include "services/rpc_timer.h"
#include "services/watch_events_reactor.h"

namespace kvtier {
namespace {

// A reactor that only reports an error: for streaming calls rejected before they start.
template <typename Base>
class RejectedStream final : public Base {
 public:
  explicit RejectedStream(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

template <typename Base>
Base* Reject(RpcTimer& timer, const absl::Status& status) {
  return new RejectedStream<Base>(timer.Finish(ToGrpcStatus(status)));
}

uint32_t ToMillis(absl::Duration d) {
  return static_cast<uint32_t>(std::min<int64_t>(absl::ToInt64Milliseconds(d), UINT32_MAX));
}

}  // namespace

CacheStoreService::CacheStoreService(BlockStore* store, const TenantAuthenticator* auth,
                                     StoreMetrics* metrics, CacheStoreServiceOptions options)
    : store_(store), auth_(auth), metrics_(metrics), options_(options) {}

template <typename Body>
grpc::ServerUnaryReactor* CacheStoreService::Unary(grpc::CallbackServerContext* ctx, StoreRpc rpc,
                                                   Body body) {
  RpcTimer timer(metrics_, rpc);
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  absl::StatusOr<std::string> tenant = auth_->TenantOf(*ctx);
  absl::Status status = tenant.ok() ? body(*tenant) : tenant.status();
  reactor->Finish(timer.Finish(ToGrpcStatus(status)));
  return reactor;
}

grpc::ServerUnaryReactor* CacheStoreService::Lookup(grpc::CallbackServerContext* ctx,
                                                    const v1::LookupRequest* request,
                                                    v1::LookupResponse* response) {
  return Unary(ctx, StoreRpc::kLookup, [&](const std::string& tenant) -> absl::Status {
    absl::StatusOr<KvLayout> layout = LayoutFromProto(request->layout());
    if (!layout.ok()) return layout.status();
    PromptRef prompt{.tenant = tenant,
                     .layout = &*layout,
                     .salt = request->cache_salt(),
                     .tokens = std::span(request->token_ids().data(), request->token_ids().size())};
    absl::StatusOr<LookupResult> result = store_->Lookup(
        prompt,
        {.lease = !request->no_lease(),
         .lease_ttl = absl::Milliseconds(request->lease_ttl_ms()),
         .report_present = request->report_present()});
    if (!result.ok()) return result.status();
    // A presence lookup (a sharded client's) is not a hit-rate sample of this shard.
    if (!request->report_present()) {
      metrics_->ObserveLookup(tenant, result->total_blocks, result->matched_blocks());
    }
    response->set_matched_blocks(result->matched_blocks());
    response->set_matched_tokens(uint64_t{result->matched_blocks()} * layout->tokens_per_block);
    response->set_total_blocks(result->total_blocks);
    if (request->packed_keys()) {
      std::string* packed = response->mutable_packed_block_keys();
      packed->reserve(result->keys.size() * BlockKey::kSize);
      for (const BlockKey& k : result->keys) packed->append(k.AsBytes());
    } else {
      KeysToProto(result->keys, response->mutable_block_keys());
    }
    response->mutable_tiers()->Reserve(static_cast<int>(result->tiers.size()));
    for (Tier tier : result->tiers) response->add_tiers(TierToProto(tier));
    response->set_lease_id(result->lease_id);
    response->set_lease_ttl_ms(ToMillis(result->lease_ttl));
    response->set_block_bytes(result->block_bytes);
    response->mutable_present_blocks()->Add(result->present.begin(), result->present.end());
    return absl::OkStatus();
  });
}

grpc::ServerReadReactor<grpc::ByteBuffer>* CacheStoreService::Put(grpc::CallbackServerContext* ctx,
                                                                  grpc::ByteBuffer* response) {
  using Reactor = grpc::ServerReadReactor<grpc::ByteBuffer>;
  RpcTimer timer(metrics_, StoreRpc::kPut);
  absl::StatusOr<std::string> tenant = auth_->TenantOf(*ctx);
  if (!tenant.ok()) return Reject<Reactor>(timer, tenant.status());
  return new PutReactor(ctx, store_, options_.shm_regions, options_.transfer_pool,
                        *std::move(tenant), std::move(timer), response);
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* CacheStoreService::Fetch(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* raw_request) {
  using Reactor = grpc::ServerWriteReactor<grpc::ByteBuffer>;
  RpcTimer timer(metrics_, StoreRpc::kFetch);
  auto reject = [&](const absl::Status& s) { return Reject<Reactor>(timer, s); };
  absl::StatusOr<std::string> tenant = auth_->TenantOf(*ctx);
  if (!tenant.ok()) return reject(tenant.status());
  v1::FetchRequest fetch;
  if (absl::Status s = DecodeMessage(*raw_request, &fetch); !s.ok()) return reject(s);
  const bool by_lease = fetch.lease_id() != 0;
  if (by_lease == (fetch.block_keys_size() > 0)) {
    return reject(absl::InvalidArgumentError(
        "a Fetch names either a lease_id or block_keys, exactly one of them"));
  }
  if (fetch.max_chunk_bytes() > options_.max_fetch_chunk_bytes) {
    return reject(absl::InvalidArgumentError(
        absl::StrCat("max_chunk_bytes ", fetch.max_chunk_bytes(), " exceeds the server's ",
                     options_.max_fetch_chunk_bytes)));
  }
  if (!v1::FetchOrder_IsValid(fetch.order())) {
    return reject(absl::InvalidArgumentError(
        absl::StrCat("unknown fetch order ", static_cast<int>(fetch.order()))));
  }
  // Same-node: the region is found before any block is opened.
  std::unique_ptr<ShmTarget> target;
  if (fetch.has_shm()) {
    if (options_.shm_regions == nullptr) {
      return reject(absl::FailedPreconditionError(
          "this store has no same-node data plane (start it with --shm_socket)"));
    }
    absl::StatusOr<std::shared_ptr<const AttachedRegion>> region =
        options_.shm_regions->Find(*tenant, fetch.shm().region_id());
    if (!region.ok()) return reject(region.status());
    target = std::make_unique<ShmTarget>();
    target->region = *std::move(region);
    target->offsets.assign(fetch.shm().offsets().begin(), fetch.shm().offsets().end());
    target->pool = options_.transfer_pool;
  }
  std::vector<BlockKey> keys;
  if (!by_lease) {
    absl::StatusOr<std::vector<BlockKey>> parsed = KeysFromProto(fetch.block_keys());
    if (!parsed.ok()) return reject(parsed.status());
    keys = *std::move(parsed);
  }
  const uint32_t chunk =
      fetch.max_chunk_bytes() != 0 ? fetch.max_chunk_bytes() : options_.default_fetch_chunk_bytes;
  // The blocks are opened here; those in T2 are read on the store's reader threads (this
  // thread never waits on a disk). Over the socket the stream starts at once and each T2
  // block goes out as soon as it has loaded; same-node, the copies start when the last
  // read ends.
  const bool same_node = target != nullptr;
  auto* reactor = new FetchReactor(fetch.order(), chunk, std::move(timer), std::move(target));
  if (same_node) {
    if (by_lease) {
      store_->ReadLeaseAsync(*tenant, fetch.lease_id(), reactor->Opener());
    } else {
      store_->ReadBlocksAsync(*tenant, keys, reactor->Opener());
    }
  } else if (by_lease) {
    store_->ReadLeaseStreaming(*tenant, fetch.lease_id(), reactor->StreamOpener());
  } else {
    store_->ReadBlocksStreaming(*tenant, keys, reactor->StreamOpener());
  }
  return reactor;
}

grpc::ServerUnaryReactor* CacheStoreService::Release(grpc::CallbackServerContext* ctx,
                                                     const v1::ReleaseRequest* request,
                                                     v1::ReleaseResponse* response) {
  return Unary(ctx, StoreRpc::kRelease, [&](const std::string& tenant) {
    return store_->Release(tenant, request->lease_id());
  });
}

grpc::ServerUnaryReactor* CacheStoreService::Pin(grpc::CallbackServerContext* ctx,
                                                 const v1::PinRequest* request,
                                                 v1::PinResponse* response) {
  return Unary(ctx, StoreRpc::kPin, [&](const std::string& tenant) -> absl::Status {
    absl::StatusOr<std::vector<BlockKey>> keys = KeysFromProto(request->block_keys());
    if (!keys.ok()) return keys.status();
    uint32_t pinned = 0;
    absl::StatusOr<absl::Duration> ttl =
        store_->Pin(tenant, *keys, absl::Milliseconds(request->ttl_ms()),
                    request->skip_missing(), &pinned);
    if (!ttl.ok()) return ttl.status();
    response->set_pinned_blocks(pinned);
    response->set_ttl_ms(ToMillis(*ttl));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* CacheStoreService::Unpin(grpc::CallbackServerContext* ctx,
                                                   const v1::UnpinRequest* request,
                                                   v1::UnpinResponse* response) {
  return Unary(ctx, StoreRpc::kUnpin, [&](const std::string& tenant) -> absl::Status {
    absl::StatusOr<std::vector<BlockKey>> keys = KeysFromProto(request->block_keys());
    if (!keys.ok()) return keys.status();
    absl::StatusOr<uint32_t> n = store_->Unpin(tenant, *keys, request->skip_missing());
    if (!n.ok()) return n.status();
    response->set_unpinned_blocks(*n);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* CacheStoreService::Delete(grpc::CallbackServerContext* ctx,
                                                    const v1::DeleteRequest* request,
                                                    v1::DeleteResponse* response) {
  return Unary(ctx, StoreRpc::kDelete, [&](const std::string& tenant) -> absl::Status {
    absl::StatusOr<std::vector<BlockKey>> keys = KeysFromProto(request->block_keys());
    if (!keys.ok()) return keys.status();
    absl::StatusOr<uint32_t> n = store_->Delete(tenant, *keys, request->skip_missing());
    if (!n.ok()) return n.status();
    response->set_deleted_blocks(*n);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* CacheStoreService::Stats(grpc::CallbackServerContext* ctx,
                                                   const v1::StatsRequest* request,
                                                   v1::StatsResponse* response) {
  return Unary(ctx, StoreRpc::kStats, [&](const std::string& tenant) {
    const BlockStoreStats s = store_->Stats();
    const TenantUsage own = store_->UsageOf(tenant);
    v1::TenantUsage* u = response->mutable_tenant();
    u->set_tenant(own.tenant);
    u->set_t1_bytes(own.t1_bytes);
    u->set_t1_blocks(own.t1_blocks);
    u->set_t2_bytes(own.t2_bytes);
    u->set_t2_blocks(own.t2_blocks);
    u->set_t1_guarantee_bytes(own.quota.t1_guarantee);
    u->set_t1_limit_bytes(own.quota.t1_limit);
    u->set_t2_guarantee_bytes(own.quota.t2_guarantee);
    u->set_t2_limit_bytes(own.quota.t2_limit);
    u->set_t1_limit_evictions(own.t1_limit_evictions);
    u->set_t2_limit_evictions(own.t2_limit_evictions);
    response->set_quotas_enabled(s.quotas_enabled);
    response->set_tenants_holding(s.tenants_holding);
    v1::TierStats* t1 = response->add_tiers();
    t1->set_tier(v1::TIER_HOST_DRAM);
    t1->set_capacity_bytes(s.t1_capacity_bytes);
    t1->set_slot_bytes(s.t1_slot_bytes);
    t1->set_capacity_blocks(s.t1_capacity_blocks);
    t1->set_used_blocks(s.t1_used_blocks);
    t1->set_used_bytes(s.t1_used_bytes);
    t1->set_reserved_blocks(s.t1_reserved_blocks);
    t1->set_locked(s.t1_locked);
    t1->set_hit_blocks(s.lookup_hit_blocks_t1);
    t1->set_max_block_bytes(s.max_block_bytes);
    t1->set_slab_bytes(s.t1_slab_bytes);
    t1->set_slabs(s.t1_slabs);
    t1->set_free_slabs(s.t1_free_slabs);
    t1->set_allocated_bytes(s.t1_allocated_bytes);
    if (s.t2_enabled) {
      v1::TierStats* t2 = response->add_tiers();
      t2->set_tier(v1::TIER_LOCAL_SSD);
      t2->set_capacity_bytes(s.t2_capacity_bytes);
      t2->set_slot_bytes(s.t2_slot_bytes);
      t2->set_capacity_blocks(s.t2_capacity_blocks);
      t2->set_used_blocks(s.t2_used_blocks);
      t2->set_used_bytes(s.t2_used_bytes);
      t2->set_hit_blocks(s.lookup_hit_blocks_t2);
      t2->set_direct_io(s.t2_direct_io);
      t2->set_max_block_bytes(s.max_block_bytes);
      t2->set_slab_bytes(s.t2_slab_bytes);
      t2->set_slabs(s.t2_slabs);
      t2->set_free_slabs(s.t2_free_slabs);
      t2->set_allocated_bytes(s.t2_allocated_bytes);
    }
    for (const LayoutUsage& u : s.layouts) {
      v1::LayoutUsage* l = response->add_layouts();
      l->set_layout_fingerprint(u.layout_fingerprint);
      l->set_block_bytes(u.block_bytes);
      l->set_t1_blocks(u.t1_blocks);
      l->set_t1_bytes(u.t1_bytes);
      l->set_t2_blocks(u.t2_blocks);
      l->set_t2_bytes(u.t2_bytes);
    }
    response->set_t1_slab_moves(s.t1_slab_moves);
    response->set_t2_slab_moves(s.t2_slab_moves);
    response->set_block_limit_evictions(s.block_limit_evictions);
    response->set_max_blocks(s.max_blocks);
    response->set_lookups(s.lookups);
    response->set_lookup_requested_blocks(s.lookup_requested_blocks);
    response->set_lookup_hit_blocks(s.lookup_hit_blocks);
    response->set_lookup_requested_tokens(s.lookup_requested_tokens);
    response->set_lookup_hit_tokens(s.lookup_hit_tokens);
    response->set_put_stored_blocks(s.put_stored_blocks);
    response->set_put_output_reported_blocks(s.put_output_reported_blocks);
    response->set_put_existing_blocks(s.put_existing_blocks);
    response->set_put_bytes(s.put_bytes);
    response->set_put_failures(s.put_failures);
    response->set_fetched_blocks(s.fetched_blocks);
    response->set_fetched_bytes(s.fetched_bytes);
    response->set_evicted_blocks(s.evicted_blocks);
    response->set_deleted_blocks(s.deleted_blocks);
    response->set_checksum_failures(s.checksum_failures);
    response->set_active_leases(s.active_leases);
    response->set_pinned_blocks(s.pinned_blocks);
    response->set_eviction_policy(s.eviction_policy);
    response->set_t1_bonus_weight(s.t1_bonus_weight);
    response->set_demoted_blocks(s.demoted_blocks);
    response->set_demotion_rejected_blocks(s.demotion_rejected_blocks);
    response->set_clean_demotions(s.clean_demotions);
    response->set_t2_copy_blocks(s.t2_copy_blocks);
    response->set_t2_write_queue_drops(s.t2_write_queue_drops);
    response->set_t2_write_queue_bytes(s.t2_write_queue_bytes);
    response->set_promoted_blocks(s.promoted_blocks);
    response->set_t2_evicted_blocks(s.t2_evicted_blocks);
    response->set_t2_write_errors(s.t2_write_errors);
    response->set_t2_read_errors(s.t2_read_errors);
    response->set_t2_bytes_written(s.t2_bytes_written);
    response->set_t2_bytes_read(s.t2_bytes_read);
    response->set_t2_recovered_blocks(s.t2_recovered_blocks);
    response->set_t2_recovery_drops(s.t2_recovery_drops);
    response->set_shard_id(options_.shard_id);
    return absl::OkStatus();
  });
}

grpc::ServerWriteReactor<v1::WatchEventsResponse>* CacheStoreService::WatchEvents(
    grpc::CallbackServerContext* ctx, const v1::WatchEventsRequest* request) {
  using Reactor = grpc::ServerWriteReactor<v1::WatchEventsResponse>;
  RpcTimer timer(metrics_, StoreRpc::kWatchEvents);
  absl::StatusOr<std::string> tenant = auth_->TenantOf(*ctx);
  if (!tenant.ok()) return Reject<Reactor>(timer, tenant.status());
  return new WatchEventsReactor(&store_->events(), *std::move(tenant),
                                options_.max_events_per_message, std::move(timer));
}

}  // namespace kvtier
