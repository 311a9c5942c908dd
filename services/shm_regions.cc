#include "services/shm_regions.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"

namespace kvtier {

AttachedRegion::~AttachedRegion() { ::munmap(base_, size_); }

absl::Status AttachedRegion::CheckPlacement(std::span<const uint64_t> offsets,
                                            std::span<const uint64_t> sizes, bool disjoint) const {
  if (offsets.size() < sizes.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the call has ", sizes.size(), " blocks but shm names ", offsets.size(), " offsets"));
  }
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  spans.reserve(sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (offsets[i] > size_ || sizes[i] > size_ - offsets[i]) {
      return absl::InvalidArgumentError(absl::StrCat("block ", i, " (", sizes[i],
                                                     " bytes) does not fit at offset ", offsets[i],
                                                     " of the region (", size_, " bytes)"));
    }
    spans.emplace_back(offsets[i], offsets[i] + sizes[i]);
  }
  if (!disjoint) return absl::OkStatus();
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i) {
    if (spans[i].first < spans[i - 1].second) {
      return absl::InvalidArgumentError(
          absl::StrCat("shm offsets overlap at byte ", spans[i].first));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ShmRegions::Attach(int fd, std::string tenant) {
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError("the descriptor is not a memfd (not a regular file)");
  }
  struct statfs fs {};
  if (::fstatfs(fd, &fs) != 0 || fs.f_type != TMPFS_MAGIC) {
    // Not shmem: a file on disk, or hugetlbfs, whose pages can run out under a mapping.
    return absl::InvalidArgumentError("the descriptor is not a memfd on shared memory (shmem)");
  }
  const int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0 || (seals & F_SEAL_SHRINK) == 0) {
    return absl::InvalidArgumentError(
        "the memfd is not sealed against shrinking (F_SEAL_SHRINK): the store maps only "
        "memory that cannot be truncated under it");
  }
  if (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) {
    return absl::InvalidArgumentError("the memfd is sealed against writes; the store writes to it");
  }
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size == 0) return absl::InvalidArgumentError("the memfd is empty");
  if (static_cast<uint64_t>(st.st_blocks) * 512 < size) {
    return absl::InvalidArgumentError(
        absl::StrCat("the memfd has ", static_cast<uint64_t>(st.st_blocks) * 512, " of its ", size,
                     " bytes allocated; reserve them all (fallocate) before attaching it"));
  }
  // Reserved before mapping, so that two attaches cannot both pass the limit.
  {
    absl::MutexLock lock(&mu_);
    if (reserved_regions_ >= options_.max_regions ||
        size > options_.max_total_bytes - total_bytes_) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "attaching ", size, " bytes would pass the store's limits (", reserved_regions_, " of ",
          options_.max_regions, " regions, ", total_bytes_, " of ", options_.max_total_bytes,
          " bytes attached; --shm_max_regions, --shm_max_bytes)"));
    }
    total_bytes_ += size;
    ++reserved_regions_;
  }
  auto unreserve = [&] {
    absl::MutexLock lock(&mu_);
    total_bytes_ -= size;
    --reserved_regions_;
  };
  // Populated now, so that copies never take page faults (the pages exist already).
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
  if (p == MAP_FAILED) {
    const int err = errno;
    unreserve();
    if (err == EACCES || err == EPERM) {
      return absl::InvalidArgumentError(
          absl::StrCat("the memfd cannot be mapped read-write: ", std::strerror(err)));
    }
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot map a region of ", size, " bytes: ", std::strerror(err)));
  }
  auto region =
      std::make_shared<const AttachedRegion>(std::move(tenant), static_cast<uint8_t*>(p), size);
  std::string id(kIdBytes, '\0');
  if (::getrandom(id.data(), id.size(), 0) != static_cast<ssize_t>(id.size())) {
    unreserve();
    return absl::InternalError("getrandom failed; cannot name the region");
  }
  absl::MutexLock lock(&mu_);
  regions_.emplace(id, std::move(region));
  return id;
}

void ShmRegions::Detach(const std::string& id) {
  std::shared_ptr<const AttachedRegion> gone;  // unmapped outside the lock, if last
  absl::MutexLock lock(&mu_);
  auto it = regions_.find(id);
  if (it == regions_.end()) return;
  total_bytes_ -= it->second->size();
  --reserved_regions_;
  gone = std::move(it->second);
  regions_.erase(it);
}

absl::StatusOr<std::shared_ptr<const AttachedRegion>> ShmRegions::Find(std::string_view tenant,
                                                                       std::string_view id) const {
  absl::MutexLock lock(&mu_);
  auto it = regions_.find(absl::string_view(id.data(), id.size()));
  if (it == regions_.end() || it->second->tenant() != tenant) {
    return absl::NotFoundError(
        "no such shared-memory region is attached for this tenant (attach it over the store's "
        "--shm_socket; a region lives as long as its attach connection)");
  }
  return it->second;
}

size_t ShmRegions::attached() const {
  absl::MutexLock lock(&mu_);
  return regions_.size();
}

uint64_t ShmRegions::attached_bytes() const {
  absl::MutexLock lock(&mu_);
  return total_bytes_;
}

}  // namespace kvtier
