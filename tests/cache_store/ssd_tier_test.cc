#include "cache_store/ssd_tier.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "cache_store/checksum.h"
#include "tests/cache_store/file_size_limit.h"

namespace kvtier {
namespace {

namespace fs = std::filesystem;
using ::kvtier::testing::FileSizeLimit;

std::string FreshDir(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "/kvtier_ssd_" + name;
  fs::remove_all(dir);
  return dir;
}

struct Aligned {
  explicit Aligned(size_t n) : p(static_cast<uint8_t*>(std::aligned_alloc(4096, n))), size(n) {}
  ~Aligned() { std::free(p); }
  uint8_t* p;
  size_t size;
};

SsdRecord RecordFor(uint8_t tag, const Aligned& data, uint64_t size) {
  SsdRecord r;
  r.key.bytes.fill(tag);
  r.parent.emplace();
  r.parent->bytes.fill(static_cast<uint8_t>(tag + 1));
  r.tenant = "tenant-a";
  r.layout_fingerprint = 0xabcdef;
  r.num_layers = 2;
  r.depth = tag;
  r.size = size;
  r.checksum = RangeChecksum(data.p, size);
  return r;
}

TEST(SsdTierTest, WritesReadsAndRecoversRecordsAcrossReopen) {
  const std::string dir = FreshDir("roundtrip");
  constexpr uint64_t kSlot = 8192;
  Aligned data(kSlot);
  for (size_t i = 0; i < kSlot; ++i) data.p[i] = static_cast<uint8_t>(i * 7 + 1);
  const uint64_t size = 5000;  // not a multiple of 4 KiB
  {
    auto tier =
        SsdTier::Create({.directory = dir, .capacity_bytes = 4 * kSlot, .slot_bytes = kSlot});
    ASSERT_TRUE(tier.ok()) << tier.status();
    EXPECT_EQ((*tier)->capacity_slots(), 4u);
    EXPECT_TRUE((*tier)->TakeRecovered().empty());
    std::optional<uint32_t> a = (*tier)->Allocate();
    std::optional<uint32_t> b = (*tier)->Allocate();
    ASSERT_TRUE(a && b);
    ASSERT_TRUE((*tier)->Write(*a, RecordFor(1, data, size), data.p).ok());
    ASSERT_TRUE((*tier)->Write(*b, RecordFor(2, data, size), data.p).ok());
    Aligned back(kSlot);
    ASSERT_TRUE((*tier)->Read(*a, size, back.p).ok());
    EXPECT_EQ(std::memcmp(back.p, data.p, size), 0);
    ASSERT_TRUE((*tier)->Invalidate(*b).ok());  // b must not come back
  }
  auto tier = SsdTier::Create({.directory = dir, .capacity_bytes = 4 * kSlot, .slot_bytes = kSlot});
  ASSERT_TRUE(tier.ok()) << tier.status();
  auto recovered = (*tier)->TakeRecovered();
  ASSERT_EQ(recovered.size(), 1u);
  const SsdRecord& r = recovered[0].second;
  EXPECT_EQ(r.key.bytes[0], 1);
  ASSERT_TRUE(r.parent.has_value());
  EXPECT_EQ(r.parent->bytes[0], 2);
  EXPECT_EQ(r.tenant, "tenant-a");
  EXPECT_EQ(r.layout_fingerprint, 0xabcdefu);
  EXPECT_EQ(r.num_layers, 2u);
  EXPECT_EQ(r.size, size);
  EXPECT_EQ(r.checksum, RangeChecksum(data.p, size));
  // The recovered slot is in use; the other three are free.
  int free_slots = 0;
  while ((*tier)->Allocate()) ++free_slots;
  EXPECT_EQ(free_slots, 3);
}

TEST(SsdTierTest, DamagedHeaderAndTruncatedSlabAreCountedDrops) {
  const std::string dir = FreshDir("damaged");
  constexpr uint64_t kSlot = 4096;
  Aligned data(kSlot);
  std::memset(data.p, 0x5a, kSlot);
  {
    auto tier =
        SsdTier::Create({.directory = dir, .capacity_bytes = 3 * kSlot, .slot_bytes = kSlot});
    ASSERT_TRUE(tier.ok());
    for (uint8_t tag = 1; tag <= 3; ++tag) {
      ASSERT_TRUE((*tier)->Write(*(*tier)->Allocate(), RecordFor(tag, data, kSlot), data.p).ok());
    }
  }
  const std::string slab = dir + "/kvtier-t2.slab";
  // Slot layout: 4 KiB superblock, then (4 KiB header + 4 KiB payload) per slot. Damage the
  // header of the first slot written (slot 0) and cut the file inside the last slot.
  {
    std::fstream f(slab, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4096 + 100);
    f.put('\x77');
  }
  fs::resize_file(slab, 4096 + 2 * 8192 + 4096 + 10);
  auto tier = SsdTier::Create({.directory = dir, .capacity_bytes = 3 * kSlot, .slot_bytes = kSlot});
  ASSERT_TRUE(tier.ok()) << tier.status();
  EXPECT_EQ((*tier)->TakeRecovered().size(), 1u);  // only slot 1 is intact
  EXPECT_EQ((*tier)->recovery_drops(), 2u);
  // The slab is full size again and usable.
  EXPECT_EQ(fs::file_size(slab), 4096u + 3 * 8192u);
}

TEST(SsdTierTest, AnotherSlotSizeDiscardsTheOldSlab) {
  const std::string dir = FreshDir("geometry");
  Aligned data(8192);
  std::memset(data.p, 1, 8192);
  {  // A 4 KiB block in slot 0 of an 8 KiB-slot slab: its header sits where slot 0's
     // header of a 4 KiB-slot slab would, and it would fit that slot.
    auto tier = SsdTier::Create({.directory = dir, .capacity_bytes = 16384, .slot_bytes = 8192});
    ASSERT_TRUE(tier.ok());
    std::optional<uint32_t> slot = (*tier)->Allocate();
    ASSERT_EQ(slot, 0u);
    ASSERT_TRUE((*tier)->Write(*slot, RecordFor(1, data, 4096), data.p).ok());
  }
  for (int reopen = 0; reopen < 2; ++reopen) {
    // The first reopen discards the old slab; the second finds a valid 4 KiB superblock
    // and must still not mistake the old header for one of its own.
    auto tier = SsdTier::Create({.directory = dir, .capacity_bytes = 16384, .slot_bytes = 4096});
    ASSERT_TRUE(tier.ok());
    EXPECT_TRUE((*tier)->TakeRecovered().empty()) << "reopen " << reopen;
  }
}

TEST(SsdTierTest, UnusableDirectoryIsAClearError) {
  const std::string dir = FreshDir("notadir");
  fs::create_directories(fs::path(dir).parent_path());
  std::ofstream(dir) << "a file where the directory should be";
  auto tier =
      SsdTier::Create({.directory = dir + "/sub", .capacity_bytes = 8192, .slot_bytes = 4096});
  ASSERT_FALSE(tier.ok());
  EXPECT_EQ(tier.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(tier.status().message().find(dir), std::string_view::npos) << tier.status();
  auto zero =
      SsdTier::Create({.directory = FreshDir("zero"), .capacity_bytes = 100, .slot_bytes = 4096});
  EXPECT_EQ(zero.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SsdTierTest, NoSpaceForTheSlabIsResourceExhausted) {
  const std::string dir = FreshDir("full");
  FileSizeLimit limit(64 * 1024);
  auto tier = SsdTier::Create({.directory = dir, .capacity_bytes = 1 << 20, .slot_bytes = 4096});
  ASSERT_FALSE(tier.ok());
  EXPECT_EQ(tier.status().code(), absl::StatusCode::kResourceExhausted) << tier.status();
  EXPECT_NE(tier.status().message().find("kvtier-t2.slab"), std::string_view::npos);
}

TEST(SsdTierTest, AWriteThatFailsReportsResourceExhausted) {
  const std::string dir = FreshDir("fullwrite");
  auto tier = SsdTier::Create({.directory = dir, .capacity_bytes = 8 * 4096, .slot_bytes = 4096});
  ASSERT_TRUE(tier.ok());
  Aligned data(4096);
  std::memset(data.p, 3, 4096);
  FileSizeLimit limit(4096);  // only the superblock fits now
  absl::Status s = (*tier)->Write(*(*tier)->Allocate(), RecordFor(1, data, 4096), data.p);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
}

}  // namespace
}  // namespace kvtier
