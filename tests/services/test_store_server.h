// An in-process kvtier-store on a loopback port for integration tests: the real engine,
// service, metrics and server, with the engine on a ManualClock.
#ifndef KVTIER_TESTS_SERVICES_TEST_STORE_SERVER_H_
#define KVTIER_TESTS_SERVICES_TEST_STORE_SERVER_H_

#include <functional>
#include <memory>
#include <string>

#include "cache_store/block_store.h"
#include "cache_store/clock.h"
#include "services/store_metrics.h"
#include "services/store_server.h"
#include "services/tenant_auth.h"

namespace kvtier::testing {

struct TestStoreOptions {
  uint64_t t1_bytes = uint64_t{64} << 20;
  uint64_t min_slot_bytes = 256;  // T1 blocks of at most this size take a slot of it
  std::string auth_token_file;  // empty: insecure (x-kvtier-tenant)
  bool same_node = false;       // the same-node data plane, its socket in a temp directory
  int transfer_threads = 0;
  absl::Duration shm_attach_timeout = absl::Seconds(5);
  ShmRegionsOptions shm_regions;
  // T2 in a directory of its own when t2_bytes > 0, with the tests' fault injector.
  uint64_t t2_bytes = 0;
  std::function<absl::Status(bool write, uint32_t slot)> t2_fault_injector;
  int t2_read_threads = 8;  // 1: reads in the order they are issued
};

class TestStoreServer {
 public:
  explicit TestStoreServer(const TestStoreOptions& options = {});
  ~TestStoreServer();

  std::string target() const { return "127.0.0.1:" + std::to_string(server_->port()); }
  // The same-node attach socket; empty without same_node.
  const std::string& shm_socket() const { return shm_socket_; }
  BlockStore& store() { return *store_; }
  ManualClock& clock() { return clock_; }
  StoreServer& server() { return *server_; }

 private:
  std::string socket_dir_;
  std::string t2_dir_;
  std::string shm_socket_;
  ManualClock clock_;
  std::unique_ptr<BlockStore> store_;
  std::unique_ptr<TenantAuthenticator> auth_;
  std::unique_ptr<StoreMetrics> metrics_;
  std::unique_ptr<StoreServer> server_;
};

}  // namespace kvtier::testing

#endif  // KVTIER_TESTS_SERVICES_TEST_STORE_SERVER_H_
