#include "bench/local_store.h"

#include <stdlib.h>

#include <filesystem>

#include "absl/strings/str_format.h"

namespace kvtier::bench {

absl::StatusOr<std::unique_ptr<LocalStore>> LocalStore::Start(uint64_t block_bytes, uint64_t blocks,
                                                              bool same_node) {
  auto s = std::unique_ptr<LocalStore>(new LocalStore());
  BlockStoreOptions o;
  o.t1 = {.capacity_bytes = block_bytes * blocks,
          .min_slot_bytes = block_bytes,
          .lock_mode = MemoryLockMode::kNone};
  absl::StatusOr<std::unique_ptr<BlockStore>> store = BlockStore::Create(o);
  if (!store.ok()) return store.status();
  s->store_ = *std::move(store);
  s->auth_ = TenantAuthenticator::Insecure();
  s->metrics_ = std::make_unique<StoreMetrics>(s->store_.get());
  StoreServerOptions so;
  so.listen = "127.0.0.1:0";
  if (same_node) {
    char dir[] = "/tmp/kvtier-bench-XXXXXX";
    if (mkdtemp(dir) == nullptr) return absl::InternalError("cannot create a temporary directory");
    s->socket_dir_ = dir;
    so.shm_attach.path = s->socket_dir_ + "/shm.sock";
  }
  absl::StatusOr<std::unique_ptr<StoreServer>> server =
      StoreServer::Start(s->store_.get(), s->auth_.get(), s->metrics_.get(), so);
  if (!server.ok()) return server.status();
  s->server_ = *std::move(server);
  return s;
}

LocalStore::~LocalStore() {
  if (server_ != nullptr) server_->Shutdown(absl::Seconds(1));
  server_.reset();
  if (!socket_dir_.empty()) std::filesystem::remove_all(socket_dir_);
}

std::string LocalStore::target() const { return absl::StrFormat("127.0.0.1:%d", server_->port()); }

ClientOptions LocalStore::client_options() const {
  ClientOptions o;
  o.target = target();
  if (!socket_dir_.empty()) o.shm_socket = socket_dir_ + "/shm.sock";
  return o;
}

}  // namespace kvtier::bench
