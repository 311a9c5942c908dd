// ClassRates: the estimate of a class, of its shape's mix, and of one tenant's subset.
#include "cache_store/class_rates.h"

#include <gtest/gtest.h>

namespace kvtier {
namespace {

constexpr int kShape = 7;
int ClassOfOutput(int bucket) { return kShape * kOutputTokensBuckets + bucket; }

// When no client reports output lengths every trial of a shape is in its "not said"
// class, and the estimate is exactly the Laplace (successes + 1) / (trials + 2).
TEST(ClassRatesTest, WithoutOutputLengthsItIsLaplace) {
  ClassRates r;
  const int cls = ClassOfOutput(0);
  EXPECT_DOUBLE_EQ(r.Probability(cls), 0.5);
  for (int i = 0; i < 7; ++i) r.Add(cls, /*success=*/i < 3);
  EXPECT_DOUBLE_EQ(r.Probability(cls), (3.0 + 1.0) / (7.0 + 2.0));
  r.Halve();
  EXPECT_DOUBLE_EQ(r.trials(cls), 3.5);
  EXPECT_DOUBLE_EQ(r.shape_trials(kShape), 3.5);
  EXPECT_DOUBLE_EQ(r.Probability(cls), (1.5 + 1.0) / (3.5 + 2.0));
}

// A class without trials starts at the rest of its shape; with trials it moves to its own.
TEST(ClassRatesTest, AClassStartsAtTheRestOfItsShape) {
  ClassRates r;
  for (int i = 0; i < 98; ++i) r.Add(ClassOfOutput(1), /*success=*/true);
  EXPECT_DOUBLE_EQ(r.Probability(ClassOfOutput(4)), 99.0 / 100.0);
  for (int i = 0; i < 200; ++i) r.Add(ClassOfOutput(4), /*success=*/false);
  EXPECT_LT(r.Probability(ClassOfOutput(4)), 0.01);
  EXPECT_GT(r.Probability(ClassOfOutput(1)), 0.98);
  // Another shape learned nothing.
  EXPECT_DOUBLE_EQ(r.Probability((kShape + 1) * kOutputTokensBuckets + 1), 0.5);
}

// A subset of the trials (one tenant's) is ranked by its own counts, starting from the
// others' rate; the subset of every trial is the class's own estimate.
TEST(ClassRatesTest, ASubsetStartsFromTheOtherTrials) {
  ClassRates r;
  const int cls = ClassOfOutput(2);
  for (int i = 0; i < 50; ++i) r.Add(cls, /*success=*/true);   // tenant a
  for (int i = 0; i < 50; ++i) r.Add(cls, /*success=*/false);  // tenant b
  EXPECT_DOUBLE_EQ(r.SubsetProbability(cls, r.successes(cls), r.trials(cls)),
                   r.Probability(cls));
  EXPECT_GT(r.SubsetProbability(cls, 50, 50), 0.95);
  EXPECT_LT(r.SubsetProbability(cls, 0, 50), 0.05);
  EXPECT_DOUBLE_EQ(r.SubsetProbability(cls, 0, 0), r.Probability(cls));
}

}  // namespace
}  // namespace kvtier
