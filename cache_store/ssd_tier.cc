#include "cache_store/ssd_tier.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "cache_store/checksum.h"
#include "cache_store/file_io.h"
#include "cache_store/log.h"

namespace kvtier {
namespace {

constexpr uint64_t kSuperMagic = 0x31425354'5245'4954ULL;   // "TIERTSB1"
constexpr uint64_t kRecordMagic = 0x31524354'5245'4954ULL;  // "TIERTCR1"
// 2: a record's checksum is the digest of the block's layer checksums (checksum.h); slabs of
// version 1 (an XXH3 of the whole payload) are discarded.
constexpr uint32_t kVersion = 2;
constexpr size_t kCrcOffset = SsdTier::kAlign - 8;

uint64_t RoundUp(uint64_t n) {
  return (n + SsdTier::kAlign - 1) / SsdTier::kAlign * SsdTier::kAlign;
}

template <typename T>
void Put(uint8_t* buf, size_t off, T v) {
  std::memcpy(buf + off, &v, sizeof(v));
}
template <typename T>
T Get(const uint8_t* buf, size_t off) {
  T v;
  std::memcpy(&v, buf + off, sizeof(v));
  return v;
}

struct AlignedFree {
  void operator()(uint8_t* p) const { std::free(p); }
};
using AlignedBuffer = std::unique_ptr<uint8_t, AlignedFree>;
AlignedBuffer AllocAligned(size_t bytes) {
  auto* p = static_cast<uint8_t*>(std::aligned_alloc(SsdTier::kAlign, RoundUp(bytes)));
  KVTIER_CHECK(p != nullptr) << "out of memory for a " << bytes << " byte I/O buffer";
  std::memset(p, 0, RoundUp(bytes));
  return AlignedBuffer(p);
}

void EncodeSuper(uint8_t* b, uint64_t slot_bytes, uint32_t slots) {
  Put(b, 0, kSuperMagic);
  Put(b, 8, kVersion);
  Put(b, 16, slot_bytes);
  Put(b, 24, slots);
  Put(b, kCrcOffset, RangeChecksum(b, kCrcOffset));
}

void EncodeRecord(uint8_t* b, const SsdRecord& r) {
  std::memset(b, 0, SsdTier::kAlign);
  Put(b, 0, kRecordMagic);
  Put(b, 8, kVersion);
  Put<uint32_t>(b, 12, r.parent ? 1 : 0);
  std::memcpy(b + 16, r.key.bytes.data(), BlockKey::kSize);
  if (r.parent) std::memcpy(b + 48, r.parent->bytes.data(), BlockKey::kSize);
  Put(b, 80, r.layout_fingerprint);
  Put(b, 88, r.num_layers);
  Put(b, 92, r.depth);
  Put(b, 96, r.size);
  Put(b, 104, r.checksum);
  Put<uint32_t>(b, 112, static_cast<uint32_t>(r.tenant.size()));
  std::copy(r.tenant.begin(), r.tenant.end(), b + 116);
  Put(b, kCrcOffset, RangeChecksum(b, kCrcOffset));
}

std::optional<SsdRecord> DecodeRecord(const uint8_t* b, uint64_t slot_bytes) {
  if (Get<uint64_t>(b, 0) != kRecordMagic || Get<uint32_t>(b, 8) != kVersion) return std::nullopt;
  if (Get<uint64_t>(b, kCrcOffset) != RangeChecksum(b, kCrcOffset)) return std::nullopt;
  SsdRecord r;
  std::memcpy(r.key.bytes.data(), b + 16, BlockKey::kSize);
  if (Get<uint32_t>(b, 12) & 1) {
    r.parent.emplace();
    std::memcpy(r.parent->bytes.data(), b + 48, BlockKey::kSize);
  }
  r.layout_fingerprint = Get<uint64_t>(b, 80);
  r.num_layers = Get<uint32_t>(b, 88);
  r.depth = Get<uint32_t>(b, 92);
  r.size = Get<uint64_t>(b, 96);
  r.checksum = Get<uint64_t>(b, 104);
  const uint32_t tenant_len = Get<uint32_t>(b, 112);
  if (tenant_len > SsdTier::kMaxTenantBytes || r.size == 0 || r.size > slot_bytes) {
    return std::nullopt;
  }
  r.tenant.assign(reinterpret_cast<const char*>(b + 116), tenant_len);
  return r;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SsdTier>> SsdTier::Create(const SsdTierOptions& options) {
  if (options.directory.empty()) return absl::InvalidArgumentError("T2 directory is empty");
  const uint64_t slot_bytes = RoundUp(std::max<uint64_t>(options.slot_bytes, 1));
  const uint64_t stride = kAlign + slot_bytes;
  const uint64_t slots64 = options.capacity_bytes / slot_bytes;
  if (slots64 == 0 || slots64 > UINT32_MAX / 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("T2 capacity of ", options.capacity_bytes, " bytes must hold between 1 and ",
                     UINT32_MAX / 2, " slots of ", slot_bytes, " bytes"));
  }
  const auto slots = static_cast<uint32_t>(slots64);
  std::error_code ec;
  std::filesystem::create_directories(options.directory, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create the T2 directory ", options.directory, ": ", ec.message()));
  }
  const std::string path = (std::filesystem::path(options.directory) / "kvtier-t2.slab").string();
  bool direct = options.direct_io;
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | (direct ? O_DIRECT : 0), 0600);
  if (fd < 0 && direct && errno == EINVAL) {  // tmpfs and some others refuse O_DIRECT
    KVTIER_LOG(WARNING) << path << " does not support O_DIRECT; T2 uses buffered I/O";
    direct = false;
    fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  }
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open the T2 slab ", path, ": ", std::strerror(errno)));
  }
  std::unique_ptr<SsdTier> tier(new SsdTier(fd, path, slot_bytes, slots, direct));

