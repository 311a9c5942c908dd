#include "tests/services/test_store_server.h"

#include <stdlib.h>

#include <filesystem>

#include "cache_store/log.h"

namespace kvtier::testing {

TestStoreServer::TestStoreServer(const TestStoreOptions& options) {
  BlockStoreOptions o;
  o.t1 = {.capacity_bytes = options.t1_bytes,
          .min_slot_bytes = options.min_slot_bytes,
          .lock_mode = MemoryLockMode::kNone};
  o.clock = &clock_;
  if (options.t2_bytes > 0) {
    char pattern[] = "/tmp/kvtier_test_t2_XXXXXX";
    KVTIER_CHECK(mkdtemp(pattern) != nullptr) << "cannot create a T2 directory";
    t2_dir_ = pattern;
    o.t2 = {.directory = t2_dir_,
            .capacity_bytes = options.t2_bytes,
            .fault_injector = options.t2_fault_injector};
    o.t2_admit_min_score = 0;
    o.t2_admit_min_return = 0;
    o.t2_read_threads = options.t2_read_threads;
  }
  absl::StatusOr<std::unique_ptr<BlockStore>> store = BlockStore::Create(o);
  KVTIER_CHECK(store.ok()) << store.status();
  store_ = *std::move(store);
  if (options.auth_token_file.empty()) {
    auth_ = TenantAuthenticator::Insecure();
  } else {
    absl::StatusOr<std::unique_ptr<TenantAuthenticator>> auth =
        TenantAuthenticator::FromTokenFile(options.auth_token_file);
    KVTIER_CHECK(auth.ok()) << auth.status();
    auth_ = *std::move(auth);
  }
  metrics_ = std::make_unique<StoreMetrics>(store_.get());
  StoreServerOptions so;
  so.listen = "127.0.0.1:0";
  if (options.same_node) {
    char dir[] = "/tmp/kvtier-test-XXXXXX";
    KVTIER_CHECK(mkdtemp(dir) != nullptr) << "cannot create a temporary directory";
    socket_dir_ = dir;
    shm_socket_ = socket_dir_ + "/shm.sock";
    so.shm_attach.path = shm_socket_;
    so.shm_attach.request_timeout = options.shm_attach_timeout;
    so.shm_regions = options.shm_regions;
    so.transfer_threads = options.transfer_threads;
  }
  absl::StatusOr<std::unique_ptr<StoreServer>> server =
      StoreServer::Start(store_.get(), auth_.get(), metrics_.get(), so);
  KVTIER_CHECK(server.ok()) << server.status();
  server_ = *std::move(server);
}

TestStoreServer::~TestStoreServer() {
  server_->Shutdown(absl::Seconds(1));
  server_.reset();
  metrics_.reset();
  auth_.reset();
  store_.reset();  // its T2 writes end before the directory goes
  if (!socket_dir_.empty()) std::filesystem::remove_all(socket_dir_);
  if (!t2_dir_.empty()) std::filesystem::remove_all(t2_dir_);
}

}  // namespace kvtier::testing
