// The checksum functions against XXH3 itself: the one-pass copy-and-hash gives the same
// digest and the same bytes as a copy followed by a hash, for every size class of XXH3
// (short, mid-size, the long loop's partial and whole 1 KiB blocks) and unaligned sources,
// with both compiled variants (baseline and AVX2).
#include "cache_store/checksum.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "cache_store/xxh3_impl.h"

namespace kvtier {
namespace {

std::vector<uint8_t> Bytes(size_t n, uint32_t seed) {
  std::vector<uint8_t> v(n);
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& b : v) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b = static_cast<uint8_t>(x);
  }
  return v;
}

const std::vector<size_t> kSizes = {0,    1,    16,   17,   128,  129,  240,   241,
                                    255,  256,  1023, 1024, 1025, 1088, 2047,  2048,
                                    4097, 8191, 65536, 65536 + 13, (1 << 20) + 64};

TEST(ChecksumTest, CopyAndChecksumMatchesACopyThenAHashForEverySizeAndAlignment) {
  for (size_t size : kSizes) {
    for (size_t src_shift : {0, 1, 8, 33}) {
      for (size_t dst_shift : {0, 16, 3}) {
        for (HashSide side : {HashSide::kSource, HashSide::kDestination}) {
          const std::vector<uint8_t> src = Bytes(size + src_shift, static_cast<uint32_t>(size));
          std::vector<uint8_t> room(size + 128, 0xAB);
          uint8_t* const to =
              room.data() + (64 - reinterpret_cast<uintptr_t>(room.data()) % 64) + dst_shift;
          const uint64_t sum = CopyAndChecksum(to, src.data() + src_shift, size, side);
          SCOPED_TRACE(testing::Message() << "size " << size << " src+" << src_shift << " dst+"
                                          << dst_shift << " side " << static_cast<int>(side));
          EXPECT_EQ(sum, RangeChecksum(src.data() + src_shift, size));
          EXPECT_EQ(std::memcmp(to, src.data() + src_shift, size), 0);
          // Nothing written past the end.
          EXPECT_EQ(to[size], 0xAB);
        }
      }
    }
  }
}

TEST(ChecksumTest, EveryVariantsOnePassCopyMatchesItsHash) {
  std::vector<const internal::Xxh3Impl*> impls = {&internal::Xxh3Generic()};
#if defined(__x86_64__)
  if (internal::Xxh3Avx2() != nullptr && __builtin_cpu_supports("avx2")) {
    impls.push_back(internal::Xxh3Avx2());
  }
#endif
  for (const internal::Xxh3Impl* impl : impls) {
    for (size_t size : kSizes) {
      if (size <= internal::kXxh3MidsizeMax) continue;
      const std::vector<uint8_t> src = Bytes(size + 5, static_cast<uint32_t>(size) + 7);
      std::vector<uint8_t> room(size + 64);
      uint8_t* const to = room.data() + (16 - reinterpret_cast<uintptr_t>(room.data()) % 16) % 16;
      SCOPED_TRACE(testing::Message() << "size " << size);
      EXPECT_EQ(impl->copy_hash_long(to, src.data() + 5, size), impl->hash(src.data() + 5, size));
      EXPECT_EQ(std::memcmp(to, src.data() + 5, size), 0);
      // The variants agree with each other (they are one hash).
      EXPECT_EQ(impl->hash(src.data() + 5, size), internal::Xxh3Generic().hash(src.data() + 5, size));
    }
  }
}

TEST(ChecksumTest, TheOnePassCopyCountsItsBytesOnceInTheHashBudget) {
  const std::vector<uint8_t> src = Bytes(1 << 16, 3);
  std::vector<uint8_t> room((1 << 16) + 64);
  uint8_t* const to = room.data() + (16 - reinterpret_cast<uintptr_t>(room.data()) % 16) % 16;
  const uint64_t before = HashedBytes();
  CopyAndChecksum(to, src.data(), src.size(), HashSide::kSource);
  EXPECT_EQ(HashedBytes() - before, src.size());
}

}  // namespace
}  // namespace kvtier
