// SsdTier (T2): a file-backed slab of fixed-size slots on a local directory.
//
// File `<directory>/kvtier-t2.slab`:
//   [superblock 4 KiB][slot 0][slot 1]...   slot = [record header 4 KiB][payload, 4 KiB aligned]
// The record header carries everything needed to rebuild the index after a restart (key,
// parent, tenant, layout fingerprint, layers, size, block checksum) and its own XXH3, so a
// torn or foreign header is recognised and skipped. The payload checksum is verified by
// the store on every read; a header that parses but whose payload fails is dropped then.
//
// I/O is pread/pwrite with O_DIRECT where the filesystem supports it (buffered otherwise,
// reported by direct_io()); buffers passed in must be 4 KiB aligned with room for the
// rounded-up length (T1 slots are). The file's space is reserved with posix_fallocate at
// creation, so a full disk is reported then, not as a surprise later.
//
// Thread-safety: Allocate/Free/MarkUsed are serialised by the owner (BlockStore's mutex);
// Read/Write/Invalidate of distinct slots run concurrently without a lock.
#ifndef KVTIER_CACHE_STORE_SSD_TIER_H_
#define KVTIER_CACHE_STORE_SSD_TIER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cache_store/block_key.h"

namespace kvtier {

struct SsdTierOptions {
  std::string directory;  // empty: no T2
  uint64_t capacity_bytes = 0;
  uint64_t slot_bytes = uint64_t{2} << 20;  // payload bytes per slot (rounded up to 4 KiB)
  bool direct_io = true;                    // falls back to buffered I/O if unsupported
};

// What a slot's record header says about the block in it.
struct SsdRecord {
  BlockKey key;
  std::optional<BlockKey> parent;
  std::string tenant;  // at most kMaxTenantBytes
  uint64_t layout_fingerprint = 0;
  uint32_t num_layers = 0;
  uint32_t depth = 0;
  uint64_t size = 0;
  uint64_t checksum = 0;  // the block checksum (cache_store/checksum.h)
};

class SsdTier {
 public:
  static constexpr uint64_t kAlign = 4096;
  static constexpr size_t kMaxTenantBytes = 1024;

  // Opens or creates the slab. An existing slab with the same slot size keeps its records
  // (see Scan); one with another slot size is discarded with a warning. Errors name the
  // directory and the cause (unwritable directory, no space for the reservation).
  static absl::StatusOr<std::unique_ptr<SsdTier>> Create(const SsdTierOptions& options);
  ~SsdTier();
  SsdTier(const SsdTier&) = delete;
  SsdTier& operator=(const SsdTier&) = delete;

  // Valid records found on disk at creation, by slot. Their slots are marked used; the
  // caller keeps or Frees each. Consumed by the first call.
  std::vector<std::pair<uint32_t, SsdRecord>> TakeRecovered();

  std::optional<uint32_t> Allocate();
  void Free(uint32_t slot);

  // Writes header + payload (`data` is 4 KiB aligned and readable up to size rounded up).
  absl::Status Write(uint32_t slot, const SsdRecord& record, const uint8_t* data);
  // Reads `size` payload bytes into `out` (4 KiB aligned, writable up to size rounded up).
  absl::Status Read(uint32_t slot, uint64_t size, uint8_t* out) const;
  // Overwrites the slot's header so that a restart does not bring its block back.
  absl::Status Invalidate(uint32_t slot);

  uint32_t capacity_slots() const { return capacity_slots_; }
  uint64_t slot_bytes() const { return slot_bytes_; }
  uint64_t capacity_bytes() const { return uint64_t{capacity_slots_} * slot_bytes_; }
  bool direct_io() const { return direct_io_; }
  const std::string& path() const { return path_; }
  // Records found at creation whose header was damaged, or that did not fit the file.
  uint64_t recovery_drops() const { return recovery_drops_; }

 private:
  SsdTier(int fd, std::string path, uint64_t slot_bytes, uint32_t slots, bool direct_io);
  uint64_t SlotOffset(uint32_t slot) const { return kAlign + uint64_t{slot} * stride_; }
  void ScanExisting(uint64_t file_bytes);

  const int fd_;
  const std::string path_;
  const uint64_t slot_bytes_;
  const uint64_t stride_;
  const uint32_t capacity_slots_;
  const bool direct_io_;
  std::vector<uint32_t> free_;
  std::vector<uint8_t> used_;
  std::vector<std::pair<uint32_t, SsdRecord>> recovered_;
  uint64_t recovery_drops_ = 0;
};

}  // namespace kvtier

#endif  // KVTIER_CACHE_STORE_SSD_TIER_H_
