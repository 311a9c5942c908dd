#include "cache_store/file_io.h"

#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"

namespace kvtier {

absl::Status IoError(const std::string& what, const std::string& path, int err) {
  const std::string msg = absl::StrCat(what, " ", path, ": ", std::strerror(err));
  if (err == ENOSPC || err == EFBIG || err == EDQUOT) return absl::ResourceExhaustedError(msg);
  return absl::UnavailableError(msg);
}

absl::Status PwriteAll(int fd, const uint8_t* p, size_t n, uint64_t off, const std::string& path) {
  while (n > 0) {
    ssize_t w = pwrite(fd, p, n, static_cast<off_t>(off));
    if (w < 0) {
      if (errno == EINTR) continue;
      return IoError("cannot write", path, errno);
    }
    if (w == 0) return IoError("cannot write", path, ENOSPC);
    p += w;
    n -= static_cast<size_t>(w);
    off += static_cast<uint64_t>(w);
  }
  return absl::OkStatus();
}

absl::Status Pwrite2All(int fd, const uint8_t* a, size_t a_n, const uint8_t* b, size_t b_n,
                        uint64_t off, const std::string& path) {
  const iovec iov[2] = {{const_cast<uint8_t*>(a), a_n}, {const_cast<uint8_t*>(b), b_n}};
  return PwritevAll(fd, iov, off, path);
}

absl::Status PwritevAll(int fd, std::span<const iovec> buffers, uint64_t off,
                        const std::string& path) {
  std::vector<iovec> left(buffers.begin(), buffers.end());
  size_t first = 0;
  while (first < left.size()) {
    const ssize_t w = pwritev(fd, left.data() + first, static_cast<int>(left.size() - first),
                              static_cast<off_t>(off));
    if (w < 0) {
      if (errno == EINTR) continue;
      return IoError("cannot write", path, errno);
    }
    if (w == 0) return IoError("cannot write", path, ENOSPC);
    auto done = static_cast<size_t>(w);
    off += done;
    while (first < left.size() && done >= left[first].iov_len) done -= left[first++].iov_len;
    if (first < left.size()) {
      left[first].iov_base = static_cast<uint8_t*>(left[first].iov_base) + done;
      left[first].iov_len -= done;
    }
  }
  return absl::OkStatus();
}

absl::Status PreadAll(int fd, uint8_t* p, size_t n, uint64_t off, const std::string& path) {
  while (n > 0) {
    ssize_t r = pread(fd, p, n, static_cast<off_t>(off));
    if (r < 0) {
      if (errno == EINTR) continue;
      return IoError("cannot read", path, errno);
    }
    if (r == 0) {
      return absl::DataLossError(
          absl::StrCat("short read at offset ", off, " of ", path, ": the slab was truncated"));
    }
    p += r;
    n -= static_cast<size_t>(r);
    off += static_cast<uint64_t>(r);
  }
  return absl::OkStatus();
}

}  // namespace kvtier
