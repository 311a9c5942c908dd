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
// 2: a record's checksum is the digest of the block's layer checksums (checksum.h).
// 3: slots of many sizes in size-class slabs, with a slab table. Older files are discarded.
constexpr uint32_t kVersion = 3;
constexpr size_t kCrcOffset = SsdTier::kAlign - 8;

uint64_t RoundUp(uint64_t n) {
  return (n + SsdTier::kAlign - 1) / SsdTier::kAlign * SsdTier::kAlign;
}

bool Aligned(const void* p) { return reinterpret_cast<uintptr_t>(p) % SsdTier::kAlign == 0; }

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

// The geometry a file must have to be reused: slab size, slab count, largest slot.
void EncodeSuper(uint8_t* b, const SlabAllocator& slots) {
  std::memset(b, 0, SsdTier::kAlign);
  Put(b, 0, kSuperMagic);
  Put(b, 8, kVersion);
  Put(b, 16, slots.slab_bytes());
  Put(b, 24, slots.num_slabs());
  Put(b, 32, slots.capacity_bytes());
  Put(b, 40, slots.max_slot_bytes());
  Put(b, kCrcOffset, RangeChecksum(b, kCrcOffset));
}

bool SameGeometry(const uint8_t* b, const SlabAllocator& slots) {
  return Get<uint64_t>(b, 0) == kSuperMagic &&
         Get<uint64_t>(b, kCrcOffset) == RangeChecksum(b, kCrcOffset) &&
         Get<uint32_t>(b, 8) == kVersion && Get<uint64_t>(b, 16) == slots.slab_bytes() &&
         Get<uint32_t>(b, 24) == slots.num_slabs() && Get<uint64_t>(b, 32) == slots.capacity_bytes() &&
         Get<uint64_t>(b, 40) == slots.max_slot_bytes();
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
  absl::StatusOr<SlabAllocator> slots = SlabAllocator::Create(
      {.capacity_bytes = options.capacity_bytes,
       .slab_bytes = options.slab_bytes,
       .max_slot_bytes = options.max_block_bytes == 0 ? 0 : SlotBytesFor(options.max_block_bytes),
       .min_slot_bytes = 2 * kAlign,
       .fine_align = kAlign,
       .coarse_align = kAlign,
       .coarse_from = 0});
  if (!slots.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("T2 (slots include a ", kAlign,
                                                   " byte header): ", slots.status().message()));
  }
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
  std::unique_ptr<SsdTier> tier(new SsdTier(fd, path, *std::move(slots), direct));
  tier->fault_injector_ = options.fault_injector;

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
    if (SameGeometry(super.get(), tier->slots_)) {
      reuse = true;
    } else {
      KVTIER_LOG(WARNING) << path << " has no version " << kVersion << " superblock for "
                          << tier->slots_.DebugString() << "; its contents are discarded";
    }
  }
  if (reuse) {
    tier->ScanExisting(file_bytes);
  } else if (file_bytes > 0 && ftruncate(fd, 0) != 0) {  // no old header may survive
    return absl::FailedPreconditionError(
        absl::StrCat("cannot clear ", path, ": ", std::strerror(errno)));
  }
  const uint64_t total = kAlign + tier->TableBytes() + tier->slots_.capacity_bytes();
  if (file_bytes > total && ftruncate(fd, static_cast<off_t>(total)) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot shrink ", path, ": ", std::strerror(errno)));
  }
  if (int err = posix_fallocate(fd, 0, static_cast<off_t>(total)); err != 0) {
    return IoError(absl::StrCat("cannot reserve ", total, " bytes for"), path, err);
  }
  if (!reuse) {  // an empty slab table: no slab has a class yet
    AlignedBuffer table = AllocAligned(tier->TableBytes());
    if (absl::Status s = PwriteAll(fd, table.get(), tier->TableBytes(), kAlign, path); !s.ok()) {
      return s;
    }
  }
  EncodeSuper(super.get(), tier->slots_);
  if (absl::Status s = PwriteAll(fd, super.get(), kAlign, 0, path); !s.ok()) return s;
  if (fdatasync(fd) != 0) return IoError("cannot sync", path, errno);
  SsdTier* raw = tier.get();
  tier->slots_.set_on_assign([raw](uint32_t slab, int cls) { raw->RecordSlabClass(slab, cls); });
  return tier;
}

