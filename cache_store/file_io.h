// Full-length positional file I/O: pwrite/pread that retry on EINTR and partial transfers,
// with errors that name the file. A short read (the file ends first) is DATA_LOSS; a full
// disk is RESOURCE_EXHAUSTED; other failures are UNAVAILABLE. Used by the T2 slab and by
// the store's same-node delivery (services/shm_writer.h).
#ifndef KVTIER_CACHE_STORE_FILE_IO_H_
#define KVTIER_CACHE_STORE_FILE_IO_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace kvtier {

// `what` ("cannot write") and `path` name the failure; `err` is the errno.
absl::Status IoError(const std::string& what, const std::string& path, int err);
absl::Status PwriteAll(int fd, const uint8_t* p, size_t n, uint64_t off, const std::string& path);
absl::Status PreadAll(int fd, uint8_t* p, size_t n, uint64_t off, const std::string& path);

}  // namespace kvtier

#endif  // KVTIER_CACHE_STORE_FILE_IO_H_