  struct stat st {};
  if (fstat(fd, &st) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot stat ", path, ": ", std::strerror(errno)));
  }
  const auto file_bytes = static_cast<uint64_t>(st.st_size);
  AlignedBuffer super = AllocAligned(kAlign);
  bool reuse = false;
  if (file_bytes >= kAlign) {
    if (absl::Status s = PreadAll(fd, super.get(), kAlign, 0, path); !s.ok()) return s;
    const uint8_t* b = super.get();
    if (Get<uint64_t>(b, 0) == kSuperMagic &&
        Get<uint64_t>(b, kCrcOffset) == RangeChecksum(b, kCrcOffset) &&
        Get<uint32_t>(b, 8) == kVersion && Get<uint64_t>(b, 16) == slot_bytes) {
      reuse = true;
    } else {
      KVTIER_LOG(WARNING) << path << " has no version " << kVersion << " superblock for "
                          << slot_bytes << " byte slots; its contents are discarded";
    }
  }
  if (reuse) {
    tier->ScanExisting(file_bytes);
  } else if (file_bytes > 0 && ftruncate(fd, 0) != 0) {  // no old header may survive
    return absl::FailedPreconditionError(
        absl::StrCat("cannot clear ", path, ": ", std::strerror(errno)));
  }
  const uint64_t total = kAlign + uint64_t{slots} * stride;
  if (file_bytes > total && ftruncate(fd, static_cast<off_t>(total)) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot shrink ", path, ": ", std::strerror(errno)));
  }
  if (int err = posix_fallocate(fd, 0, static_cast<off_t>(total)); err != 0) {
    return IoError(absl::StrCat("cannot reserve ", total, " bytes for"), path, err);
  }
  EncodeSuper(super.get(), slot_bytes, slots);
  if (absl::Status s = PwriteAll(fd, super.get(), kAlign, 0, path); !s.ok()) return s;
  if (fdatasync(fd) != 0) return IoError("cannot sync", path, errno);
  return tier;
}

SsdTier::SsdTier(int fd, std::string path, uint64_t slot_bytes, uint32_t slots, bool direct_io)
    : fd_(fd),
      path_(std::move(path)),
      slot_bytes_(slot_bytes),
      stride_(kAlign + slot_bytes),
      capacity_slots_(slots),
      direct_io_(direct_io),
      used_(slots, 0) {
  free_.reserve(slots);
  for (uint32_t s = slots; s-- > 0;) free_.push_back(s);
}

SsdTier::~SsdTier() { close(fd_); }

void SsdTier::ScanExisting(uint64_t file_bytes) {
  AlignedBuffer header = AllocAligned(kAlign);
  for (uint32_t slot = 0; slot < capacity_slots_; ++slot) {
    if (SlotOffset(slot) + kAlign > file_bytes) break;
    if (!PreadAll(fd_, header.get(), kAlign, SlotOffset(slot), path_).ok()) break;
    if (Get<uint64_t>(header.get(), 0) != kRecordMagic) continue;  // never written or invalidated
    std::optional<SsdRecord> record = DecodeRecord(header.get(), slot_bytes_);
    if (!record || SlotOffset(slot) + kAlign + record->size > file_bytes) {
      ++recovery_drops_;  // damaged header, or a payload cut off by truncation
      continue;
    }
    used_[slot] = 1;
    recovered_.emplace_back(slot, *std::move(record));
  }
  std::erase_if(free_, [this](uint32_t s) { return used_[s] != 0; });
}

std::vector<std::pair<uint32_t, SsdRecord>> SsdTier::TakeRecovered() {
  return std::exchange(recovered_, {});
}

std::optional<uint32_t> SsdTier::Allocate() {
  if (free_.empty()) return std::nullopt;
  const uint32_t slot = free_.back();
  free_.pop_back();
  used_[slot] = 1;
  return slot;
}

void SsdTier::Free(uint32_t slot) {
  KVTIER_CHECK(slot < capacity_slots_ && used_[slot]) << "T2 slot " << slot << " is not in use";
  used_[slot] = 0;
  free_.push_back(slot);
}

absl::Status SsdTier::Write(uint32_t slot, const SsdRecord& record, const uint8_t* data) {
  if (record.size > slot_bytes_ || record.tenant.size() > kMaxTenantBytes) {
    return absl::InvalidArgumentError(absl::StrCat("a ", record.size, " byte block with a ",
                                                   record.tenant.size(),
                                                   " byte tenant does not fit a T2 slot"));
  }
  AlignedBuffer header = AllocAligned(kAlign);
  EncodeRecord(header.get(), record);
  // Payload first, header last: a crash in between leaves the old header, whose checksum
  // no longer matches the payload; the store drops such a block on its first read.
  if (absl::Status s = PwriteAll(fd_, data, RoundUp(record.size), SlotOffset(slot) + kAlign, path_);
      !s.ok()) {
    return s;
  }
  return PwriteAll(fd_, header.get(), kAlign, SlotOffset(slot), path_);
}

absl::Status SsdTier::Read(uint32_t slot, uint64_t size, uint8_t* out) const {
  return PreadAll(fd_, out, RoundUp(size), SlotOffset(slot) + kAlign, path_);
}

absl::Status SsdTier::Invalidate(uint32_t slot) {
  AlignedBuffer header = AllocAligned(kAlign);  // zeros: no magic
  return PwriteAll(fd_, header.get(), kAlign, SlotOffset(slot), path_);
}

}  // namespace kvtier
