#include "client/connect_store.h"

#include "client/cache_store_client.h"
#include "client/shard_endpoints.h"
#include "client/sharded_client.h"

namespace kvtier {

absl::StatusOr<std::shared_ptr<StoreClient>> ConnectStore(const ClientOptions& options,
                                                          const ClusterOptions& cluster) {
  if (options.target.empty()) return absl::InvalidArgumentError("no store target");
  if (!ShardEndpoints::IsCluster(options.target)) {
    return std::make_shared<CacheStoreClient>(options);
  }
  ShardedClientOptions o;
  o.targets = options.target;
  o.shard = options;
  o.replication = cluster.replication;
  o.shm_socket_dir = cluster.shm_socket_dir;
  absl::StatusOr<std::unique_ptr<ShardedClient>> client = ShardedClient::Create(std::move(o));
  if (!client.ok()) return client.status();
  return std::shared_ptr<StoreClient>(*std::move(client));
}

}  // namespace kvtier
