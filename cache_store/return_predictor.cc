#include "cache_store/return_predictor.h"

#include <algorithm>
#include <bit>

namespace kvtier {

ReturnPredictor::ReturnPredictor(size_t horizon) : history_(horizon) {}

int ReturnPredictor::ShapeOf(const BlockTraits& traits) {
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

int ReturnPredictor::ClassOf(const BlockTraits& traits) {
  return ShapeOf(traits) * kOutputTokensBuckets + OutputTokensBucket(traits.output_tokens);
}

void ReturnPredictor::OnVictim(uint64_t fingerprint, const BlockTraits& traits) {
  if (history_.capacity() == 0) return;
  if (std::optional<uint16_t> failed =
          history_.Insert(fingerprint, static_cast<uint16_t>(ClassOf(traits)))) {
    rates_.Add(*failed, /*success=*/false);
  }
  if (++victims_since_decay_ >= kDecayHorizons * history_.capacity()) {
    victims_since_decay_ = 0;
    rates_.Halve();
  }
}

void ReturnPredictor::OnReturn(uint64_t fingerprint) {
  if (std::optional<uint16_t> cls = history_.Take(fingerprint)) {
    rates_.Add(*cls, /*success=*/true);
  }
}

double ReturnPredictor::ClassProbability(int cls) const { return rates_.Probability(cls); }

double ReturnPredictor::Probability(const BlockTraits& traits) const {
  return ClassProbability(ClassOf(traits));
}

}  // namespace kvtier
