#include "client/shared_memory_region.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "client/shm_attach.h"

namespace kvtier {
absl::StatusOr<std::unique_ptr<SharedMemoryRegion>> SharedMemoryRegion::Create(uint64_t bytes) {
  if (bytes == 0) return absl::InvalidArgumentError("a shared-memory region needs a size");
  const int fd = ::memfd_create("kvtier-region", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) {
    return absl::ResourceExhaustedError(absl::StrCat("memfd_create: ", std::strerror(errno)));
  }
  void* p = MAP_FAILED;
  auto fail = [&](const char* what, int err) {
    if (p != MAP_FAILED) ::munmap(p, bytes);
    ::close(fd);
    return absl::ResourceExhaustedError(
        absl::StrCat(what, " a ", bytes, "-byte shared-memory region: ", std::strerror(err)));
  };
  if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0) return fail("cannot size", errno);
  // Reserved now: a full memory budget fails here rather than with a SIGBUS on first touch,
  // and the store accepts only regions whose pages all exist.
  if (const int err = ::posix_fallocate(fd, 0, static_cast<off_t>(bytes)); err != 0) {
    return fail("cannot reserve", err);
  }
  // Neither side can ever resize it: the store's mapping stays valid whatever this
  // process does.
  if (::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    return fail("cannot seal", errno);
  }
  p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
  if (p == MAP_FAILED) return fail("cannot map", errno);
  return std::unique_ptr<SharedMemoryRegion>(
      new SharedMemoryRegion(fd, static_cast<uint8_t*>(p), bytes));
}

SharedMemoryRegion::~SharedMemoryRegion() {
  {
    absl::MutexLock lock(&mu_);
    for (const Attachment& a : attachments_) ::close(a.connection);
    attachments_.clear();
  }
  ::munmap(data_, size_);
  ::close(fd_);
}

int64_t SharedMemoryRegion::OffsetOf(std::span<const uint8_t> span) const {
  const uint8_t* p = span.data();
  if (p < data_ || p > data_ + size_ || span.size() > static_cast<uint64_t>(data_ + size_ - p)) {
    return -1;
  }
  return p - data_;
}

absl::StatusOr<std::string> SharedMemoryRegion::AttachTo(const std::string& socket_path,
                                                         const std::string& tenant,
                                                         const std::string& auth_token,
                                                         absl::Duration timeout) const {
  const std::string key =
      absl::StrCat(socket_path, std::string(1, '\0'), tenant, std::string(1, '\0'), auth_token);
  absl::MutexLock lock(&mu_);  // attaches are rare: one at a time is fine
  for (const Attachment& a : attachments_) {
    if (a.key == key) return a.id;
  }
  absl::StatusOr<ShmAttachment> attached =
      AttachMemfd(socket_path, fd_, tenant, auth_token, timeout);
  if (!attached.ok()) return attached.status();
  attachments_.push_back(
      {.key = key, .connection = attached->connection, .id = attached->region_id});
  return attached->region_id;
}

}  // namespace kvtier
