// ClassRates: how often blocks of each class succeeded (came back), learned from trials,
// for the store's two learners that class blocks by shape and reported output length: the
// adaptive T1 policy (reuse while resident or in its ghost history) and T2 admission's
// ReturnPredictor (a return within its horizon).
//
// A class is a *shape* (kShapes of them; each learner defines its own) split by the
// output-length bucket its client reported (OutputTokensBucket, one bucket "not said"):
// class = shape x kOutputTokensBuckets + bucket. A class's estimate is its own counts
// plus kPrior trials at the Laplace rate of the rest of its shape (its other output
// classes): a class starts where its shape's other classes are (1/2 before anything) and
// moves to its own counts as they grow, so splitting shapes by output costs little where
// the output length says nothing; when no client says it (every block in the "not said"
// class) the estimate is exactly the Laplace (successes + 1) / (trials + 2). The owner
// halves the counts now and then (Halve) so the estimates follow the workload.
//
// O(1) per trial and estimate, O(classes) per halving. Not thread-safe.
#ifndef KVTIER_CACHE_STORE_CLASS_RATES_H_
#define KVTIER_CACHE_STORE_CLASS_RATES_H_

#include <array>

#include "cache_store/eviction_policy.h"

namespace kvtier {

class ClassRates {
 public:
  static constexpr int kShapes = 768;  // the most either learner defines
  static constexpr int kClasses = kShapes * kOutputTokensBuckets;
  static constexpr double kPrior = 2.0;  // trials' worth of the level above

  void Add(int cls, bool success);
  void Halve();

  double Probability(int cls) const;
  // For a subset of the trials (one tenant's: `successes` of `trials` in this class): its
  // own counts plus kPrior trials at the rate of the other trials of the class, which in
  // turn start at the rest of the shape as Probability's do. With every trial in the
  // subset this is Probability(cls).
  double SubsetProbability(int cls, double successes, double trials) const;

  double successes(int cls) const { return successes_[cls]; }
  double trials(int cls) const { return trials_[cls]; }
  double shape_trials(int shape) const { return shape_trials_[shape]; }

 private:
  // The Laplace rate of the shape's other output classes.
  double RestOfShape(int cls) const;

  std::array<double, kClasses> successes_{};
  std::array<double, kClasses> trials_{};
  std::array<double, kShapes> shape_successes_{};
  std::array<double, kShapes> shape_trials_{};
};

}  // namespace kvtier

#endif  // KVTIER_CACHE_STORE_CLASS_RATES_H_
