// SharedMemoryRegion: the client's side of same-node delivery (services/shm_writer.h). A
// file created in a shared-memory directory (default /dev/shm; it must be the store's
// --shm_dir as seen from the store), mapped read-write into this process, and removed when
// the region is destroyed. Give a Fetch buffers inside the region with FetchParams.shm and
// the store writes the blocks straight into them: the payload does not cross the socket,
// and the client still verifies every range's checksum before reporting it.
//
// The file is created with O_EXCL, mode 0600 (the store must run as the same user) and a
// random name (kvtier-<pid>-<128 random bits>), so no other client can guess it. Memory is
// host memory like any mmap: a worker can use it as its page pool or, registered with
// CUDA, as pinned restore staging. Not copyable; thread-compatible.
//
// Files never outlive their owner for long: the region holds an exclusive flock on its file
// for its whole life (taken before the file gets its kvtier-* name: it is built as
// .kvtier-*, then renamed), and Create first removes every kvtier-* file of the directory whose
// lock is free (its owner died: SIGKILL, a crash, a container restart), so a restarted
// worker reclaims what a dead one left. UnlinkSharedMemoryRegions() removes this
// process's files at once, for servers that exit without running destructors.
#ifndef KVTIER_CLIENT_SHARED_MEMORY_REGION_H_
#define KVTIER_CLIENT_SHARED_MEMORY_REGION_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "absl/status/statusor.h"

namespace kvtier {

class SharedMemoryRegion {
 public:
  static absl::StatusOr<std::unique_ptr<SharedMemoryRegion>> Create(const std::string& dir,
                                                                    uint64_t bytes);
  ~SharedMemoryRegion();
  SharedMemoryRegion(const SharedMemoryRegion&) = delete;
  SharedMemoryRegion& operator=(const SharedMemoryRegion&) = delete;

  uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  // The file name (no directory): what FetchRequest.shm names.
  const std::string& name() const { return name_; }
  // Where `span` starts in the region, or -1 if it does not lie wholly inside it.
  int64_t OffsetOf(std::span<const uint8_t> span) const;

 private:
  SharedMemoryRegion(std::string path, std::string name, int fd, uint8_t* data, uint64_t size)
      : path_(std::move(path)), name_(std::move(name)), fd_(fd), data_(data), size_(size) {}
  const std::string path_, name_;
  const int fd_;  // holds the flock
  uint8_t* const data_;
  const uint64_t size_;
};

// Removes the files of every live region of this process now (the mappings stay valid; no
// store can name them any more). For a clean exit that skips destructors.
void UnlinkSharedMemoryRegions();
// Removes the kvtier-* files of `dir` whose owner is gone (their flock is free); returns how
// many. Create does this itself.
int RemoveStaleSharedMemory(const std::string& dir);

}  // namespace kvtier

#endif  // KVTIER_CLIENT_SHARED_MEMORY_REGION_H_
