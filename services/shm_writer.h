// ShmWriter: the store's side of same-node delivery. A client on the same node creates a
// file in a shared-memory directory (the store's --shm_dir, e.g. /dev/shm) and names it in
// FetchRequest.shm; the store opens that file and writes the fetched blocks into it at the
// client's offsets, so the payload never crosses a socket. The store only ever pwrite()s
// into the file: it never maps it, so a client that truncates its file cannot crash the
// store (a write past the end grows the file, bounded by the offsets checked at open).
//
// Names are plain file names (letters, digits, '.', '_', '-', not starting with '.'),
// opened with O_NOFOLLOW inside the directory: a client cannot point the store at any other
// file. Thread-compatible.
#ifndef KVTIER_SERVICES_SHM_WRITER_H_
#define KVTIER_SERVICES_SHM_WRITER_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "absl/status/statusor.h"
#include "cache_store/block_store.h"

namespace kvtier {

class ShmWriter {
 public:
  // FAILED_PRECONDITION when `dir` is empty (same-node delivery is off), INVALID_ARGUMENT
  // for a bad name, NOT_FOUND / PERMISSION_DENIED / INTERNAL when it cannot be opened (with
  // the system's reason), INVALID_ARGUMENT when it is not a regular file.
  static absl::StatusOr<std::unique_ptr<ShmWriter>> Open(const std::string& dir,
                                                         const std::string& name);
  ~ShmWriter();
  ShmWriter(const ShmWriter&) = delete;
  ShmWriter& operator=(const ShmWriter&) = delete;

  // INVALID_ARGUMENT unless there is an offset for every block (offsets[i] for block i;
  // extra ones are ignored) and every block fits in the file at its offset without
  // overlapping another.
  absl::Status CheckPlacement(std::span<const uint64_t> offsets,
                              std::span<const BlockView> blocks) const;
  // Writes all of `data` at `offset` of the file.
  absl::Status Write(uint64_t offset, std::span<const uint8_t> data) const;

 private:
  ShmWriter(int fd, uint64_t size, std::string name)
      : fd_(fd), size_(size), name_(std::move(name)) {}
  const int fd_;
  const uint64_t size_;
  const std::string name_;
};

}  // namespace kvtier

#endif  // KVTIER_SERVICES_SHM_WRITER_H_
