#include <gtest/gtest.h>

#include <numeric>
#include <random>

#include "kernels/page_copy.h"

namespace kvtier::kernels {
namespace {

TEST(PageCopyCpuTest, GatherThenScatterRestoresTheFragments) {
  constexpr uint64_t kPageBytes = 4096;
  constexpr uint32_t kPages = 64;
  std::vector<uint8_t> pool_bytes(kPageBytes * kPages);
  std::iota(pool_bytes.begin(), pool_bytes.end(), 0);
  PagePoolBytes pool{.pages = pool_bytes.data(), .page_bytes = kPageBytes, .num_pages = kPages};
  // Non-overlapping fragments, in random order, of random lengths (some empty).
  std::mt19937 rng(1);
  std::vector<CopyFragment> fragments;
  for (uint32_t p = 0; p < kPages; ++p) {
    const uint64_t off = rng() % 2048;
    fragments.push_back({p, off, rng() % (kPageBytes - off)});
  }
  fragments.push_back({5, 0, 0});
  std::shuffle(fragments.begin(), fragments.end(), rng);
  uint64_t total = 0;
  for (const auto& f : fragments) total += f.length;
  std::vector<uint8_t> staging(total);
  ASSERT_TRUE(GatherPagesCpu(pool, fragments, staging.data(), staging.size(), 3).ok());
  uint64_t pos = 0;
  for (const auto& f : fragments) {
    ASSERT_EQ(0, std::memcmp(staging.data() + pos,
                             pool_bytes.data() + f.page * kPageBytes + f.offset, f.length));
    pos += f.length;
  }
  std::vector<uint8_t> restored(pool_bytes.size(), 0);
  PagePoolBytes target{.pages = restored.data(), .page_bytes = kPageBytes, .num_pages = kPages};
  ASSERT_TRUE(ScatterPagesCpu(staging.data(), staging.size(), fragments, target, 3).ok());
  for (const auto& f : fragments) {
    ASSERT_EQ(0, std::memcmp(restored.data() + f.page * kPageBytes + f.offset,
                             pool_bytes.data() + f.page * kPageBytes + f.offset, f.length));
  }
}

TEST(PageCopyCpuTest, BadFragmentsAreRejectedAndNothingIsCopied) {
  std::vector<uint8_t> pages(2 * 100, 1), buf(300, 9);
  PagePoolBytes pool{.pages = pages.data(), .page_bytes = 100, .num_pages = 2};
  auto fails = [&](std::vector<CopyFragment> f, std::string_view words, bool scatter) {
    absl::Status s = scatter ? ScatterPagesCpu(buf.data(), buf.size(), f, pool)
                             : GatherPagesCpu(pool, f, buf.data(), buf.size());
    EXPECT_FALSE(s.ok());
    EXPECT_NE(std::string(s.message()).find(words), std::string::npos) << s;
    for (uint8_t b : buf) ASSERT_EQ(b, 9);
    for (uint8_t b : pages) ASSERT_EQ(b, 1);
  };
  fails({{2, 0, 10}}, "names page 2", false);
  fails({{0, 95, 10}}, "runs past a page", false);
  fails({{0, 0, 100}, {1, 0, 100}, {0, 0, 200}}, "runs past", false);
  fails({{0, 0, 100}, {1, 0, 100}, {1, 0, 100}, {0, 0, 1}}, "buffer has 300", false);
  fails({{0, 10, 20}, {0, 25, 10}}, "overlap", true);
}

}  // namespace
}  // namespace kvtier::kernels
