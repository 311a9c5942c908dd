#include "services/shm_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cache_store/file_io.h"

namespace kvtier {
namespace {

bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 200 || name[0] == '.') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

}  // namespace

absl::StatusOr<std::unique_ptr<ShmWriter>> ShmWriter::Open(const std::string& dir,
                                                           const std::string& name) {
  if (dir.empty()) {
    return absl::FailedPreconditionError(
        "this store serves no same-node shared memory (start it with --shm_dir)");
  }
  if (!ValidName(name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "shared-memory name '", name,
        "' must be a plain file name (letters, digits, '.', '_', '-'; not starting with '.')"));
  }
  const std::string path = absl::StrCat(dir, "/", name);
  const int fd = ::open(path.c_str(), O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    const std::string why = absl::StrCat("cannot open ", path, ": ", std::strerror(err));
    if (err == ENOENT) return absl::NotFoundError(why);
    if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(why);
    return absl::InvalidArgumentError(why);  // ELOOP (a link), EISDIR, ...
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a regular file"));
  }
  return std::unique_ptr<ShmWriter>(new ShmWriter(fd, static_cast<uint64_t>(st.st_size), name));
}

ShmWriter::~ShmWriter() { ::close(fd_); }

absl::Status ShmWriter::CheckPlacement(std::span<const uint64_t> offsets,
                                       std::span<const BlockView> blocks) const {
  if (offsets.size() < blocks.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the fetch has ", blocks.size(), " blocks but shm names ", offsets.size(), " offsets"));
  }
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  for (size_t i = 0; i < blocks.size(); ++i) {
    if (offsets[i] > size_ || blocks[i].size > size_ - offsets[i]) {
      return absl::InvalidArgumentError(absl::StrCat("block ", i, " (", blocks[i].size,
                                                     " bytes) does not fit at offset ", offsets[i],
                                                     " of '", name_, "' (", size_, " bytes)"));
    }
    spans.emplace_back(offsets[i], offsets[i] + blocks[i].size);
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i) {
    if (spans[i].first < spans[i - 1].second) {
      return absl::InvalidArgumentError(
          absl::StrCat("shm offsets overlap at byte ", spans[i].first));
    }
  }
  return absl::OkStatus();
}

absl::Status ShmWriter::Write(uint64_t offset, std::span<const uint8_t> data) const {
  return PwriteAll(fd_, data.data(), data.size(), offset, name_);
}

}  // namespace kvtier
