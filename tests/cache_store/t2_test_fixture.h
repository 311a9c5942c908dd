// The fixture of the BlockStore-with-T2 tests (block_store_t2_test.cc, t2_admission_test.cc,
// t2_promotion_test.cc):
// a 4-slot T1 over a 16-slot T2 in a fresh directory, with helpers to open the store, look a
// prompt up, read a lease back byte for byte (whole or streaming), and damage the disk.
#ifndef KVTIER_TESTS_CACHE_STORE_T2_TEST_FIXTURE_H_
#define KVTIER_TESTS_CACHE_STORE_T2_TEST_FIXTURE_H_

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cache_store/block_store.h"
#include "tests/cache_store/disk_faults.h"
#include "tests/cache_store/test_blocks.h"

namespace kvtier::testing {

inline constexpr std::string_view kTenant = "t";
inline constexpr uint32_t kT1Slots = 4;
inline constexpr uint32_t kT2Slots = 16;

inline std::string FreshDir(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "/kvtier_t2_" + name;
  std::filesystem::remove_all(dir);
  return dir;
}

inline BlockStoreOptions T2Options(const std::string& dir) {
  BlockStoreOptions o = SmallStoreOptions(kT1Slots);
  o.eviction_policy = "lru";
  o.t2 = {.directory = dir, .capacity_bytes = kT2Slots * SsdTier::SlotBytesFor(4096)};
  o.t2_admit_min_score = 0;
  o.t2_admit_min_return = 0;
  // Most tests here are about promotion, so every read promotes; t2_promotion_test.cc
  // covers the default (hits served from T2 in place until a block's 8th read).
  o.t2_promote_after_reads = 1;
  return o;
}

// Flips a byte of every block payload in a closed store's T2 file. The fixture's blocks are
// 4 KiB, so their T2 slots are 8 KiB (header, payload) side by side after the 4 KiB
// superblock and the 4 KiB slab table; the headers stay intact.
inline void CorruptEveryT2Payload(const std::string& dir) {
  const std::string path = dir + "/kvtier-t2.slab";
  const uint64_t bytes = std::filesystem::file_size(path);
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  for (uint64_t slot = 8192; slot + 8192 <= bytes; slot += 8192) {
    f.seekp(static_cast<std::streamoff>(slot + 4096 + 17));
    f.put('\x42');
  }
}

// Block i of a read, verified and compared byte for byte with what was stored.
inline ::testing::AssertionResult BlockIsIntact(BlockReadHandle& read, size_t i) {
  const BlockView& v = read.blocks()[i];
  if (absl::Status s = read.Verify(i, 0, v.size); !s.ok()) {
    return ::testing::AssertionFailure() << "block " << i << ": " << s;
  }
  const std::vector<uint8_t> want = PayloadFor(v.key, v.size);
  if (std::memcmp(v.data, want.data(), v.size) != 0) {
    return ::testing::AssertionFailure() << "block " << i << ": wrong bytes";
  }
  return ::testing::AssertionSuccess();
}

// Blocks [0, n) of a read all loaded, and each intact.
inline ::testing::AssertionResult EveryBlockLoadedAndIntact(BlockReadHandle& read, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (!read.Loaded(i)) return ::testing::AssertionFailure() << "block " << i << " not loaded";
    if (::testing::AssertionResult r = BlockIsIntact(read, i); !r) return r;
  }
  return ::testing::AssertionSuccess();
}

// A streaming read of a lease (BlockStore::ReadLeaseStreaming): the handle once the store
// opens it, and how many of its blocks have settled (loaded or failed) since.
class StreamingRead {
 public:
  StreamingRead(BlockStore& store, uint64_t lease_id) {
    store.ReadLeaseStreaming(kTenant, lease_id,
                             [this](absl::StatusOr<std::shared_ptr<BlockReadHandle>> r) {
                               ASSERT_TRUE(r.ok()) << r.status();
                               absl::MutexLock lock(&mu_);
                               read_ = *std::move(r);
                               read_->SetListener([this] {
                                 absl::MutexLock lock(&mu_);
                                 ++settled_;
                               });
                             });
  }
  // nullptr until the store has opened the read.
  std::shared_ptr<BlockReadHandle> handle() {
    absl::MutexLock lock(&mu_);
    return read_;
  }
  bool AwaitOpen(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto open = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return read_ != nullptr; };
    return mu_.AwaitWithTimeout(absl::Condition(&open), timeout);
  }
  // Whether n blocks settled within `timeout`.
  bool AwaitSettled(int n, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto done = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return settled_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
  }
  int settled() {
    absl::MutexLock lock(&mu_);
    return settled_;
  }
  // Drops this reference to the handle (the store releases the blocks with the last one).
  void Reset() {
    absl::MutexLock lock(&mu_);
    read_.reset();
  }

 private:
  absl::Mutex mu_;
  std::shared_ptr<BlockReadHandle> read_ ABSL_GUARDED_BY(mu_);
  int settled_ ABSL_GUARDED_BY(mu_) = 0;
};

class T2Test : public ::testing::Test {
 protected:
  void Open(const BlockStoreOptions& options) {
    store_.reset();
    auto s = BlockStore::Create(options);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = *std::move(s);
  }
  LookupResult Lookup(const std::vector<uint32_t>& tokens, bool lease = true) {
    auto r =
        store_->Lookup({.tenant = kTenant, .layout = &layout_, .tokens = tokens}, {.lease = lease});
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : LookupResult{};
  }
  // Reads the leased blocks and checks every byte.
  absl::Status ReadAndCheck(const LookupResult& found) {
    auto read = store_->ReadLease(kTenant, found.lease_id);
    if (!read.ok()) return read.status();
    for (const BlockView& v : (*read)->blocks()) {
      const std::vector<uint8_t> want = PayloadFor(v.key, v.size);
      EXPECT_EQ(std::memcmp(v.data, want.data(), v.size), 0) << "block " << v.key.ShortHex();
    }
    read->reset();
    return store_->Release(kTenant, found.lease_id);
  }

  KvLayout layout_ = SmallLayout();
  DiskFaults disk_;  // before store_: the store's I/O threads end first
  std::unique_ptr<BlockStore> store_;
  std::vector<uint32_t> a_ = Tokens(4 * 4, 1);  // 4 blocks
  std::vector<uint32_t> b_ = Tokens(4 * 4, 2);
};

}  // namespace kvtier::testing

#endif  // KVTIER_TESTS_CACHE_STORE_T2_TEST_FIXTURE_H_
