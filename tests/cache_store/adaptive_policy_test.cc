#include "cache_store/adaptive_policy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <vector>

namespace kvtier {
namespace {

BlockTraits Traits(uint64_t fingerprint, uint32_t depth = 0, bool tail = false) {
  return BlockTraits{.key_fingerprint = fingerprint, .depth = depth, .prompt_tail = tail};
}

// A full tier driven the way the store drives the policy: a key that is resident is an
// access; a new key evicts the policy's victim when every handle is taken.
class TierModel {
 public:
  TierModel(AdaptivePolicy& policy, uint32_t blocks) : policy_(policy) {
    for (uint32_t h = blocks; h-- > 0;) free_handles_.push_back(h);
  }
  void Touch(uint64_t key, const BlockTraits& traits) {
    if (auto it = resident_.find(key); it != resident_.end()) {
      policy_.OnAccess(it->second, traits);
      return;
    }
    if (free_handles_.empty()) {
      const uint32_t victim = *policy_.Victim();
      auto vit = std::find_if(resident_.begin(), resident_.end(),
                              [&](const auto& kv) { return kv.second == victim; });
      resident_.erase(vit);
      policy_.OnLeave(victim, /*evicted=*/true);
      free_handles_.push_back(victim);
    }
    const uint32_t h = free_handles_.back();
    free_handles_.pop_back();
    policy_.OnResident(h, traits);
    policy_.SetEvictable(h, true);
    resident_[key] = h;
  }
  const std::map<uint64_t, uint32_t>& resident() const { return resident_; }  // key -> handle

