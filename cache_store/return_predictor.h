// ReturnPredictor: T2 admission by a learned return probability (--t2_admission=predict,
// docs/policy.md "T2 admission"). Most KV blocks are never requested again, and writing
// them to the SSD wears it and pushes blocks that do come back out of T2. A block that has
// shown reuse is always worth a write; for one that has not, this predicts from what the
// store knows about it whether it will be requested again soon enough for T2 to still hold
// it.
//
// What it learns: for each class of block, the share of T1 victims without shown reuse
// that were requested again (a Put of the key, or a Lookup of it in T2) within `horizon`
// further such victims. A class is a *shape* (how many blocks followed the block in the
// Put that stored it 0/1/2/3+, its depth bucket, and its prompt's length bucket in blocks;
// 256 shapes) and the output-length bucket its client reported (OutputTokensBucket: 5,
// one of them "not said"), 1,280 classes. Each victim opens a trial: a return closes it as
// a success, falling out of the horizon unreturned as a failure. Open trials count for
// neither side. The estimates are ClassRates' (cache_store/class_rates.h): a class starts
// at its shape's other output classes (1/2 before anything closed: admitted until shown
// otherwise), and when no client says the output length it is the plain Laplace
// (returns + 1) / (trials + 2) of the shape. Counts halve every 8 horizons of victims, so
// the estimates follow the workload.
//
// Why these features: a prompt's last blocks are extended, not repeated, by the next turn;
// in the traces measured (docs/policy.md) whether a new prompt's blocks come back at all
// depends on its length (long shared documents and contexts come back, short one-off
// questions do not), which the depth and blocks-to-end of one block do not carry alone;
// and where a store serves several kinds of request, on what the request produced: the
// bundled trace's prompts come back 80% of the time after an output under 32 tokens and
// 6% after one of 128 or more.
//
// Cost: O(1) per victim and per return (ReturnHistory), about 30 bytes per remembered key.
// Not thread-safe: the store calls it under its mutex.
#ifndef KVTIER_CACHE_STORE_RETURN_PREDICTOR_H_
#define KVTIER_CACHE_STORE_RETURN_PREDICTOR_H_

#include <array>
#include <cstddef>
#include <cstdint>

#include "cache_store/class_rates.h"
#include "cache_store/eviction_policy.h"
#include "cache_store/return_history.h"

namespace kvtier {

class ReturnPredictor {
 public:
  static constexpr int kShapes = ClassRates::kShapes;
  static constexpr int kClasses = ClassRates::kClasses;
  static constexpr uint64_t kDecayHorizons = 8;

  // Trials stay open for `horizon` further victims (0: the predictor is off; it learns
  // nothing and predicts its prior).
  explicit ReturnPredictor(size_t horizon);

  static int ShapeOf(const BlockTraits& traits);
  static int ClassOf(const BlockTraits& traits);  // ShapeOf x output bucket

  // A T1 victim without shown reuse: opens a trial for its class.
  void OnVictim(uint64_t fingerprint, const BlockTraits& traits);
  // The key was requested again; closes its trial as a success if one is open.
  void OnReturn(uint64_t fingerprint);
  // The learned probability that a victim of this class returns within the horizon.
  double Probability(const BlockTraits& traits) const;
  double ClassProbability(int cls) const;

  size_t horizon() const { return history_.capacity(); }
  double trials(int cls) const { return rates_.trials(cls); }
  double shape_trials(int shape) const { return rates_.shape_trials(shape); }

 private:
  ReturnHistory history_;
  ClassRates rates_;
  uint64_t victims_since_decay_ = 0;
};

}  // namespace kvtier

#endif  // KVTIER_CACHE_STORE_RETURN_PREDICTOR_H_
