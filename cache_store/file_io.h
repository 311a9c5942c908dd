// Full-length positional file I/O: pwrite/pread that retry on EINTR and partial transfers,
// with errors that name the file. A short read (the file ends first) is DATA_LOSS; a full
// disk is RESOURCE_EXHAUSTED; other failures are UNAVAILABLE. Used by the T2 slab and by
// the store's same-node delivery (services/shm_writer.h).
#ifndef KVTIER_CACHE_STORE_FILE_IO_H_
#define KVTIER_CACHE_STORE_FILE_IO_H_

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "absl/status/status.h"

namespace kvtier {

// `what` ("cannot write") and `path` name the failure; `err` is the errno.
absl::Status IoError(const std::string& what, const std::string& path, int err);
absl::Status PwriteAll(int fd, const uint8_t* p, size_t n, uint64_t off, const std::string& path);
// Writes two buffers back to back at `off` in one system call (retrying what is left after
// a short write).
absl::Status Pwrite2All(int fd, const uint8_t* a, size_t a_n, const uint8_t* b, size_t b_n,
                        uint64_t off, const std::string& path);
// Writes the buffers back to back at `off` (at most IOV_MAX of them) in as few system calls
// as the kernel allows.
absl::Status PwritevAll(int fd, std::span<const iovec> buffers, uint64_t off,
                        const std::string& path);
absl::Status PreadAll(int fd, uint8_t* p, size_t n, uint64_t off, const std::string& path);

}  // namespace kvtier

#endif  // KVTIER_CACHE_STORE_FILE_IO_H_
