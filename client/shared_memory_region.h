// SharedMemoryRegion: the client's side of the same-node data plane (docs/api.md
// "Same-node data plane"). Memory of this process that a kvtier-store on the same node can
// copy blocks into (Fetch) and out of (Put) directly, so payloads never cross a socket: one
// copy on the store's side, none on the client's.
//
// The region is a memfd: created with its pages reserved (fallocate, so a full memory
// budget fails here, not later), sealed against shrinking and growing, and mapped
// read-write here. It is attached to a store by handing the memfd over the store's Unix
// socket (--shm_socket, SCM_RIGHTS) with the caller's credentials; the store maps it too
// and binds it to the caller's tenant. The attach connection stays open for the region's
// life: destroying the region (or the process dying) closes it and the store forgets the
// region. No file is ever created, so nothing is left behind on any exit.
//
// Memory is host memory like any mmap: a worker can use a region as its page pool or,
// registered with CUDA, as pinned restore staging. Not copyable; thread-safe.
#ifndef KVTIER_CLIENT_SHARED_MEMORY_REGION_H_
#define KVTIER_CLIENT_SHARED_MEMORY_REGION_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace kvtier {

class SharedMemoryRegion {
 public:
  // RESOURCE_EXHAUSTED when the memory cannot be reserved or mapped.
  static absl::StatusOr<std::unique_ptr<SharedMemoryRegion>> Create(uint64_t bytes);
  // Detaches from every store (closes the attach connections), then unmaps.
  ~SharedMemoryRegion();
  SharedMemoryRegion(const SharedMemoryRegion&) = delete;
  SharedMemoryRegion& operator=(const SharedMemoryRegion&) = delete;

  uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  // Where `span` starts in the region, or -1 if it does not lie wholly inside it.
  int64_t OffsetOf(std::span<const uint8_t> span) const;

  // The region's id at the store listening on `socket_path`, for these credentials (as the
  // gRPC calls send them), attaching it on first use. UNAVAILABLE when no store answers on
  // the socket (none on this node, or not the same directory), or the store's own error
  // (e.g. UNAUTHENTICATED, RESOURCE_EXHAUSTED). Failures are not remembered.
  absl::StatusOr<std::string> AttachTo(const std::string& socket_path, const std::string& tenant,
                                       const std::string& auth_token, absl::Duration timeout) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // The memfd (for tests that play a misbehaving client).
  int fd() const { return fd_; }

 private:
  struct Attachment {
    std::string key;  // socket path and credentials
    int connection = -1;
    std::string id;
  };
  SharedMemoryRegion(int fd, uint8_t* data, uint64_t size) : fd_(fd), data_(data), size_(size) {}

  const int fd_;
  uint8_t* const data_;
  const uint64_t size_;
  mutable absl::Mutex mu_;
  mutable std::vector<Attachment> attachments_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kvtier

#endif  // KVTIER_CLIENT_SHARED_MEMORY_REGION_H_