SsdTier::SsdTier(int fd, std::string path, SlabAllocator slots, bool direct_io)
    : fd_(fd),
      path_(std::move(path)),
      slots_(std::move(slots)),
      direct_io_(direct_io),
      table_(slots_.num_slabs(), 0) {}

SsdTier::~SsdTier() { close(fd_); }

void SsdTier::RecordSlabClass(uint32_t slab, int cls) {
  const uint64_t bytes = slots_.class_slot_bytes(cls);
  if (table_[slab] == bytes) return;
  table_[slab] = bytes;
  // The 4 KiB page of the table that holds this entry, rewritten whole.
  const uint64_t first = slab / (kAlign / 8) * (kAlign / 8);
  AlignedBuffer page = AllocAligned(kAlign);
  for (uint64_t i = first; i < std::min<uint64_t>(first + kAlign / 8, table_.size()); ++i) {
    Put(page.get(), (i - first) * 8, table_[i]);
  }
  if (absl::Status s = PwriteAll(fd_, page.get(), kAlign, kAlign + first * 8, path_); !s.ok()) {
    ++table_write_errors_;
    KVTIER_LOG(ERROR) << "cannot record the size class of T2 slab " << slab << ": " << s;
  }
}

void SsdTier::ScanExisting(uint64_t file_bytes) {
  AlignedBuffer table = AllocAligned(TableBytes());
  if (file_bytes < kAlign + TableBytes() ||
      !PreadAll(fd_, table.get(), TableBytes(), kAlign, path_).ok()) {
    return;
  }
  AlignedBuffer header = AllocAligned(kAlign);
  for (uint32_t slab = 0; slab < slots_.num_slabs(); ++slab) {
    const uint64_t bytes = Get<uint64_t>(table.get(), uint64_t{slab} * 8);
    if (bytes == 0) continue;
    std::optional<int> cls = slots_.ClassFor(bytes);
    if (!cls || slots_.class_slot_bytes(*cls) != bytes) {
      ++recovery_drops_;  // a slot size this geometry has no class for: a damaged table
      continue;
    }
    table_[slab] = bytes;
    std::vector<uint32_t> used;
    std::vector<SsdRecord> records;
    for (uint32_t i = 0; i < slots_.SlotsIn(slab, *cls); ++i) {
      const uint64_t offset = kAlign + TableBytes() + uint64_t{slab} * slots_.slab_bytes() + i * bytes;
      if (offset + kAlign > file_bytes) break;
      if (!PreadAll(fd_, header.get(), kAlign, offset, path_).ok()) break;
      if (Get<uint64_t>(header.get(), 0) != kRecordMagic) continue;  // never written or invalidated
      std::optional<SsdRecord> record = DecodeRecord(header.get(), bytes - kAlign);
      if (!record || offset + kAlign + record->size > file_bytes) {
        ++recovery_drops_;  // damaged header, or a payload cut off by truncation
        continue;
      }
      used.push_back(i);
      records.push_back(*std::move(record));
    }
    slots_.AssignRecovered(slab, *cls, used);
    for (size_t k = 0; k < used.size(); ++k) {
      recovered_.emplace_back(slots_.SlotId(slab, used[k]), std::move(records[k]));
    }
  }
}

std::vector<std::pair<uint32_t, SsdRecord>> SsdTier::TakeRecovered() {
  return std::exchange(recovered_, {});
}

