// BonusTuner: chooses the adaptive policy's bonus weight online, by miniature simulations
// of the tier (docs/policy.md, "The bonus weight").
//
// The adaptive policy gives a block `weight x P(reuse | class)` turnovers of life beyond
// LRU's. How much that is worth depends on the workload: where reuse distances are long
// and classes tell returning blocks from one-time ones (RAG documents, bundled traces), a
// large weight keeps the returning ones; where nearly every block comes back within one
// LRU turnover (conversation follow-ups), any bonus takes life from blocks that LRU would
// have kept long enough, and the best weight is 0, which is LRU.
//
// The tuner runs one small cache per candidate weight (kWeights; 0 is LRU) over a sample of
// the keys (a key is in the sample by its fingerprint, so a sampled key is always sampled),
// each of the sampled share of the tier's size, ranked exactly as the policy ranks (its
// clock ticks per sampled reference, a turnover is the blocks of that size the small cache
// holds) with the policy's own P(reuse) at each reference. Every reference to a sampled key
// (a Put of a block the tier lacked, an access to a resident one, or a hit the tier below
// served in place: AdaptivePolicy::OnReferenceBelow) is a hit or a miss in
// each small cache; the hits decay by half every kDecayTurnovers of the small caches, and
// weight() is the candidate with the most, changing only when another leads the current
// one by more than kSwitchMargin (noise). The small caches count a block hit when it is
// resident, not when its whole prefix is: they rank the weights, they do not predict the
// tier's hit rate.
//
// Sampling keeps the cost bounded: a tier of at most kSampleBlocks blocks is simulated
// whole, a larger one over kSampleBlocks / tier_blocks of its keys. A reference costs a
// hash of its fingerprint; a sampled one O(kWeights.size() x log kSampleBlocks). Memory is
// O(kWeights.size() x kSampleBlocks). Not thread-safe (the policy is called under the
// store's mutex).
#ifndef KVTIER_CACHE_STORE_BONUS_TUNER_H_
#define KVTIER_CACHE_STORE_BONUS_TUNER_H_

#include <array>
#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace kvtier {

class BonusTuner {
 public:
  static constexpr std::array<double, 5> kWeights = {0.0, 1.0, 2.0, 4.0, 8.0};
  static constexpr int kInitial = 0;  // LRU until the small caches show a weight does better
  static constexpr uint32_t kSampleBlocks = 2048;
  // 16, not 8: with 8 the candidates' hits in a period were within noise of each other
  // on small tiers and the choice wandered (docs/policy.md, "The bonus weight").
  static constexpr double kDecayTurnovers = 16.0;
  static constexpr double kSwitchMargin = 0.01;

  // tier_blocks: the most blocks the tier holds (of its smallest size).
  explicit BonusTuner(uint32_t tier_blocks);

  // A reference to the key `fingerprint`: a block of which the tier holds `tier_capacity`
  // of its size (0: tier_blocks), with the policy's P(reuse) `reuse` for its class now.
  void Reference(uint64_t fingerprint, uint32_t tier_capacity, double reuse);

  // The bonus weight to rank the tier's blocks with.
  double weight() const { return kWeights[chosen_]; }
  int chosen() const { return chosen_; }
  // The decayed hits of candidate i's small cache (tests, logs).
  double hits(int i) const { return sims_[i].hits; }
  // The share of keys sampled (1 for a tier of at most kSampleBlocks blocks).
  double sample_rate() const { return rate_; }

 private:
  static constexpr uint32_t kNil = UINT32_MAX;
  struct Entry {
    uint64_t fingerprint = 0;
    double fill = 0;  // the share of the small cache this block fills
    uint32_t heap_pos = kNil;
    uint32_t prev = kNil;  // the LRU list (weight 0), oldest first
    uint32_t next = kNil;
  };
  // A heap item carries its keys, so that sifting reads the heap array alone.
  struct Item {
    double prio;
    uint64_t tick;
    uint32_t slot;  // entries index
  };
  // One small cache: an indexed 4-ary min-heap on (prio, tick) over its entries (4-ary:
  // half the levels of a binary heap, and a level's children share a cache line; the
  // order is total, ticks being unique, so the arity changes no eviction).
  static constexpr uint32_t kArity = 4;
  // Weight 0 ranks by tick alone, which is recency: that small cache keeps a list (O(1)
  // per reference, the same order a heap would give) instead of a heap.
  struct Sim {
    double weight = 0;
    bool lru = false;  // weight 0: the list, not the heap
    uint32_t head = kNil;
    uint32_t tail = kNil;
    double hits = 0;
    double fill = 0;
    absl::flat_hash_map<uint64_t, uint32_t> slot_of;  // fingerprint -> entries index
    std::vector<Entry> entries;
    std::vector<uint32_t> free_slots;
    std::vector<Item> heap;
  };

  bool Sampled(uint64_t fingerprint) const;
  void Touch(Sim& sim, uint64_t fingerprint, double fill, double turnover, double reuse);
  static bool Less(const Item& a, const Item& b) {
    return a.prio != b.prio ? a.prio < b.prio : a.tick < b.tick;
  }
  void SiftUp(Sim& sim, uint32_t i);
  void SiftDown(Sim& sim, uint32_t i);
  void PopMin(Sim& sim);
  static void Unlink(Sim& sim, uint32_t slot);
  static void Append(Sim& sim, uint32_t slot);
  void Choose();

  const uint32_t tier_blocks_;
  const double rate_;               // share of keys sampled
  const uint64_t sample_limit_;     // a key is sampled when its hash is below this
  const double decay_references_;   // sampled references between halvings
  const double choice_references_;  // sampled references between choices: a turnover
  uint64_t tick_ = 0;               // sampled references
  uint64_t since_choice_ = 0;
  uint64_t since_decay_ = 0;
  int chosen_ = kInitial;
  std::array<Sim, kWeights.size()> sims_;
};

}  // namespace kvtier

#endif  // KVTIER_CACHE_STORE_BONUS_TUNER_H_
