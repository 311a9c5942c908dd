#include "client/shared_memory_region.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <string_view>

#include "absl/base/const_init.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"

namespace kvtier {
namespace {

constexpr std::string_view kPrefix = "kvtier-";

// The files of this process's live regions.
absl::Mutex registry_mu(absl::kConstInit);
absl::flat_hash_set<std::string>& Registry() ABSL_EXCLUSIVE_LOCKS_REQUIRED(registry_mu) {
  static auto* paths = new absl::flat_hash_set<std::string>();
  return *paths;
}

}  // namespace

int RemoveStaleSharedMemory(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return 0;
  int removed = 0;
  while (const dirent* e = ::readdir(d)) {
    const std::string_view name(e->d_name);
    if (name.substr(0, kPrefix.size()) != kPrefix) continue;
    const std::string path = absl::StrCat(dir, "/", std::string(name));
    const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat st {};
    // A free lock: its owner is gone. (Our own regions hold theirs, so they are skipped.)
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && ::flock(fd, LOCK_EX | LOCK_NB) == 0) {
      if (::unlink(path.c_str()) == 0) ++removed;
    }
    ::close(fd);
  }
  ::closedir(d);
  return removed;
}

void UnlinkSharedMemoryRegions() {
  absl::MutexLock lock(&registry_mu);
  for (const std::string& path : Registry()) ::unlink(path.c_str());
  Registry().clear();
}

absl::StatusOr<std::unique_ptr<SharedMemoryRegion>> SharedMemoryRegion::Create(
    const std::string& dir, uint64_t bytes) {
  if (dir.empty()) return absl::InvalidArgumentError("no shared-memory directory given");
  if (bytes == 0) return absl::InvalidArgumentError("a shared-memory region needs a size");
  RemoveStaleSharedMemory(dir);
  std::random_device entropy;
  const uint64_t hi = (uint64_t{entropy()} << 32) | entropy();
  const uint64_t lo = (uint64_t{entropy()} << 32) | entropy();
  const std::string name = absl::StrFormat("kvtier-%d-%016x%016x", ::getpid(), hi, lo);
  const std::string path = absl::StrCat(dir, "/", name);
  // Built under a name the sweep of other processes ignores, and renamed once locked: a
  // sweep never sees a kvtier-* file whose owner has not locked it yet.
  const std::string building = absl::StrCat(dir, "/.", name);
  const int fd = ::open(building.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot create ", building, ": ", std::strerror(errno)));
  }
  void* p = MAP_FAILED;
  auto fail = [&](const char* what) {
    const int err = errno;
    if (p != MAP_FAILED) ::munmap(p, bytes);
    ::close(fd);
    ::unlink(building.c_str());
    return absl::ResourceExhaustedError(
        absl::StrCat(what, " ", bytes, " bytes in ", building, ": ", std::strerror(err)));
  };
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) return fail("cannot lock");
  // posix_fallocate reserves the pages now, so a full tmpfs fails here rather than with a
  // SIGBUS on first touch.
  if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0) return fail("cannot size");
  if (const int err = ::posix_fallocate(fd, 0, static_cast<off_t>(bytes)); err != 0) {
    errno = err;
    return fail("cannot reserve");
  }
  p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return fail("cannot map");
  if (::rename(building.c_str(), path.c_str()) != 0) return fail("cannot publish");
  {
    absl::MutexLock lock(&registry_mu);
    Registry().insert(path);
  }
  return std::unique_ptr<SharedMemoryRegion>(
      new SharedMemoryRegion(path, name, fd, static_cast<uint8_t*>(p), bytes));
}

SharedMemoryRegion::~SharedMemoryRegion() {
  ::munmap(data_, size_);
  {
    absl::MutexLock lock(&registry_mu);
    if (Registry().erase(path_) > 0) ::unlink(path_.c_str());
  }
  ::close(fd_);
}

int64_t SharedMemoryRegion::OffsetOf(std::span<const uint8_t> span) const {
  const uint8_t* p = span.data();
  if (p < data_ || p > data_ + size_ || span.size() > static_cast<uint64_t>(data_ + size_ - p)) {
    return -1;
  }
  return p - data_;
}

}  // namespace kvtier
