// LocalStore: a kvtier-store (the real engine, service and gRPC server) in the benchmark's
// own process, serving on a loopback port, T1 only, sized for `blocks` blocks of
// `block_bytes`. `same_node` turns on the same-node data plane, its attach socket in a
// fresh temporary directory (removed with the store). What the ttft and fetch benchmarks
// talk to.
#ifndef KVTIER_BENCH_LOCAL_STORE_H_
#define KVTIER_BENCH_LOCAL_STORE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "cache_store/block_store.h"
#include "client/cache_store_client.h"
#include "services/store_metrics.h"
#include "services/store_server.h"
#include "services/tenant_auth.h"

namespace kvtier::bench {

class LocalStore {
 public:
  static absl::StatusOr<std::unique_ptr<LocalStore>> Start(uint64_t block_bytes, uint64_t blocks,
                                                           bool same_node = false);
  ~LocalStore();
  std::string target() const;
  // Client options that reach this store (and its same-node socket, when on).
  ClientOptions client_options() const;

 private:
  LocalStore() = default;
  std::string socket_dir_;  // empty: no same-node plane
  std::unique_ptr<BlockStore> store_;
  std::unique_ptr<TenantAuthenticator> auth_;
  std::unique_ptr<StoreMetrics> metrics_;
  std::unique_ptr<StoreServer> server_;
};

}  // namespace kvtier::bench

#endif  // KVTIER_BENCH_LOCAL_STORE_H_