absl::Status SsdTier::Write(uint32_t slot, const SsdRecord& record, const uint8_t* data,
                            bool padded) {
  if (SlotBytesFor(record.size) > slots_.SlotBytes(slot) ||
      record.tenant.size() > kMaxTenantBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a ", record.size, " byte block with a ", record.tenant.size(),
        " byte tenant does not fit a T2 slot of ", slots_.SlotBytes(slot), " bytes"));
  }
  if (absl::Status s = Inject(/*write=*/true, slot); !s.ok()) return s;
  AlignedBuffer header = AllocAligned(kAlign);
  EncodeRecord(header.get(), record);
  // The payload is written in whole 4 KiB units: from the caller's buffer when that is
  // aligned and the block fills them, else through a bounce buffer.
  AlignedBuffer bounce;
  const uint8_t* src = data;
  if (!padded && (!Aligned(data) || record.size % kAlign != 0)) {
    bounce = AllocAligned(record.size);
    std::memcpy(bounce.get(), data, record.size);
    src = bounce.get();
  }
  // Header and payload in one write (one I/O: they are adjacent). A crash or a torn write
  // can leave a header whose checksum does not match the payload; the store verifies every
  // block it reads from T2 and drops such a one on its first read, serving nothing of it.
  return Pwrite2All(fd_, header.get(), kAlign, src, RoundUp(record.size), SlotOffset(slot),
                    path_);
}

absl::Status SsdTier::WriteRun(std::span<const RunRecord> run) {
  if (run.empty()) return absl::OkStatus();
  if (run.size() > kMaxRun) {
    return absl::InvalidArgumentError(
        absl::StrCat("a T2 write run of ", run.size(), " records (at most ", kMaxRun, ")"));
  }
  if (run.size() == 1) return Write(run[0].slot, *run[0].record, run[0].data, /*padded=*/true);
  for (size_t i = 0; i < run.size(); ++i) {
    const SsdRecord& r = *run[i].record;
    if (r.tenant.size() > kMaxTenantBytes ||
        (i + 1 < run.size() && !Contiguous(run[i].slot, r.size, run[i + 1].slot)) ||
        SlotBytesFor(r.size) > slots_.SlotBytes(run[i].slot)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "record ", i, " of a T2 write run does not fill slot ", run[i].slot,
          " or the next slot does not follow it"));
    }
  }
  for (const RunRecord& r : run) {
    if (absl::Status s = Inject(/*write=*/true, r.slot); !s.ok()) return s;
  }
  AlignedBuffer headers = AllocAligned(kAlign * run.size());
  std::vector<iovec> buffers;
  buffers.reserve(2 * run.size());
  for (size_t i = 0; i < run.size(); ++i) {
    uint8_t* header = headers.get() + i * kAlign;
    EncodeRecord(header, *run[i].record);
    buffers.push_back({header, kAlign});
    buffers.push_back({const_cast<uint8_t*>(run[i].data), RoundUp(run[i].record->size)});
  }
  // As in Write: a crash can tear any part of it; every T2 read verifies its block.
  return PwritevAll(fd_, buffers, SlotOffset(run[0].slot), path_);
}

absl::Status SsdTier::Read(uint32_t slot, uint64_t size, uint8_t* out) const {
  if (SlotBytesFor(size) > slots_.SlotBytes(slot)) {
    return absl::InvalidArgumentError(absl::StrCat("a read of ", size, " bytes from a T2 slot of ",
                                                   slots_.SlotBytes(slot), " bytes"));
  }
  if (absl::Status s = Inject(/*write=*/false, slot); !s.ok()) return s;
  if (Aligned(out) && size % kAlign == 0) {
    return PreadAll(fd_, out, size, SlotOffset(slot) + kAlign, path_);
  }
  AlignedBuffer bounce = AllocAligned(size);
  if (absl::Status s = PreadAll(fd_, bounce.get(), RoundUp(size), SlotOffset(slot) + kAlign, path_);
      !s.ok()) {
    return s;
  }
  std::memcpy(out, bounce.get(), size);
  return absl::OkStatus();
}

absl::Status SsdTier::Invalidate(uint32_t slot) {
  AlignedBuffer header = AllocAligned(kAlign);  // zeros: no magic
  return PwriteAll(fd_, header.get(), kAlign, SlotOffset(slot), path_);
}

}  // namespace kvtier