 private:
  AdaptivePolicy& policy_;
  std::vector<uint32_t> free_handles_;
  std::map<uint64_t, uint32_t> resident_;
};

TEST(AdaptivePolicyTest, ClassesSeparateCountTailAndDepth) {
  EXPECT_NE(AdaptivePolicy::ClassOf(1, Traits(0)), AdaptivePolicy::ClassOf(2, Traits(0)));
  EXPECT_EQ(AdaptivePolicy::ClassOf(4, Traits(0)), AdaptivePolicy::ClassOf(200, Traits(0)));
  EXPECT_NE(AdaptivePolicy::ClassOf(1, Traits(0, 0, true)), AdaptivePolicy::ClassOf(1, Traits(0)));
  EXPECT_NE(AdaptivePolicy::ClassOf(1, Traits(0, 1)), AdaptivePolicy::ClassOf(1, Traits(0, 8)));
  EXPECT_EQ(AdaptivePolicy::ClassOf(1, Traits(0, 1)), AdaptivePolicy::ClassOf(1, Traits(0, 2)));
  EXPECT_NE(AdaptivePolicy::ClassOf(1, Traits(0, 2)), AdaptivePolicy::ClassOf(1, Traits(0, 3)));
  // Distance from the end of the Put: 0, 1, 2 and 3+ are four classes.
  auto to_end = [](uint8_t n) {
    BlockTraits t = Traits(0, 4);
    t.blocks_to_end = n;
    return AdaptivePolicy::ClassOf(1, t);
  };
  EXPECT_NE(to_end(0), to_end(1));
  EXPECT_NE(to_end(1), to_end(2));
  EXPECT_NE(to_end(2), to_end(3));
  EXPECT_EQ(to_end(3), to_end(255));
  std::set<int> seen;
  for (uint32_t count : {1u, 2u, 3u, 4u, 99u}) {
    for (uint32_t depth : {0u, 1u, 5u, 1000u, 1u << 30, UINT32_MAX}) {
      for (bool tail : {false, true}) {
        for (uint8_t end : {0, 1, 2, 3, 200}) {
          BlockTraits t = Traits(0, depth, tail);
          t.blocks_to_end = end;
          const int c = AdaptivePolicy::ClassOf(count, t);
          EXPECT_GE(c, 0);
          EXPECT_LT(c, AdaptivePolicy::kClasses);
          seen.insert(c);
        }
      }
    }
  }
  EXPECT_EQ(seen.size(), 4u * 2 * 4 * 4);  // 4 counts, tail or not, depth buckets 0/1/2/7, 4 ends
  // Where the block's Put began (root, continuation, other) splits each shape in three.
  auto with_origin = [](uint8_t origin) {
    BlockTraits t = Traits(0, 4);
    t.origin = origin;
    return AdaptivePolicy::ClassOf(1, t);
  };
  EXPECT_NE(with_origin(kOriginOther), with_origin(kOriginRoot));
  EXPECT_NE(with_origin(kOriginRoot), with_origin(kOriginContinuation));
  EXPECT_NE(with_origin(kOriginOther), with_origin(kOriginContinuation));
  EXPECT_EQ(with_origin(kOriginContinuation), with_origin(200));  // out of range: capped
  EXPECT_LT(with_origin(kOriginContinuation), AdaptivePolicy::kClasses);
  EXPECT_EQ(AdaptivePolicy::ClassOf(1, BlockTraits{.origin = kOriginRoot},
                                    AdaptivePolicy::Ingredients{.origin = false}),
            AdaptivePolicy::ClassOf(1, BlockTraits{}, AdaptivePolicy::Ingredients{.origin = false}));
  // The output length the client reported splits each of those shapes in five.
  auto with_output = [](uint32_t out) {
    BlockTraits t = Traits(0, 4);
    t.output_tokens = out;
    return AdaptivePolicy::ClassOf(1, t);
  };
  EXPECT_NE(with_output(0), with_output(10));
  EXPECT_NE(with_output(10), with_output(900));
  EXPECT_EQ(with_output(600), with_output(UINT32_MAX));
  EXPECT_EQ(with_output(10) / kOutputTokensBuckets, with_output(900) / kOutputTokensBuckets);
  EXPECT_LT(with_output(UINT32_MAX), AdaptivePolicy::kClasses);
}

// Ablations (docs/policy.md "Ablation"): each ingredient turns off by name, and off it
// changes what it should and nothing else.
TEST(AdaptivePolicyTest, AblationsTurnIngredientsOff) {
  absl::StatusOr<AdaptivePolicy::Ingredients> none = AdaptivePolicy::ParseAblation("");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->count && none->tail && none->depth && none->blocks_to_end && none->output &&
              none->origin && none->ghost_count && none->bonus && none->leaves_only);
  absl::StatusOr<AdaptivePolicy::Ingredients> no_origin = AdaptivePolicy::ParseAblation("-origin");
  ASSERT_TRUE(no_origin.ok());
  EXPECT_FALSE(no_origin->origin);
  EXPECT_TRUE(no_origin->output && no_origin->tune);
  absl::StatusOr<AdaptivePolicy::Ingredients> no_output = AdaptivePolicy::ParseAblation("-output");
  ASSERT_TRUE(no_output.ok());
  BlockTraits short_out = Traits(0, 3), long_out = Traits(0, 3);
  short_out.output_tokens = 20;
  long_out.output_tokens = 2000;
  EXPECT_EQ(AdaptivePolicy::ClassOf(1, short_out, *no_output),
            AdaptivePolicy::ClassOf(1, long_out, *no_output));
  EXPECT_NE(AdaptivePolicy::ClassOf(1, short_out), AdaptivePolicy::ClassOf(1, long_out));
  absl::StatusOr<AdaptivePolicy::Ingredients> in =
      AdaptivePolicy::ParseAblation("-count,-depth,-leaves_only");
  ASSERT_TRUE(in.ok());
  EXPECT_FALSE(in->count);
  EXPECT_FALSE(in->depth);
  EXPECT_FALSE(in->leaves_only);
  EXPECT_TRUE(in->tail && in->blocks_to_end && in->ghost_count && in->bonus);
  // Without count and depth, those no longer separate classes; the tail still does.
  EXPECT_EQ(AdaptivePolicy::ClassOf(1, Traits(0, 1), *in),
            AdaptivePolicy::ClassOf(4, Traits(0, 9), *in));
  EXPECT_NE(AdaptivePolicy::ClassOf(1, Traits(0, 1), *in),
            AdaptivePolicy::ClassOf(1, Traits(0, 1, true), *in));
  EXPECT_EQ(AdaptivePolicy::ClassOf(3, Traits(0, 5, true)),
            AdaptivePolicy::ClassOf(3, Traits(0, 5, true), AdaptivePolicy::Ingredients{}));

