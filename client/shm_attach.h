// The client's side of the same-node attach protocol (proto/kvtier/v1/same_node.proto):
// hands a memfd to the store listening on `socket_path` with the caller's credentials and
// returns the region's id and the open connection that keeps it attached. Used by
// SharedMemoryRegion; tests use it to hand the store descriptors a well-behaved client
// would not.
#ifndef KVTIER_CLIENT_SHM_ATTACH_H_
#define KVTIER_CLIENT_SHM_ATTACH_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace kvtier {

struct ShmAttachment {
  int connection = -1;  // the caller's to close: closing it detaches the region
  std::string region_id;
  uint64_t size_bytes = 0;
};

// UNAVAILABLE when no store answers on the socket, DEADLINE_EXCEEDED when it does not
// answer in time, else the store's own refusal (its code and message).
absl::StatusOr<ShmAttachment> AttachMemfd(const std::string& socket_path, int memfd,
                                          const std::string& tenant, const std::string& auth_token,
                                          absl::Duration timeout);

}  // namespace kvtier

#endif  // KVTIER_CLIENT_SHM_ATTACH_H_
