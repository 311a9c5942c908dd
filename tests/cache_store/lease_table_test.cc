#include "cache_store/lease_table.h"

#include <gtest/gtest.h>

namespace kvtier {
namespace {

const absl::Time kT0 = absl::UnixEpoch() + absl::Hours(1);

TEST(LeaseTableTest, GrantFindRelease) {
  LeaseTable table(10);
  absl::StatusOr<uint64_t> id = table.Grant("a", {1, 2}, kT0 + absl::Seconds(5));
  ASSERT_TRUE(id.ok());
  EXPECT_NE(*id, 0u);
  absl::StatusOr<const Lease*> lease = table.Find(*id, "a");
  ASSERT_TRUE(lease.ok());
  EXPECT_EQ((*lease)->handles, (std::vector<uint32_t>{1, 2}));
  // Another tenant cannot see or end it, and learns nothing: plain NOT_FOUND.
  EXPECT_EQ(table.Find(*id, "b").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(table.Release(*id, "b").status().code(), absl::StatusCode::kNotFound);
  absl::StatusOr<std::vector<uint32_t>> released = table.Release(*id, "a");
  ASSERT_TRUE(released.ok());
  EXPECT_EQ(*released, (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(table.Release(*id, "a").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(table.active(), 0u);
  // The released lease's queue record must not expire anything later.
  EXPECT_TRUE(table.ExpireUntil(kT0 + absl::Hours(1)).empty());
}

TEST(LeaseTableTest, ExpiryReturnsHandlesAndIsReportedAsExpired) {
  LeaseTable table(10);
  uint64_t early = *table.Grant("a", {1}, kT0 + absl::Seconds(1));
  uint64_t late = *table.Grant("a", {2, 3}, kT0 + absl::Seconds(10));
  EXPECT_TRUE(table.ExpireUntil(kT0).empty());
  EXPECT_EQ(table.ExpireUntil(kT0 + absl::Seconds(1)), (std::vector<uint32_t>{1}));
  absl::Status s = table.Find(early, "a").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("expired"), std::string_view::npos);
  EXPECT_EQ(table.Find(early, "b").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(table.Find(late, "a").ok());
  EXPECT_EQ(table.ExpireUntil(kT0 + absl::Minutes(1)), (std::vector<uint32_t>{2, 3}));
}

TEST(LeaseTableTest, BoundedNumberOfActiveLeases) {
  LeaseTable table(2);
  ASSERT_TRUE(table.Grant("a", {1}, kT0).ok());
  ASSERT_TRUE(table.Grant("a", {1}, kT0).ok());
  EXPECT_EQ(table.Grant("a", {1}, kT0).status().code(), absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace kvtier
