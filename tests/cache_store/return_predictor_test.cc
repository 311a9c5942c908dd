#include "cache_store/return_predictor.h"

#include <gtest/gtest.h>

#include <set>

namespace kvtier {
namespace {

BlockTraits Traits(uint32_t depth, uint8_t blocks_to_end) {
  return BlockTraits{.depth = depth, .blocks_to_end = blocks_to_end};
}

TEST(ReturnPredictorTest, ClassesSeparateTheEndTheDepthAndThePromptLength) {
  // The last block of a prompt, the one before it, and a block deep in the body.
  EXPECT_NE(ReturnPredictor::ClassOf(Traits(10, 0)), ReturnPredictor::ClassOf(Traits(10, 1)));
  // 3 and more blocks to the end are one bucket; prompts of 104 and 105 blocks one length.
  EXPECT_EQ(ReturnPredictor::ClassOf(Traits(100, 3)), ReturnPredictor::ClassOf(Traits(100, 4)));
  // Same depth and distance to the end bucket, prompts of 14 and 70 blocks: two classes.
  EXPECT_NE(ReturnPredictor::ClassOf(Traits(5, 8)), ReturnPredictor::ClassOf(Traits(5, 64)));
  std::set<int> seen;
  for (uint32_t depth : {0u, 1u, 2u, 5u, 100u, 1u << 20, UINT32_MAX - 300}) {
    for (int end : {0, 1, 2, 3, 7, 40, 255}) {
      const int c = ReturnPredictor::ClassOf(Traits(depth, static_cast<uint8_t>(end)));
      EXPECT_GE(c, 0);
      EXPECT_LT(c, ReturnPredictor::kClasses);
      seen.insert(c);
    }
  }
  EXPECT_GT(seen.size(), 20u);
}

TEST(ReturnPredictorTest, LearnsWhichClassesComeBackAndWhichAgeOut) {
  ReturnPredictor p(/*horizon=*/16);  // no halving within these 100 victims
  const BlockTraits returns = Traits(40, 30);  // a long prompt's body
  const BlockTraits never = Traits(3, 0);      // a short prompt's last block
  EXPECT_DOUBLE_EQ(p.Probability(returns), 0.5);  // the prior: admitted until shown otherwise
  EXPECT_DOUBLE_EQ(p.Probability(never), 0.5);
  uint64_t key = 1;
  for (int round = 0; round < 50; ++round) {
    const uint64_t back = key++;
    p.OnVictim(back, returns);
    p.OnVictim(key++, never);
    p.OnReturn(back);  // comes back while its trial is open
  }
  EXPECT_GT(p.Probability(returns), 0.9);
  EXPECT_LT(p.Probability(never), 0.05);
  // Only closed trials count: the records of `never` in the last 16 victims are still open.
  EXPECT_DOUBLE_EQ(p.trials(ReturnPredictor::ClassOf(never)), 50.0 - 8.0);
}

TEST(ReturnPredictorTest, AReturnAfterTheHorizonIsAFailureAndCountsOnce) {
  ReturnPredictor p(/*horizon=*/2);
  const BlockTraits t = Traits(20, 20);
  const int c = ReturnPredictor::ClassOf(t);
  p.OnVictim(100, t);
  p.OnVictim(101, t);
  p.OnVictim(102, t);  // 100 falls out unreturned: a failure
  EXPECT_DOUBLE_EQ(p.trials(c), 1.0);
  p.OnReturn(100);  // too late: nothing changes
  EXPECT_DOUBLE_EQ(p.trials(c), 1.0);
  p.OnReturn(101);
  p.OnReturn(101);  // a second return of the same victim counts once
  EXPECT_DOUBLE_EQ(p.trials(c), 2.0);
  EXPECT_DOUBLE_EQ(p.ClassProbability(c), (1.0 + 1.0) / (2.0 + 2.0));
  p.OnReturn(999);  // never a victim
  EXPECT_DOUBLE_EQ(p.trials(c), 2.0);
}

TEST(ReturnPredictorTest, CountsHalveSoTheEstimateFollowsTheWorkload) {
  ReturnPredictor p(/*horizon=*/4);
  const BlockTraits t = Traits(20, 20);
  const int c = ReturnPredictor::ClassOf(t);
  uint64_t key = 1;
  // Every victim comes back: P near 1.
  for (uint64_t i = 0; i < ReturnPredictor::kDecayHorizons * 4 - 1; ++i) {
    p.OnVictim(key, t);
    p.OnReturn(key++);
  }
  const double before = p.trials(c);
  p.OnVictim(key, t);  // the 8th horizon of victims: counts halve
  EXPECT_DOUBLE_EQ(p.trials(c), before / 2);
  // Then none comes back: the estimate falls below a half within a few horizons.
  for (int i = 0; i < 40; ++i) p.OnVictim(++key, t);
  EXPECT_LT(p.ClassProbability(c), 0.5);
}

TEST(ReturnPredictorTest, OutputLengthBucketsSplitEachShape) {
  EXPECT_EQ(OutputTokensBucket(0), 0);  // not said
  EXPECT_EQ(OutputTokensBucket(1), 1);
  EXPECT_EQ(OutputTokensBucket(31), 1);
  EXPECT_EQ(OutputTokensBucket(32), 2);
  EXPECT_EQ(OutputTokensBucket(127), 2);
  EXPECT_EQ(OutputTokensBucket(128), 3);
  EXPECT_EQ(OutputTokensBucket(511), 3);
  EXPECT_EQ(OutputTokensBucket(512), 4);
  EXPECT_EQ(OutputTokensBucket(UINT32_MAX), 4);
  BlockTraits a = Traits(10, 10), b = Traits(10, 10);
  a.output_tokens = 12;
  b.output_tokens = 900;
  EXPECT_NE(ReturnPredictor::ClassOf(a), ReturnPredictor::ClassOf(b));
  EXPECT_EQ(ReturnPredictor::ShapeOf(a), ReturnPredictor::ShapeOf(b));
  std::set<int> seen;
  for (uint32_t depth : {0u, 3u, 100u, UINT32_MAX - 300}) {
    for (int end : {0, 3, 255}) {
      for (uint32_t out : {0u, 1u, 100u, 300u, UINT32_MAX}) {
        BlockTraits t = Traits(depth, static_cast<uint8_t>(end));
        t.output_tokens = out;
        const int c = ReturnPredictor::ClassOf(t);
        EXPECT_GE(c, 0);
        EXPECT_LT(c, ReturnPredictor::kClasses);
        EXPECT_EQ(c / kOutputTokensBuckets, ReturnPredictor::ShapeOf(t));
        seen.insert(c);
      }
    }
  }
  // The deepest block with 3 or with 255 blocks after it is one shape (every bucket capped).
  EXPECT_EQ(seen.size(), 4u * 3u * 5u - 5u);
}

// Prompts of one shape: those whose request produced a short output come back, those with
// a long one do not. The predictor tells them apart; a class not seen yet starts at the
// rate of its shape's other classes, not at 1/2.
TEST(ReturnPredictorTest, LearnsWhichOutputLengthsComeBackWithinOneShape) {
  ReturnPredictor p(/*horizon=*/16);
  BlockTraits short_answer = Traits(8, 20), long_answer = Traits(8, 20);
  short_answer.output_tokens = 20;
  long_answer.output_tokens = 700;
  uint64_t key = 1;
  for (int round = 0; round < 60; ++round) {
    const uint64_t back = key++;
    p.OnVictim(back, short_answer);
    p.OnVictim(key++, long_answer);
    p.OnReturn(back);
  }
  EXPECT_GT(p.Probability(short_answer), 0.85);
  EXPECT_LT(p.Probability(long_answer), 0.1);
  // Unseen classes of this shape: between the two, near their mix (about 1/2 here).
  BlockTraits mid = Traits(8, 20);
  mid.output_tokens = 200;
  EXPECT_EQ(p.trials(ReturnPredictor::ClassOf(mid)), 0.0);
  EXPECT_GT(p.Probability(mid), 0.3);
  EXPECT_LT(p.Probability(mid), 0.7);
  // A shape whose every class comes back: an unseen class of it starts high.
  const BlockTraits body = Traits(40, 30);  // output not said
  for (int i = 0; i < 60; ++i) {
    p.OnVictim(key, body);
    p.OnReturn(key++);
  }
  BlockTraits body_said = body;
  body_said.output_tokens = 50;
  EXPECT_EQ(p.trials(ReturnPredictor::ClassOf(body_said)), 0.0);
  EXPECT_GT(p.Probability(body_said), 0.9);
}

// Without output lengths every block of a shape is in its "not said" class, and the
// estimate is the shape's plain Laplace estimate (returns + 1) / (trials + 2).
TEST(ReturnPredictorTest, WithoutOutputLengthsTheEstimateIsTheShapesLaplaceEstimate) {
  ReturnPredictor p(/*horizon=*/4);
  const BlockTraits t = Traits(6, 2);
  uint64_t key = 1;
  for (int i = 0; i < 30; ++i) {
    p.OnVictim(key, t);
    if (i % 3 == 0) p.OnReturn(key);
    ++key;
  }
  const int c = ReturnPredictor::ClassOf(t);
  EXPECT_EQ(p.trials(c), p.shape_trials(ReturnPredictor::ShapeOf(t)));
  const double trials = p.trials(c);
  const double returns = 10;  // i = 0, 3, ..., 27 came back while open
  EXPECT_DOUBLE_EQ(p.ClassProbability(c), (returns + 1) / (trials + 2));
}

TEST(ReturnPredictorTest, HorizonZeroLearnsNothing) {
  ReturnPredictor p(0);
  for (uint64_t k = 1; k < 100; ++k) {
    p.OnVictim(k, Traits(1, 0));
    p.OnReturn(k);
  }
  EXPECT_DOUBLE_EQ(p.Probability(Traits(1, 0)), 0.5);
}

}  // namespace
}  // namespace kvtier
