#include "cache_store/class_rates.h"

#include <algorithm>

namespace kvtier {

void ClassRates::Add(int cls, bool success) {
  const int shape = cls / kOutputTokensBuckets;
  trials_[cls] += 1;
  shape_trials_[shape] += 1;
  if (success) {
    successes_[cls] += 1;
    shape_successes_[shape] += 1;
  }
}

void ClassRates::Halve() {
  for (int c = 0; c < kClasses; ++c) {
    successes_[c] /= 2;
    trials_[c] /= 2;
  }
  for (int s = 0; s < kShapes; ++s) {
    shape_successes_[s] /= 2;
    shape_trials_[s] /= 2;
  }
}

double ClassRates::RestOfShape(int cls) const {
  const int shape = cls / kOutputTokensBuckets;
  return (std::max(shape_successes_[shape] - successes_[cls], 0.0) + 1.0) /
         (std::max(shape_trials_[shape] - trials_[cls], 0.0) + 2.0);
}

double ClassRates::Probability(int cls) const {
  return (successes_[cls] + kPrior * RestOfShape(cls)) / (trials_[cls] + kPrior);
}

double ClassRates::SubsetProbability(int cls, double successes, double trials) const {
  const double others =
      (std::max(successes_[cls] - successes, 0.0) + kPrior * RestOfShape(cls)) /
      (std::max(trials_[cls] - trials, 0.0) + kPrior);
  return (successes + kPrior * others) / (trials + kPrior);
}

}  // namespace kvtier
