#include "cache_store/ssd_tier.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <algorithm>
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
  // aligned_alloc wants a size that is a multiple of the alignment.
  explicit Aligned(size_t n)
      : p(static_cast<uint8_t*>(std::aligned_alloc(4096, (n + 4095) / 4096 * 4096))), size(n) {}
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

std::optional<uint32_t> Take(SsdTier& tier, uint64_t payload) {
  return tier.slots().Allocate(*tier.slots().ClassFor(SsdTier::SlotBytesFor(payload)));
}

TEST(SsdTierTest, WritesReadsAndRecoversRecordsOfManySizesAcrossReopen) {
  const std::string dir = FreshDir("roundtrip");
  constexpr uint64_t kBig = 300000;
  Aligned data(kBig + 4096);
  for (size_t i = 0; i < data.size; ++i) data.p[i] = static_cast<uint8_t>(i * 7 + 1);
  const SsdTierOptions options{.directory = dir, .capacity_bytes = 4 << 20, .max_block_bytes = 512 << 10};
  std::vector<uint64_t> sizes = {5000, 100, kBig, 5000};  // not multiples of 4 KiB
  std::vector<uint32_t> slots;
  {
    auto tier = SsdTier::Create(options);
    ASSERT_TRUE(tier.ok()) << tier.status();
    EXPECT_TRUE((*tier)->TakeRecovered().empty());
    for (size_t i = 0; i < sizes.size(); ++i) {
      std::optional<uint32_t> slot = Take(**tier, sizes[i]);
      ASSERT_TRUE(slot);
      slots.push_back(*slot);
      // Unaligned sources go through a bounce buffer.
      ASSERT_TRUE((*tier)->Write(*slot, RecordFor(i + 1, data, sizes[i]), data.p + (i % 2)).ok());
    }
    std::vector<uint8_t> back(kBig);
    ASSERT_TRUE((*tier)->Read(slots[2], kBig, back.data() + 0).ok());
    EXPECT_EQ(std::memcmp(back.data(), data.p, kBig), 0);
    ASSERT_TRUE((*tier)->Invalidate(slots[3]).ok());  // the 4th must not come back
  }
  auto tier = SsdTier::Create(options);
  ASSERT_TRUE(tier.ok()) << tier.status();
  auto recovered = (*tier)->TakeRecovered();
  ASSERT_EQ(recovered.size(), 3u);
  std::sort(recovered.begin(), recovered.end(),
            [](const auto& a, const auto& b) { return a.second.depth < b.second.depth; });
  for (size_t i = 0; i < 3; ++i) {
    const SsdRecord& r = recovered[i].second;
    EXPECT_EQ(recovered[i].first, slots[i]);
    EXPECT_EQ(r.key.bytes[0], i + 1);
    ASSERT_TRUE(r.parent.has_value());
    EXPECT_EQ(r.parent->bytes[0], i + 2);
    EXPECT_EQ(r.tenant, "tenant-a");
    EXPECT_EQ(r.layout_fingerprint, 0xabcdefu);
    EXPECT_EQ(r.size, sizes[i]);
    EXPECT_EQ(r.checksum, RangeChecksum(data.p, sizes[i]));
    std::vector<uint8_t> back(r.size);
    ASSERT_TRUE((*tier)->Read(recovered[i].first, r.size, back.data()).ok());
    EXPECT_EQ(std::memcmp(back.data(), data.p + (i % 2), r.size), 0);
  }
  // The recovered slots stay in use: new slots are others.
  for (int i = 0; i < 4; ++i) {
    std::optional<uint32_t> slot = Take(**tier, 5000);
    ASSERT_TRUE(slot);
    EXPECT_NE(*slot, slots[0]);
  }
}

