// ShmAttachServer: the Unix socket (kvtier-store --shm_socket) on which clients on the
// store's node attach memory regions for the same-node data plane
// (proto/kvtier/v1/same_node.proto, services/shm_regions.h).
//
// One thread serves every connection with poll(), never blocking on a client: a
// connection must send its one request (with the memfd) within the request timeout or is
// closed; one that sends anything after it, hangs up or dies detaches its region. The
// credentials in the request are checked by the same TenantAuthenticator as gRPC calls.
// At most `max_connections` are open at once; more are refused. The socket file is made
// with mode 0660 (same-node clients run as the store's user or group); an existing socket
// at the path is replaced unless a live server still answers on it.
// Thread-safe; the regions and authenticator must outlive the server.
#ifndef KVTIER_SERVICES_SHM_ATTACH_SERVER_H_
#define KVTIER_SERVICES_SHM_ATTACH_SERVER_H_

#include <cstddef>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/shm_regions.h"
#include "services/tenant_auth.h"

namespace kvtier {

struct ShmAttachServerOptions {
  std::string path;
  absl::Duration request_timeout = absl::Seconds(5);
  size_t max_connections = 1024;
};

class ShmAttachServer {
 public:
  // FAILED_PRECONDITION when the path is taken (a live server, or a file that is not a
  // socket) or cannot be bound, naming the path and the reason.
  static absl::StatusOr<std::unique_ptr<ShmAttachServer>> Start(
      const ShmAttachServerOptions& options, ShmRegions* regions, const TenantAuthenticator* auth);
  // Closes every connection (detaching their regions) and removes the socket file.
  ~ShmAttachServer();
  ShmAttachServer(const ShmAttachServer&) = delete;
  ShmAttachServer& operator=(const ShmAttachServer&) = delete;

 private:
  struct Connection;
  ShmAttachServer(ShmAttachServerOptions options, int listen_fd, int wake_fd, ShmRegions* regions,
                  const TenantAuthenticator* auth);
  void Loop();
  // Reads and answers the attach request of `c`; false when the connection is to close.
  bool Serve(Connection& c);

  const ShmAttachServerOptions options_;
  const int listen_fd_;
  const int wake_fd_;
  ShmRegions* const regions_;
  const TenantAuthenticator* const auth_;
  std::thread thread_;
};

}  // namespace kvtier

#endif  // KVTIER_SERVICES_SHM_ATTACH_SERVER_H_
