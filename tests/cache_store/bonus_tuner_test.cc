#include "cache_store/bonus_tuner.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace kvtier {
namespace {

// Fingerprints as the store makes them: key hash bytes, so spread over 64 bits.
uint64_t Fp(uint64_t key) {
  uint64_t x = key + 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Blocks the policy believes return (P = 0.9) and that do come back 1.5 turnovers later,
// between one-off blocks (P = 0.05): LRU hits none of the returning blocks, a bonus of a
// turnover or more keeps them.
void ReturningAfterATurnoverAndAHalf(BonusTuner& tuner, uint32_t tier_blocks, int rounds) {
  uint64_t next_once = 1ull << 40;
  const uint64_t group = tier_blocks / 4;  // returning keys referenced per round
  for (int round = 0; round < rounds; ++round) {
    // Round r references group r's keys for the first time and group r-1's again; each
    // key among 5 one-offs, so a key returns 1.5 tier turnovers after it was referenced.
    for (uint64_t i = 0; i < group; ++i) {
      tuner.Reference(Fp(round * group + i), 0, 0.9);
      if (round > 0) tuner.Reference(Fp((round - 1) * group + i), 0, 0.9);
      for (int k = 0; k < 4; ++k) tuner.Reference(Fp(next_once++), 0, 0.05);
    }
  }
}

TEST(BonusTunerTest, StartsAtLru) {
  BonusTuner tuner(100);
  EXPECT_EQ(tuner.weight(), 0.0);
  EXPECT_EQ(BonusTuner::kWeights[0], 0.0);
  EXPECT_EQ(tuner.sample_rate(), 1.0);
}

TEST(BonusTunerTest, ChoosesABonusWhereReturningBlocksOutliveATurnover) {
  constexpr uint32_t kTier = 400;
  BonusTuner tuner(kTier);
  ReturningAfterATurnoverAndAHalf(tuner, kTier, 60);
  EXPECT_GT(tuner.weight(), 0.0);
  EXPECT_GT(tuner.hits(tuner.chosen()), 2 * tuner.hits(0) + 10);
}

// The policy's P(reuse) can be wrong: here the blocks it rates 0.9 never come back, and
// the ones it rates 0.1 come back within half a turnover. A bonus keeps the wrong blocks
// and loses those hits; the tuner stays at LRU.
TEST(BonusTunerTest, StaysAtLruWhereTheBonusCostsHits) {
  constexpr uint32_t kTier = 400;
  BonusTuner tuner(kTier);
  uint64_t next_once = 1ull << 40;
  uint64_t next_back = 0;
  for (int round = 0; round < 200; ++round) {
    // 100 keys, each referenced twice 150 references apart (3/8 of a turnover), among
    // one-off keys rated likely to return.
    for (uint64_t i = 0; i < 100; ++i) {
      tuner.Reference(Fp(next_back + i), 0, 0.1);
      if (round > 0) tuner.Reference(Fp(next_back - 100 + i), 0, 0.1);
      tuner.Reference(Fp(next_once++), 0, 0.9);
    }
    next_back += 100;
  }
  EXPECT_EQ(tuner.weight(), 0.0);
  for (size_t i = 1; i < BonusTuner::kWeights.size(); ++i) {
    EXPECT_GT(tuner.hits(0), tuner.hits(static_cast<int>(i)))
        << "weight " << BonusTuner::kWeights[i];
  }
}

// A tie (no candidate wins anything: every block is a one-off) changes nothing.
TEST(BonusTunerTest, ATieKeepsTheCurrentWeight) {
  BonusTuner tuner(64);
  for (uint64_t k = 0; k < 10'000; ++k) tuner.Reference(Fp(k), 0, (k % 10) / 10.0);
  EXPECT_EQ(tuner.weight(), 0.0);
  for (size_t i = 0; i < BonusTuner::kWeights.size(); ++i) {
    EXPECT_EQ(tuner.hits(static_cast<int>(i)), 0.0);
  }
}

// A tier larger than kSampleBlocks is simulated over a sample of its keys, chosen by
// fingerprint: the sampled small caches still find that a bonus wins here, from about a
// 16th of the references.
TEST(BonusTunerTest, ALargeTierIsSampledByFingerprint) {
  constexpr uint32_t kTier = BonusTuner::kSampleBlocks * 16;
  BonusTuner tuner(kTier);
  EXPECT_DOUBLE_EQ(tuner.sample_rate(), 1.0 / 16);
  ReturningAfterATurnoverAndAHalf(tuner, kTier, 40);
  EXPECT_GT(tuner.weight(), 0.0);
  // Roughly a 16th of the returning references reached the small caches: each of the
  // chosen cache's hits is one, and all rounds but the first return 1/4 of the tier.
  const double returning = 39.0 * kTier / 4;
  EXPECT_GT(tuner.hits(tuner.chosen()), 0.0);
  EXPECT_LT(tuner.hits(tuner.chosen()), returning / 16 * 2);
}

// Block sizes: a block of a size class of which the tier holds fewer blocks fills more of
// the small cache, so fewer of them fit: 40 blocks of a class of which the tier holds 20
// cycle through without a hit, while the same 40 keys hit when the tier holds 80.
TEST(BonusTunerTest, ABlockFillsItsShareOfItsSizeClass) {
  for (uint32_t capacity : {20u, 80u}) {
    BonusTuner tuner(80);
    for (int round = 0; round < 50; ++round) {
      for (uint64_t k = 0; k < 40; ++k) tuner.Reference(Fp(k), capacity, 0.5);
    }
    if (capacity == 20) {
      EXPECT_EQ(tuner.hits(0), 0.0);
    } else {
      EXPECT_GT(tuner.hits(0), 0.0);
    }
  }
}

}  // namespace
}  // namespace kvtier