TEST(SsdTierTest, DamagedHeaderAndTruncatedSlabAreCountedDrops) {
  const std::string dir = FreshDir("damaged");
  constexpr uint64_t kBlock = 4096;
  Aligned data(kBlock);
  std::memset(data.p, 0x5a, kBlock);
  const SsdTierOptions options{
      .directory = dir, .capacity_bytes = 3 * 8192, .max_block_bytes = kBlock, .slab_bytes = 3 * 8192};
  uint64_t table_end = 0;
  {
    auto tier = SsdTier::Create(options);
    ASSERT_TRUE(tier.ok()) << tier.status();
    for (uint8_t tag = 1; tag <= 3; ++tag) {
      ASSERT_TRUE((*tier)->Write(*Take(**tier, kBlock), RecordFor(tag, data, kBlock), data.p).ok());
    }
    table_end = 4096 + 4096;  // superblock, then a one-page slab table
  }
  const std::string slab = dir + "/kvtier-t2.slab";
  // One slab of three 8 KiB slots (4 KiB header + 4 KiB payload). Damage the header of the
  // first slot and cut the file inside the last.
  {
    std::fstream f(slab, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(table_end + 100);
    f.put('\x77');
  }
  fs::resize_file(slab, table_end + 2 * 8192 + 4096 + 10);
  auto tier = SsdTier::Create(options);
  ASSERT_TRUE(tier.ok()) << tier.status();
  EXPECT_EQ((*tier)->TakeRecovered().size(), 1u);  // only slot 1 is intact
  EXPECT_EQ((*tier)->recovery_drops(), 2u);
  // The slab file is full size again and usable.
  EXPECT_EQ(fs::file_size(slab), table_end + 3 * 8192u);
}

TEST(SsdTierTest, AnotherGeometryDiscardsTheOldSlab) {
  const std::string dir = FreshDir("geometry");
  Aligned data(8192);
  std::memset(data.p, 1, 8192);
  {
    auto tier = SsdTier::Create({.directory = dir, .capacity_bytes = 65536, .max_block_bytes = 8192});
    ASSERT_TRUE(tier.ok());
    ASSERT_TRUE((*tier)->Write(*Take(**tier, 4096), RecordFor(1, data, 4096), data.p).ok());
  }
  for (int reopen = 0; reopen < 2; ++reopen) {
    // The first reopen discards the old file; the second finds a valid superblock of the
    // new geometry and must still not mistake the old header for one of its own.
    auto tier = SsdTier::Create({.directory = dir, .capacity_bytes = 65536, .max_block_bytes = 4096});
    ASSERT_TRUE(tier.ok());
    EXPECT_TRUE((*tier)->TakeRecovered().empty()) << "reopen " << reopen;
  }
}

TEST(SsdTierTest, ABlockLargerThanItsSlotIsRefused) {
  auto tier = SsdTier::Create(
      {.directory = FreshDir("toolarge"), .capacity_bytes = 1 << 20, .max_block_bytes = 65536});
  ASSERT_TRUE(tier.ok());
  Aligned data(65536);
  const uint32_t slot = *Take(**tier, 4096);
  absl::Status s = (*tier)->Write(slot, RecordFor(1, data, 65536), data.p);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
}

TEST(SsdTierTest, UnusableDirectoryIsAClearError) {
  const std::string dir = FreshDir("notadir");
  fs::create_directories(fs::path(dir).parent_path());
  std::ofstream(dir) << "a file where the directory should be";
  auto tier = SsdTier::Create({.directory = dir + "/sub", .capacity_bytes = 65536});
  ASSERT_FALSE(tier.ok());
  EXPECT_EQ(tier.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(tier.status().message().find(dir), std::string_view::npos) << tier.status();
  auto zero = SsdTier::Create({.directory = FreshDir("zero"), .capacity_bytes = 100});
  EXPECT_EQ(zero.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SsdTierTest, NoSpaceForTheSlabIsResourceExhausted) {
  const std::string dir = FreshDir("full");
  FileSizeLimit limit(64 * 1024);
  auto tier = SsdTier::Create({.directory = dir, .capacity_bytes = 1 << 20});
  ASSERT_FALSE(tier.ok());
  EXPECT_EQ(tier.status().code(), absl::StatusCode::kResourceExhausted) << tier.status();
  EXPECT_NE(tier.status().message().find("kvtier-t2.slab"), std::string_view::npos);
}

TEST(SsdTierTest, AWriteThatFailsReportsResourceExhausted) {
  const std::string dir = FreshDir("fullwrite");
  auto tier = SsdTier::Create({.directory = dir, .capacity_bytes = 8 * 8192, .max_block_bytes = 4096});
  ASSERT_TRUE(tier.ok());
  Aligned data(4096);
  std::memset(data.p, 3, 4096);
  FileSizeLimit limit(4096);  // only the superblock fits now
  absl::Status s = (*tier)->Write(*Take(**tier, 4096), RecordFor(1, data, 4096), data.p);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
}

// Records in adjacent slots go to the disk as one write: each reads back whole, and a
// reopen recovers every one; slots that do not follow each other, or a run past kMaxRun,
// are refused by name, and a disk that fails one record's write fails the run.
TEST(SsdTierTest, ARunOfAdjacentSlotsIsOneWriteThatReadsBackWhole) {
  const std::string dir = FreshDir("run");
  const SsdTierOptions options{.directory = dir, .capacity_bytes = 64 * 8192, .max_block_bytes = 4096};
  constexpr int kRecords = 8;
  std::vector<std::unique_ptr<Aligned>> data;
  std::vector<SsdRecord> records;
  std::vector<uint32_t> slots;
  {
    auto tier = SsdTier::Create(options);
    ASSERT_TRUE(tier.ok()) << tier.status();
    for (int i = 0; i < kRecords; ++i) {
      data.push_back(std::make_unique<Aligned>(4096));
      std::memset(data.back()->p, 0x30 + i, 4096);
      records.push_back(RecordFor(static_cast<uint8_t>(10 + i), *data.back(), 4096));
      slots.push_back(*Take(**tier, 4096));
    }
    for (int i = 0; i + 1 < kRecords; ++i) {
      ASSERT_TRUE((*tier)->Contiguous(slots[i], 4096, slots[i + 1])) << i;
    }
    std::vector<SsdTier::RunRecord> run;
    for (int i = 0; i < kRecords; ++i) run.push_back({slots[i], &records[i], data[i]->p});
    ASSERT_TRUE((*tier)->WriteRun(run).ok());
    for (int i = 0; i < kRecords; ++i) {
      Aligned back(4096);
      ASSERT_TRUE((*tier)->Read(slots[i], 4096, back.p).ok());
      EXPECT_EQ(std::memcmp(back.p, data[i]->p, 4096), 0) << i;
    }
    // Not adjacent: refused, naming the record.
    std::vector<SsdTier::RunRecord> gap = {run[0], run[2]};
    const absl::Status refused = (*tier)->WriteRun(gap);
    EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(refused.message().find("record 0"), std::string::npos) << refused;
    std::vector<SsdTier::RunRecord> too_long(SsdTier::kMaxRun + 1, run[0]);
    EXPECT_EQ((*tier)->WriteRun(too_long).code(), absl::StatusCode::kInvalidArgument);
  }
  auto reopened = SsdTier::Create(options);
  ASSERT_TRUE(reopened.ok());
  std::vector<std::pair<uint32_t, SsdRecord>> found = (*reopened)->TakeRecovered();
  ASSERT_EQ(found.size(), static_cast<size_t>(kRecords));
  std::sort(found.begin(), found.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  for (int i = 0; i < kRecords; ++i) {
    EXPECT_EQ(found[i].first, slots[i]);
    EXPECT_EQ(found[i].second.key, records[i].key);
    EXPECT_EQ(found[i].second.checksum, records[i].checksum);
  }
}

TEST(SsdTierTest, ARunFailsWholeWhenTheDiskFailsOneOfItsRecords) {
  const std::string dir = FreshDir("run_fault");
  std::atomic<int> writes{0};
  SsdTierOptions options{.directory = dir, .capacity_bytes = 16 * 8192, .max_block_bytes = 4096};
  uint32_t failing = UINT32_MAX;
  options.fault_injector = [&](bool write, uint32_t slot) -> absl::Status {
    if (write) ++writes;
    return write && slot == failing ? absl::UnavailableError("injected") : absl::OkStatus();
  };
  auto tier = SsdTier::Create(options);
  ASSERT_TRUE(tier.ok());
  Aligned a(4096), b(4096);
  std::memset(a.p, 1, 4096);
  std::memset(b.p, 2, 4096);
  const SsdRecord ra = RecordFor(1, a, 4096), rb = RecordFor(2, b, 4096);
  const uint32_t sa = *Take(**tier, 4096), sb = *Take(**tier, 4096);
  failing = sb;
  const std::vector<SsdTier::RunRecord> run = {{sa, &ra, a.p}, {sb, &rb, b.p}};
  EXPECT_EQ((*tier)->WriteRun(run).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(writes.load(), 2);
}

}  // namespace
}  // namespace kvtier