  for (const char* bad : {"count", "-nothing", "-count,,-bogus", "-"}) {
    absl::StatusOr<AdaptivePolicy::Ingredients> r = AdaptivePolicy::ParseAblation(bad);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  absl::StatusOr<std::unique_ptr<EvictionPolicy>> p =
      MakeEvictionPolicy("adaptive:-leaves_only", 4, 4);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_FALSE((*p)->leaves_only());
  EXPECT_EQ(MakeEvictionPolicy("adaptive:-bogus", 4, 4).status().code(),
            absl::StatusCode::kInvalidArgument);

  // Without the bonus, a block with a reuse history is evicted in plain recency order.
  AdaptivePolicy plain(8, 8, AdaptivePolicy::Ingredients{.bonus = false});
  for (uint32_t h = 0; h < 3; ++h) {
    plain.OnResident(h, Traits(100 + h));
    plain.SetEvictable(h, true);
  }
  plain.OnAccess(0, Traits(100));
  plain.OnAccess(1, Traits(101));
  EXPECT_EQ(plain.Victim(), 2u);
  plain.OnAccess(2, Traits(102));
  EXPECT_EQ(plain.Victim(), 0u);
}

TEST(AdaptivePolicyTest, WithoutHistoryItIsLru) {
  AdaptivePolicy p(8, 8);
  for (uint32_t h = 0; h < 4; ++h) {
    p.OnResident(h, Traits(100 + h));
    p.SetEvictable(h, true);
  }
  EXPECT_EQ(p.Victim(), 0u);
  p.OnAccess(0, Traits(100));  // now class "2 accesses", and most recent
  EXPECT_EQ(p.Victim(), 1u);
  p.SetEvictable(1, false);
  EXPECT_EQ(p.Victim(), 2u);
  EXPECT_EQ(p.evictable_size(), 3u);
  p.OnLeave(2, /*evicted=*/true);
  EXPECT_FALSE(p.IsResident(2));
  EXPECT_EQ(p.Victim(), 3u);
}

// Blocks of one class (partial prompt tails) never come back; blocks of another (depth 0)
// always do. After a while the policy keeps the returning class longer than LRU would:
// the tuner, which starts at LRU, finds that a bonus wins hits here.
TEST(AdaptivePolicyTest, LearnsWhichClassComesBack) {
  constexpr uint32_t kBlocks = 16;
  AdaptivePolicy p(kBlocks, kBlocks);
  EXPECT_EQ(p.bonus_weight(), 0.0);  // LRU until the small caches show better
  uint64_t next_tail_key = 1'000'000;
  TierModel tier(p, kBlocks);
  auto touch = [&](uint64_t key, bool tail) { tier.Touch(key, Traits(key, 0, tail)); };
  // 12 recurring keys, each followed by two one-off tails: a key returns after 36
  // references to a 16-block tier, so LRU hits none of them.
  for (int round = 0; round < 300; ++round) {
    for (uint64_t k = 0; k < 12; ++k) {
      touch(k, false);
      touch(next_tail_key++, true);
      touch(next_tail_key++, true);
    }
  }
  const int tail_class = AdaptivePolicy::ClassOf(1, Traits(0, 0, true));
  const int recurring_class = AdaptivePolicy::ClassOf(4, Traits(0, 0, false));
  EXPECT_LT(p.ClassReuseProbability(tail_class), 0.2);
  EXPECT_GT(p.ClassReuseProbability(recurring_class), 0.8);
  EXPECT_GT(p.bonus_weight(), 0.0);
  // The tier now holds every recurring block, and tails only beside them.
  int recurring = 0;
  for (const auto& [key, h] : tier.resident()) recurring += key < 12 ? 1 : 0;
  EXPECT_EQ(recurring, 12);
  // And the next victim is a tail, first in the order of the weight now in use (the
  // heaps were rebuilt when the tuner changed it).
  const uint32_t victim = *p.Victim();
  for (const auto& [key, h] : tier.resident()) EXPECT_FALSE(p.EvictsBefore(h, victim));
  for (const auto& [key, h] : tier.resident()) {
    if (h == victim) {
      EXPECT_GE(key, 1'000'000u);
    }
  }
}

// A reference the tier below served (a T2 hit in place) reaches the tuner's small caches:
// the second reference to a key is a hit in each of them, as the second OnResident of a
// key the tier gave up would be. With the fixed weight (-tune) nothing is simulated.
TEST(AdaptivePolicyTest, ReferencesServedBelowReachTheTuner) {
  for (bool tune : {true, false}) {
    AdaptivePolicy p(8, 8, AdaptivePolicy::Ingredients{.tune = tune});
    p.OnReferenceBelow(Traits(7), 1);
    for (size_t i = 0; i < BonusTuner::kWeights.size(); ++i) {
      EXPECT_EQ(p.tuner().hits(static_cast<int>(i)), 0.0);
    }
    p.OnReferenceBelow(Traits(7), 2);
    p.OnResident(0, Traits(7));
    for (size_t i = 0; i < BonusTuner::kWeights.size(); ++i) {
      EXPECT_EQ(p.tuner().hits(static_cast<int>(i)), tune ? 2.0 : 0.0) << "weight " << i;
    }
  }
}

// A T2 hit served in place of a key T1 evicted, still in T1's ghost history, is a return:
// its class's trial closes as a success (else T1 would learn that the blocks T2 serves
// never come back) and a new trial opens, which fails when it ages out unreferenced.
TEST(AdaptivePolicyTest, AHitBelowOfAnEvictedKeyIsASuccess) {
  for (bool below : {false, true}) {
    AdaptivePolicy p(/*handles=*/4, /*tier_blocks=*/4,
                     AdaptivePolicy::Ingredients{.tune = false});
    TierModel tier(p, 4);
    BlockTraits probe = Traits(1, /*depth=*/40);
    const int cls = AdaptivePolicy::ClassOf(1, probe);
    tier.Touch(1, probe);
    // Evict it: four other keys of another class.
    for (uint64_t k = 100; k < 104; ++k) tier.Touch(k, Traits(k, /*depth=*/1));
    ASSERT_EQ(tier.resident().count(1), 0u);
    const double before = p.ClassReuseProbability(cls);
    if (below) p.OnReferenceBelow(probe, 2);
    const double after = p.ClassReuseProbability(cls);
    if (below) {
      EXPECT_GT(after, before);
      // A second reference below of the same key closes the new trial (class count 2).
      const int cls2 = AdaptivePolicy::ClassOf(2, probe);
      const double before2 = p.ClassReuseProbability(cls2);
      p.OnReferenceBelow(probe, 3);
      EXPECT_GT(p.ClassReuseProbability(cls2), before2);
    } else {
      EXPECT_EQ(after, before);
    }
    // A key never evicted from T1 is no trial.
    const double other = p.ClassReuseProbability(AdaptivePolicy::ClassOf(1, Traits(9, 40)));
    p.OnReferenceBelow(Traits(999, 40), 1);
    EXPECT_EQ(p.ClassReuseProbability(AdaptivePolicy::ClassOf(1, Traits(9, 40))), other);
  }
}

// Each learner (a tenant's blocks of one size class; the store names them with or without
// quotas) learns its classes from its own trials: two tenants in one partition whose
// blocks of one class behave oppositely are each ranked by their own behaviour, not the
// tier's mix, and a learner without trials of a class starts at the tier's estimate.
TEST(AdaptivePolicyTest, EachLearnerLearnsFromItsOwnTrials) {
  AdaptivePolicy p(/*handles=*/16, /*tier_blocks=*/64);
  auto in = [](uint64_t key, uint32_t learner, uint32_t depth = 2) {
    BlockTraits t = Traits(key, depth);
    t.learner = learner;  // one partition (no quotas)
    return t;
  };
  // Blocks that stay, so that the counts halve every 8 x 12 operations, not every 16.
  for (uint32_t h = 4; h < 16; ++h) p.OnResident(h, in(5'000'000 + h, 3, /*depth=*/100));
  for (uint64_t i = 0; i < 200; ++i) {
    p.OnResident(0, in(i, 0));  // learner 0: every block is used again
    p.OnAccess(0, in(i, 0));
    p.OnLeave(0, /*evicted=*/false);
    p.OnResident(1, in(1'000'000 + i, 1));  // learner 1: never
    p.SetEvictable(1, true);
    p.OnLeave(1, /*evicted=*/true);
  }
  const int cls = AdaptivePolicy::ClassOf(1, Traits(0, 2));
  const double tier = p.ClassReuseProbability(cls);
  EXPECT_GT(p.ClassReuseProbability(0, cls), 0.8);
  EXPECT_LT(p.ClassReuseProbability(1, cls), 0.2);
  EXPECT_GT(tier, 0.3);
  EXPECT_LT(tier, 0.7);
  EXPECT_DOUBLE_EQ(p.ClassReuseProbability(2, cls), tier);  // no trials of its own
  // A block is ranked by its partition's estimate.
  p.OnResident(2, in(7, 0));
  p.OnResident(3, in(1'000'007, 1));
  EXPECT_DOUBLE_EQ(p.ReuseScore(2), p.ClassReuseProbability(0, cls));
  EXPECT_DOUBLE_EQ(p.ReuseScore(3), p.ClassReuseProbability(1, cls));
}

// A partition (a tenant's blocks of one size class) that must make room within its own
// share is ordered on its own clock (OwnVictimOf): another tenant's traffic between two of
// its accesses does not turn its reuse bonus into nothing. Here 5,000 of a neighbour's
// operations fall between the partition's block of an unlearned class (P = 1/2) and its
// block of a class it learned does not come back. On the tier's clock (VictimOf, and
// EvictsBefore across partitions) the older block goes first: its bonus, 2,000 ticks, is
// less than the neighbour's 5,000. On the partition's own clock the block that does not
// come back goes.
TEST(AdaptivePolicyTest, APartitionsOwnOrderRunsOnItsOwnClock) {
  // The fixed weight kBonusTurnovers (the tuned one starts at 0, which is LRU).
  AdaptivePolicy p(/*handles=*/8, /*tier_blocks=*/1000, AdaptivePolicy::Ingredients{.tune = false});
  p.OnResident(0, Traits(1, /*depth=*/0));
  p.SetEvictable(0, true);
  for (uint64_t i = 0; i < 5000; ++i) {  // the neighbour: blocks put and deleted
    BlockTraits other = Traits(1'000'000 + i);
    other.partition = 1;
    p.OnResident(1, other);
    p.OnLeave(1, /*evicted=*/false);
  }
  for (uint64_t i = 0; i < 100; ++i) {  // deep blocks that never come back
    p.OnResident(2, Traits(2'000'000 + i, /*depth=*/9));
    p.SetEvictable(2, true);
    p.OnLeave(2, /*evicted=*/true);
  }
  EXPECT_LT(p.ClassReuseProbability(AdaptivePolicy::ClassOf(1, Traits(0, 9))), 0.1);
  EXPECT_DOUBLE_EQ(p.ClassReuseProbability(AdaptivePolicy::ClassOf(1, Traits(0, 0))), 0.5);
  p.OnResident(3, Traits(3, /*depth=*/9));
  p.SetEvictable(3, true);
  EXPECT_EQ(p.OwnVictimOf(0), 3u);
  EXPECT_EQ(p.VictimOf(0), 0u);
  EXPECT_EQ(p.Victim(), 0u);
  EXPECT_TRUE(p.EvictsBefore(0, 3));
  // Both orders follow changes: the old block's access makes it the newest on both clocks.
  p.OnAccess(0, Traits(1, 0));
  EXPECT_EQ(p.OwnVictimOf(0), 3u);
  EXPECT_EQ(p.VictimOf(0), 3u);
  p.SetEvictable(3, false);
  EXPECT_EQ(p.OwnVictimOf(0), 0u);
  EXPECT_EQ(p.VictimOf(0), 0u);
  EXPECT_EQ(p.OwnVictimOf(1), std::nullopt);
  EXPECT_EQ(p.OwnVictimOf(7), std::nullopt);  // a partition never seen
}

// The ghost history is per learner (a tenant's blocks of one size class, with or without
// quotas): a neighbour's flood of evictions does not age a tenant's evicted keys out, so
// its returns still count as reuse. With one history for the tier, the 100 evictions below
// would have failed the key's trial (the window is 4 turnovers) and it would return as a
// first-time block. Both tenants are in one partition here, as without quotas.
TEST(AdaptivePolicyTest, ANeighboursEvictionsDoNotAgeALearnersGhostsOut) {
  AdaptivePolicy p(/*handles=*/8, /*tier_blocks=*/8);
  BlockTraits mine = Traits(42);
  mine.learner = 0;
  p.OnResident(0, mine);
  p.SetEvictable(0, true);
  p.OnLeave(0, /*evicted=*/true);
  for (uint64_t i = 0; i < 100; ++i) {  // the neighbour: other keys, another class
    BlockTraits scan = Traits(1000 + i, /*depth=*/9);
    scan.learner = 1;
    p.OnResident(1, scan);
    p.SetEvictable(1, true);
    p.OnLeave(1, /*evicted=*/true);
  }
  const int cls = AdaptivePolicy::ClassOf(1, mine);
  EXPECT_DOUBLE_EQ(p.ClassReuseProbability(cls), 0.5);  // no trial closed yet
  p.OnResident(2, mine);  // it comes back: a reuse, and it keeps its access count
  EXPECT_DOUBLE_EQ(p.ClassReuseProbability(cls), 2.0 / 3.0);
  EXPECT_LT(p.ClassReuseProbability(AdaptivePolicy::ClassOf(1, Traits(0, 9))), 0.1);
  p.SetEvictable(2, true);
  p.OnAccess(2, mine);
  EXPECT_NE(AdaptivePolicy::ClassOf(2, mine), AdaptivePolicy::ClassOf(3, mine));
}

// Recurring blocks and one-off blocks of the same shape (access count and its ghost left
// out, so that only the output length separates them): the policy learns from the output
// length their clients reported that one comes back and the other does not, and an
// output class it has not seen starts at its shape's other classes.
TEST(AdaptivePolicyTest, LearnsFromTheReportedOutputLength) {
  constexpr uint32_t kBlocks = 16;
  AdaptivePolicy p(kBlocks, kBlocks,
                   AdaptivePolicy::Ingredients{.count = false, .ghost_count = false});
  uint64_t next_once = 1'000'000;
  TierModel tier(p, kBlocks);
  auto traits = [](uint64_t key, uint32_t out) {
    BlockTraits t = Traits(key, 2);
    t.output_tokens = out;
    return t;
  };
  auto touch = [&](uint64_t key, uint32_t out) { tier.Touch(key, traits(key, out)); };
  for (int round = 0; round < 300; ++round) {
    for (uint64_t k = 0; k < 12; ++k) {
      touch(k, 20);             // a short answer: its prompt comes back
      touch(next_once++, 700);  // a long final answer: never again
      touch(next_once++, 700);
    }
  }
  const int once =
      AdaptivePolicy::ClassOf(1, traits(0, 700), {.count = false, .ghost_count = false});
  const int back =
      AdaptivePolicy::ClassOf(1, traits(0, 20), {.count = false, .ghost_count = false});
  const int unseen =
      AdaptivePolicy::ClassOf(1, traits(0, 200), {.count = false, .ghost_count = false});
  EXPECT_LT(p.ClassReuseProbability(once), 0.2);
  EXPECT_GT(p.ClassReuseProbability(back), 0.8);
  EXPECT_GT(p.ClassReuseProbability(unseen), 0.3);  // the shape's mix, not a class's extreme
  EXPECT_LT(p.ClassReuseProbability(unseen), 0.7);
  int recurring = 0;
  for (const auto& [key, h] : tier.resident()) recurring += key < 12 ? 1 : 0;
  EXPECT_EQ(recurring, 12);
}

// Against a plain model: the victim is always the evictable block with the smallest
// priority, whatever sequence of calls leads there (checks the indexed heap).
TEST(AdaptivePolicyTest, VictimIsAlwaysAnEvictableResidentBlock) {
  constexpr uint32_t kN = 32;
  constexpr uint32_t kPartitions = 3;  // handle h is filed in partition h % 3
  AdaptivePolicy p(kN, kN);
  std::vector<int> state(kN, 0);  // 0 absent, 1 resident, 2 evictable
  uint64_t x = 99;
  for (int step = 0; step < 50000; ++step) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    const uint32_t h = static_cast<uint32_t>((x >> 33) % kN);
    const uint64_t key = (x >> 40) % 64;
    switch ((x >> 20) % 5) {
      case 0:
        if (state[h] == 0) {
          BlockTraits t = Traits(key, static_cast<uint32_t>(key % 9), key % 5 == 0);
          t.partition = h % kPartitions;
          p.OnResident(h, t);
          state[h] = 1;
        }
        break;
      case 1:
        if (state[h] != 0) p.OnAccess(h, Traits(key, static_cast<uint32_t>(key % 9)));
        break;
      case 2:
        if (state[h] != 0) {
          p.SetEvictable(h, true);
          state[h] = 2;
        }
        break;
      case 3:
        if (state[h] != 0) {
          p.SetEvictable(h, false);
          state[h] = 1;
        }
        break;
      case 4:
        p.OnLeave(h, (x >> 10) % 2 == 0);
        state[h] = 0;
        break;
    }
    const size_t evictable = std::count(state.begin(), state.end(), 2);
    ASSERT_EQ(p.evictable_size(), evictable);
    if (evictable == 0) {
      ASSERT_FALSE(p.Victim().has_value());
    } else {
      ASSERT_EQ(state[*p.Victim()], 2) << "step " << step;
    }
    for (uint32_t i = 0; i < kN; ++i) {
      ASSERT_EQ(p.IsResident(i), state[i] != 0);
      ASSERT_EQ(p.IsEvictable(i), state[i] == 2);
    }
    // Per partition, both orders name one of its evictable blocks; the tier's order names
    // the one that goes before all others of the partition, and Victim() the first of all.
    for (uint32_t q = 0; q < kPartitions; ++q) {
      const std::optional<uint32_t> v = p.VictimOf(q);
      const std::optional<uint32_t> own = p.OwnVictimOf(q);
      bool any = false;
      for (uint32_t i = q; i < kN; i += kPartitions) any = any || state[i] == 2;
      ASSERT_EQ(v.has_value(), any) << "step " << step;
      ASSERT_EQ(own.has_value(), any) << "step " << step;
      if (!any) continue;
      ASSERT_EQ(*v % kPartitions, q);
      ASSERT_EQ(*own % kPartitions, q);
      ASSERT_EQ(state[*v], 2);
      ASSERT_EQ(state[*own], 2);
      for (uint32_t i = q; i < kN; i += kPartitions) {
        if (state[i] == 2 && i != *v) {
          ASSERT_FALSE(p.EvictsBefore(i, *v)) << "step " << step;
        }
      }
      if (evictable > 0) {
        ASSERT_FALSE(p.EvictsBefore(*v, *p.Victim())) << "step " << step;
      }
    }
  }
}

// The own-clock order of a partition is built when the store first asks for it: from then
// on it names the same victims as an order kept from the start.
TEST(AdaptivePolicyTest, AnOwnOrderBuiltLateMatchesOneKeptFromTheStart) {
  constexpr uint32_t kN = 32;
  AdaptivePolicy early(kN, kN), late(kN, kN);
  std::vector<bool> resident(kN, false);
  uint64_t x = 7;
  for (int step = 0; step < 40000; ++step) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    const uint32_t h = static_cast<uint32_t>((x >> 33) % kN);
    const uint64_t key = (x >> 40) % 64;
    BlockTraits t = Traits(key, static_cast<uint32_t>(key % 9), key % 5 == 0);
    t.partition = h % 2;
    t.learner = h % 2;
    for (AdaptivePolicy* p : {&early, &late}) {
      switch ((x >> 20) % 4) {
        case 0:
          if (!resident[h]) p->OnResident(h, t);
          if (!resident[h]) p->SetEvictable(h, true);
          break;
        case 1:
          if (resident[h]) p->OnAccess(h, t);
          break;
        case 2:
          if (resident[h]) p->SetEvictable(h, (x >> 12) % 2 == 0);
          break;
        case 3:
          p->OnLeave(h, (x >> 10) % 2 == 0);
          break;
      }
    }
    switch ((x >> 20) % 4) {
      case 0: resident[h] = true; break;
      case 3: resident[h] = false; break;
      default: break;
    }
    for (uint32_t q = 0; q < 2; ++q) {
      const std::optional<uint32_t> e = early.OwnVictimOf(q);
      if (step >= 20000) {
        ASSERT_EQ(late.OwnVictimOf(q), e) << "step " << step;
      }
    }
  }
}

}  // namespace
}  // namespace kvtier
