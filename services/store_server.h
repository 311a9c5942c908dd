// StoreServer: a running kvtier-store gRPC server: the CacheStore service plus
// grpc.health.v1 and reflection, with message-size limits, keepalive and a bounded
// thread quota, and, with a shm_socket, the same-node data plane (the attach socket, the
// attached regions and the copy threads; services/shm_regions.h). Used by the
// kvtier-store binary and by in-process tests.
//
// Shutdown drains: health turns NOT_SERVING, watch streams end, new calls are refused,
// calls in flight get until the drain deadline to finish and are cancelled after it.
// Thread-safe; the store, authenticator and metrics must outlive the server.
#ifndef KVTIER_SERVICES_STORE_SERVER_H_
#define KVTIER_SERVICES_STORE_SERVER_H_

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/cache_store_service.h"
#include "services/shm_attach_server.h"
#include "services/shm_regions.h"
#include "services/transfer_pool.h"

namespace kvtier {

struct StoreServerOptions {
  std::string listen = "0.0.0.0:50051";
  // Largest gRPC message accepted or sent; Put chunks and Fetch chunks must fit.
  int max_message_bytes = 16 << 20;
  // Threads gRPC may use for this server (ResourceQuota).
  int max_threads = 64;
  absl::Duration keepalive_time = absl::Seconds(30);
  absl::Duration keepalive_timeout = absl::Seconds(10);
  // CacheStoreService options; its shm_regions and transfer_pool are set by Start.
  CacheStoreServiceOptions service;
  // The same-node data plane: its attach socket (shm_attach.path; empty: off) and the
  // limits on what clients attach.
  ShmAttachServerOptions shm_attach;
  ShmRegionsOptions shm_regions;
  // Threads that copy same-node payloads (<= 0: one per core).
  int transfer_threads = 0;
  // Listening credentials (services/server_credentials.h); null: plaintext.
  std::shared_ptr<grpc::ServerCredentials> credentials;
};

// The transport settings of a kvtier-store server (message sizes, keepalive, thread
// quota): what StoreServer::Start applies, and what benchmarks apply to their own servers
// so that they measure gRPC as the store runs it.
void ConfigureServerBuilder(grpc::ServerBuilder& builder, const StoreServerOptions& options);

class StoreServer {
 public:
  // UNAVAILABLE when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<StoreServer>> Start(BlockStore* store,
                                                            const TenantAuthenticator* auth,
                                                            StoreMetrics* metrics,
                                                            const StoreServerOptions& options);
  ~StoreServer();

  // The bound port (useful with port 0).
  int port() const { return port_; }
  // The name sharded clients place blocks by (StatsResponse.shard_id).
  const std::string& shard_id() const { return service_->shard_id(); }
  void Shutdown(absl::Duration drain);
  void Wait() { server_->Wait(); }

 private:
  StoreServer() = default;

  BlockStore* store_ = nullptr;
  // Declared before the server, so that they outlive every call that uses them.
  std::unique_ptr<ShmRegions> shm_regions_;
  std::unique_ptr<TransferPool> transfer_pool_;
  std::unique_ptr<CacheStoreService> service_;
  std::unique_ptr<ShmAttachServer> shm_attach_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace kvtier

#endif  // KVTIER_SERVICES_STORE_SERVER_H_
