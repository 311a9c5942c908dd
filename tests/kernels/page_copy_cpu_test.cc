#include <gtest/gtest.h>

#include <cstring>
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

TEST(PageCopyCpuTest, MovesCopyRangesBetweenPagesOfTwoPools) {
  constexpr uint64_t kPageBytes = 1000;
  std::vector<uint8_t> from_bytes(4 * kPageBytes), to_bytes(6 * kPageBytes, 0);
  std::iota(from_bytes.begin(), from_bytes.end(), 0);
  const PagePoolBytes from{.pages = from_bytes.data(), .page_bytes = kPageBytes, .num_pages = 4};
  const PagePoolBytes to{.pages = to_bytes.data(), .page_bytes = kPageBytes, .num_pages = 6};
  // A restore's layer: the same range of each staging block into its (scattered) page.
  const std::vector<PageMove> moves = {
      {.src_page = 0, .dst_page = 5, .offset = 250, .length = 250},
      {.src_page = 1, .dst_page = 2, .offset = 250, .length = 250},
      {.src_page = 3, .dst_page = 0, .offset = 0, .length = kPageBytes},
      {.src_page = 2, .dst_page = 4, .offset = 999, .length = 0}};
  ASSERT_TRUE(MovePagesCpu(from, to, moves, 2).ok());
  std::vector<uint8_t> want(to_bytes.size(), 0);
  for (const PageMove& m : moves) {
    std::memcpy(want.data() + m.dst_page * kPageBytes + m.offset,
                from_bytes.data() + m.src_page * kPageBytes + m.offset, m.length);
  }
  EXPECT_EQ(to_bytes, want);
  EXPECT_EQ(to_bytes[5 * kPageBytes + 250], from_bytes[250]);  // not a tautology of `want`
}

TEST(PageCopyCpuTest, BadMovesAreRejectedAndNothingIsCopied) {
  std::vector<uint8_t> from_bytes(2 * 100, 1), to_bytes(3 * 100, 9);
  const PagePoolBytes from{.pages = from_bytes.data(), .page_bytes = 100, .num_pages = 2};
  const PagePoolBytes to{.pages = to_bytes.data(), .page_bytes = 100, .num_pages = 3};
  auto fails = [&](std::vector<PageMove> moves, std::string_view words) {
    const absl::Status s = MovePagesCpu(from, to, moves);
    EXPECT_FALSE(s.ok());
    EXPECT_NE(std::string(s.message()).find(words), std::string::npos) << s;
    for (uint8_t b : to_bytes) ASSERT_EQ(b, 9);
  };
  fails({{.src_page = 2, .dst_page = 0, .length = 1}}, "source of move 0 names page 2");
  fails({{.src_page = 0, .dst_page = 3, .length = 1}}, "destination of move 0 names page 3");
  fails({{.src_page = 0, .dst_page = 0, .offset = 90, .length = 20}}, "runs past a source page");
  fails({{.src_page = 0, .dst_page = 1, .offset = 0, .length = 50},
         {.src_page = 1, .dst_page = 1, .offset = 40, .length = 10}},
        "move destinations overlap");
}

}  // namespace
}  // namespace kvtier::kernels
