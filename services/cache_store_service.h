// CacheStoreService: the kvtier.v1.CacheStore gRPC service over a BlockStore.
//
// Callback API: unary methods finish inline (the engine never blocks for long); Put,
// Fetch and WatchEvents are reactors (put_reactor.h, fetch_reactor.h,
// watch_events_reactor.h). Put and Fetch carry block payloads and are raw methods
// (grpc::ByteBuffer, decoded with proto/payload_wire.h) so that payload bytes move between
// the wire and the T1 slots without a protobuf copy in between. Each call is authenticated to a
// tenant first; engine errors become gRPC statuses at this edge, and every call is counted and
// timed in StoreMetrics. Thread-safe; the store, authenticator and metrics must outlive the
// service.
#ifndef KVTIER_SERVICES_CACHE_STORE_SERVICE_H_
#define KVTIER_SERVICES_CACHE_STORE_SERVICE_H_

#include <cstdint>
#include <string>

#include "cache_store/block_store.h"
#include "kvtier/v1/cache_store.grpc.pb.h"
#include "services/shm_regions.h"
#include "services/store_metrics.h"
#include "services/tenant_auth.h"
#include "services/transfer_pool.h"

namespace kvtier {

struct CacheStoreServiceOptions {
  // Payload bytes per Fetch message when the client does not ask, and the most it may ask.
  uint32_t default_fetch_chunk_bytes = 512 << 10;
  uint32_t max_fetch_chunk_bytes = 4 << 20;
  // Events per WatchEvents message at most.
  uint32_t max_events_per_message = 256;
  // The same-node data plane (services/shm_regions.h): the regions clients attached, and
  // the threads that copy to and from them. Both null: off (FAILED_PRECONDITION for calls
  // that name a region).
  ShmRegions* shm_regions = nullptr;
  TransferPool* transfer_pool = nullptr;
  // This store's name among a cluster's shards, reported by Stats (StatsResponse.shard_id):
  // sharded clients place blocks by it. Empty: StoreServer names it HOSTNAME:PORT.
  std::string shard_id;
};

using CacheStoreServiceBase = v1::CacheStore::WithRawCallbackMethod_Put<
    v1::CacheStore::WithRawCallbackMethod_Fetch<v1::CacheStore::CallbackService>>;

class CacheStoreService final : public CacheStoreServiceBase {
 public:
  CacheStoreService(BlockStore* store, const TenantAuthenticator* auth, StoreMetrics* metrics,
                    CacheStoreServiceOptions options = {});

  grpc::ServerUnaryReactor* Lookup(grpc::CallbackServerContext* ctx,
                                   const v1::LookupRequest* request,
                                   v1::LookupResponse* response) override;
  // Raw: PutRequest messages in, a PutResponse out.
  grpc::ServerReadReactor<grpc::ByteBuffer>* Put(grpc::CallbackServerContext* ctx,
                                                 grpc::ByteBuffer* response) override;
  // Raw: a FetchRequest in, FetchResponse messages out.
  grpc::ServerWriteReactor<grpc::ByteBuffer>* Fetch(grpc::CallbackServerContext* ctx,
                                                    const grpc::ByteBuffer* request) override;
  grpc::ServerUnaryReactor* Release(grpc::CallbackServerContext* ctx,
                                    const v1::ReleaseRequest* request,
                                    v1::ReleaseResponse* response) override;
  grpc::ServerUnaryReactor* Pin(grpc::CallbackServerContext* ctx, const v1::PinRequest* request,
                                v1::PinResponse* response) override;
  grpc::ServerUnaryReactor* Unpin(grpc::CallbackServerContext* ctx, const v1::UnpinRequest* request,
                                  v1::UnpinResponse* response) override;
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* ctx,
                                   const v1::DeleteRequest* request,
                                   v1::DeleteResponse* response) override;
  grpc::ServerUnaryReactor* Stats(grpc::CallbackServerContext* ctx, const v1::StatsRequest* request,
                                  v1::StatsResponse* response) override;
  grpc::ServerWriteReactor<v1::WatchEventsResponse>* WatchEvents(
      grpc::CallbackServerContext* ctx, const v1::WatchEventsRequest* request) override;

  // Names this store for Stats (before it serves).
  void set_shard_id(std::string id) { options_.shard_id = std::move(id); }
  const std::string& shard_id() const { return options_.shard_id; }

 private:
  // Authenticates, runs body(tenant), records metrics and finishes the call.
  template <typename Body>
  grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* ctx, StoreRpc rpc, Body body);

  BlockStore* store_;
  const TenantAuthenticator* auth_;
  StoreMetrics* metrics_;
  CacheStoreServiceOptions options_;
};

}  // namespace kvtier

#endif  // KVTIER_SERVICES_CACHE_STORE_SERVICE_H_
