#include "services/store_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace kvtier {

void ConfigureServerBuilder(grpc::ServerBuilder& builder, const StoreServerOptions& options) {
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS,
                             static_cast<int>(absl::ToInt64Milliseconds(options.keepalive_time)));
  builder.AddChannelArgument(
      GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
      static_cast<int>(absl::ToInt64Milliseconds(options.keepalive_timeout)));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // Let clients ping as often as every 10 s without being told to go away.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  grpc::ResourceQuota quota("kvtier-store");
  quota.SetMaxThreads(options.max_threads);
  builder.SetResourceQuota(quota);
}

absl::StatusOr<std::unique_ptr<StoreServer>> StoreServer::Start(BlockStore* store,
                                                                const TenantAuthenticator* auth,
                                                                StoreMetrics* metrics,
                                                                const StoreServerOptions& options) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  std::unique_ptr<StoreServer> server(new StoreServer());
  server->store_ = store;
  CacheStoreServiceOptions service_options = options.service;
  if (!options.shm_attach.path.empty()) {
    server->shm_regions_ = std::make_unique<ShmRegions>(options.shm_regions);
    server->transfer_pool_ = std::make_unique<TransferPool>(options.transfer_threads);
    service_options.shm_regions = server->shm_regions_.get();
    service_options.transfer_pool = server->transfer_pool_.get();
  }
  server->service_ = std::make_unique<CacheStoreService>(store, auth, metrics, service_options);

  grpc::ServerBuilder builder;
  builder.AddListeningPort(
      options.listen, options.credentials ? options.credentials : grpc::InsecureServerCredentials(),
      &server->port_);
  builder.RegisterService(server->service_.get());
  ConfigureServerBuilder(builder, options);
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.listen));
  }
  if (server->service_->shard_id().empty()) {
    // Stable across restarts where the host name and port are (a StatefulSet's pods).
    char host[256] = {};
    if (gethostname(host, sizeof(host) - 1) != 0) std::strcpy(host, "localhost");
    server->service_->set_shard_id(options.listen.rfind("unix:", 0) == 0
                                       ? absl::StrCat(host, ":", options.listen)
                                       : absl::StrCat(host, ":", server->port_));
  }
  if (!options.shm_attach.path.empty()) {
    absl::StatusOr<std::unique_ptr<ShmAttachServer>> attach =
        ShmAttachServer::Start(options.shm_attach, server->shm_regions_.get(), auth);
    if (!attach.ok()) return attach.status();
    server->shm_attach_ = *std::move(attach);
  }
  server->server_->GetHealthCheckService()->SetServingStatus(true);
  return server;
}

StoreServer::~StoreServer() { Shutdown(absl::ZeroDuration()); }

void StoreServer::Shutdown(absl::Duration drain) {
  if (shut_down_) return;
  shut_down_ = true;
  server_->GetHealthCheckService()->SetServingStatus(false);
  shm_attach_.reset();       // no new regions; attached ones stay until their calls end
  store_->events().Close();  // watch streams would otherwise hold the drain open
  server_->Shutdown(absl::ToChronoTime(absl::Now() + drain));
}

}  // namespace kvtier
