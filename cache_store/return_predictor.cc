#include "cache_store/return_predictor.h"

#include <algorithm>
#include <bit>

namespace kvtier {

ReturnPredictor::ReturnPredictor(size_t horizon) : history_(horizon) {}

int ReturnPredictor::ClassOf(const BlockTraits& traits) {
  const int end_bucket = std::min<int>(traits.blocks_to_end, 3);
  // floor(log2(depth + 1)), capped: 0 | 1-2 | 3-6 | ... | 127+
  const int depth_bucket =
      std::min(static_cast<int>(std::bit_width(uint64_t{traits.depth} + 1)) - 1, 7);
  // The prompt's length in blocks as far as the Put that stored the block went:
  // 1 | 2-3 | 4-7 | ... | 128+
  const uint64_t length = uint64_t{traits.depth} + traits.blocks_to_end + 1;
  const int length_bucket = std::min(static_cast<int>(std::bit_width(length)) - 1, 7);
  return (end_bucket * 8 + depth_bucket) * 8 + length_bucket;
}

void ReturnPredictor::OnVictim(uint64_t fingerprint, const BlockTraits& traits) {
  if (history_.capacity() == 0) return;
  if (std::optional<uint16_t> failed =
          history_.Insert(fingerprint, static_cast<uint16_t>(ClassOf(traits)))) {
    trials_[*failed] += 1;
  }
  if (++victims_since_decay_ >= kDecayHorizons * history_.capacity()) {
    victims_since_decay_ = 0;
    for (int c = 0; c < kClasses; ++c) {
      returns_[c] /= 2;
      trials_[c] /= 2;
    }
  }
}

void ReturnPredictor::OnReturn(uint64_t fingerprint) {
  if (std::optional<uint16_t> cls = history_.Take(fingerprint)) {
    trials_[*cls] += 1;
    returns_[*cls] += 1;
  }
}

double ReturnPredictor::ClassProbability(int cls) const {
  return (returns_[cls] + 1.0) / (trials_[cls] + 2.0);
}

double ReturnPredictor::Probability(const BlockTraits& traits) const {
  return ClassProbability(ClassOf(traits));
}

}  // namespace kvtier
