// ConnectStore: the client a --store flag asks for: one kvtier-store (CacheStoreClient)
// for a single HOST:PORT or unix:///PATH, a cluster of shards (ShardedClient) for a list
// "HOST:PORT,HOST:PORT" or a DNS name "dns:///NAME:PORT".
#ifndef KVTIER_CLIENT_CONNECT_STORE_H_
#define KVTIER_CLIENT_CONNECT_STORE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "client/store_client.h"

namespace kvtier {

struct ClusterOptions {
  // Copies of each block in a cluster (R).
  uint32_t replication = 1;
  // Same-node delivery from a cluster's stores on this node: their attach sockets as
  // <shard_id>.sock in this directory.
  std::string shm_socket_dir;
};

// INVALID_ARGUMENT for a malformed target. `options.target` is the --store value.
absl::StatusOr<std::shared_ptr<StoreClient>> ConnectStore(const ClientOptions& options,
                                                          const ClusterOptions& cluster = {});

}  // namespace kvtier

#endif  // KVTIER_CLIENT_CONNECT_STORE_H_
