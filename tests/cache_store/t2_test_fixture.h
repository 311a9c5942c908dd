// The fixture of the BlockStore-with-T2 tests (block_store_t2_test.cc, t2_admission_test.cc,
// t2_promotion_test.cc):
// a 4-slot T1 over a 16-slot T2 in a fresh directory, with helpers to open the store, look a
// prompt up and read a lease back byte for byte.
#ifndef KVTIER_TESTS_CACHE_STORE_T2_TEST_FIXTURE_H_
#define KVTIER_TESTS_CACHE_STORE_T2_TEST_FIXTURE_H_

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

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
