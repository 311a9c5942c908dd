// SsdTier (T2): a file-backed slab of block slots of many sizes on a local directory.
//
// File `<directory>/kvtier-t2.slab`:
//   [superblock 4 KiB][slab table, 8 bytes per slab, 4 KiB aligned][slab 0][slab 1]...
// Slots come from a SlabAllocator (cache_store/slab_allocator.h) whose sizes are multiples
// of 4 KiB: slot = [record header 4 KiB][payload, rounded up to 4 KiB]. The slab table
// records each slab's slot size when the slab joins a size class, so a restart finds every
// slot again. The record header carries everything needed to rebuild the index (key,
// parent, tenant, layout fingerprint, layers, size, block checksum) and its own XXH3, so a
// torn or foreign header is recognised and skipped. The payload checksum is verified by
// the store on every read; a header that parses but whose payload fails is dropped then.
//
// I/O is pread/pwrite with O_DIRECT where the filesystem supports it (buffered otherwise,
// reported by direct_io()). Buffers need no alignment: one that is not 4 KiB aligned, or
// has no room for the length rounded up to 4 KiB, goes through an aligned bounce buffer.
// The file's space is reserved with posix_fallocate at creation, so a full disk is reported
// then, not as a surprise later.
//
// Thread-safety: the allocator (slots()) is used under the owner's lock (BlockStore's
// mutex; a slab's table entry is written then, a small write once per change of class);
// Read/Write/Invalidate of distinct slots run concurrently without a lock.
#ifndef KVTIER_CACHE_STORE_SSD_TIER_H_
#define KVTIER_CACHE_STORE_SSD_TIER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cache_store/block_key.h"
#include "cache_store/slab_allocator.h"

namespace kvtier {

struct SsdTierOptions {
  std::string directory;  // empty: no T2
  uint64_t capacity_bytes = 0;
  // The largest block payload (the store sets T1's); 0: SlabAllocator's default.
  uint64_t max_block_bytes = 0;
  uint64_t slab_bytes = 0;  // 0: SlabAllocator's default for this capacity
  bool direct_io = true;    // falls back to buffered I/O if unsupported
  // Tests only: called before every block read (write = false) and write of a slot; a
  // status other than OK fails that I/O as the disk would, and the call may block to
  // model a stalled disk. Empty in production.
  std::function<absl::Status(bool write, uint32_t slot)> fault_injector;
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

  // Opens or creates the slab file. An existing file with the same slab geometry keeps its
  // records (see TakeRecovered); one with another geometry is discarded with a warning.
  // Errors name the directory and the cause (unwritable directory, no space).
  static absl::StatusOr<std::unique_ptr<SsdTier>> Create(const SsdTierOptions& options);
  ~SsdTier();
  SsdTier(const SsdTier&) = delete;
  SsdTier& operator=(const SsdTier&) = delete;

  // Valid records found on disk at creation, by slot. Their slots are allocated; the
  // caller keeps or Frees each. Consumed by the first call.
  std::vector<std::pair<uint32_t, SsdRecord>> TakeRecovered();

  SlabAllocator& slots() { return slots_; }
  const SlabAllocator& slots() const { return slots_; }
  // The slot size that holds a block of `size` payload bytes (header included).
  static uint64_t SlotBytesFor(uint64_t size) { return kAlign + RoundUp(size); }

  // Writes payload + header. INVALID_ARGUMENT when the block does not fit the slot.
  // `padded`: `data` is 4 KiB-aligned and readable up to the next 4 KiB, so it is written
  // as it is (otherwise an unaligned or partial tail goes through a bounce buffer).
  absl::Status Write(uint32_t slot, const SsdRecord& record, const uint8_t* data,
                     bool padded = false);
  // One record of a run of slots written together (WriteRun): `data` 4 KiB-aligned and
  // readable up to the next 4 KiB (`padded` above).
  struct RunRecord {
    uint32_t slot;
    const SsdRecord* record;
    const uint8_t* data;
  };
  // Whether a record of `size` bytes fills `slot` and `next` starts where `slot` ends in
  // the file: then the two records can be one write.
  bool Contiguous(uint32_t slot, uint64_t size, uint32_t next) const {
    return SlotBytesFor(size) == slots_.SlotBytes(slot) &&
           SlotOffset(slot) + slots_.SlotBytes(slot) == SlotOffset(next);
  }
  // Writes records into slots each Contiguous with the one before, headers and payloads in
  // one I/O (at most kMaxRun records). One status for the run: on an error none of its
  // records is to be trusted (the store drops them all).
  static constexpr size_t kMaxRun = 64;
  absl::Status WriteRun(std::span<const RunRecord> run);
  // Reads `size` payload bytes into `out` (writable for `size` bytes).
  absl::Status Read(uint32_t slot, uint64_t size, uint8_t* out) const;
  // Overwrites the slot's header so that a restart does not bring its block back.
  absl::Status Invalidate(uint32_t slot);

  uint64_t capacity_bytes() const { return slots_.capacity_bytes(); }
  bool direct_io() const { return direct_io_; }
  const std::string& path() const { return path_; }
  // Records found at creation whose header was damaged, or that did not fit the file.
  uint64_t recovery_drops() const { return recovery_drops_; }
  // Slab table entries that could not be written (the slab's blocks may not come back
  // after a restart; nothing wrong is served).
  uint64_t table_write_errors() const { return table_write_errors_; }

 private:
  SsdTier(int fd, std::string path, SlabAllocator slots, bool direct_io);
  absl::Status Inject(bool write, uint32_t slot) const {
    return fault_injector_ ? fault_injector_(write, slot) : absl::OkStatus();
  }
  static uint64_t RoundUp(uint64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }
  uint64_t TableBytes() const { return RoundUp(uint64_t{slots_.num_slabs()} * 8); }
  uint64_t SlotOffset(uint32_t slot) const { return kAlign + TableBytes() + slots_.Offset(slot); }
  void ScanExisting(uint64_t file_bytes);
  void RecordSlabClass(uint32_t slab, int cls);

  const int fd_;
  const std::string path_;
  SlabAllocator slots_;
  const bool direct_io_;
  std::function<absl::Status(bool, uint32_t)> fault_injector_;
  std::vector<uint64_t> table_;  // slot bytes per slab as on disk (0: none)
  std::vector<std::pair<uint32_t, SsdRecord>> recovered_;
  uint64_t recovery_drops_ = 0;
  uint64_t table_write_errors_ = 0;
};

}  // namespace kvtier

#endif  // KVTIER_CACHE_STORE_SSD_TIER_H_
