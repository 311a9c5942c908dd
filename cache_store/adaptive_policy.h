// AdaptivePolicy ("adaptive", the default): prefix-aware eviction ranked by a reuse
// probability that is learned online per class of block.
//
// Why (docs/policy.md has the measurements):
//  - A prompt hits only on its longest cached *prefix*. Evicting an interior block makes
//    every cached descendant useless, so the policy evicts leaves only (leaves_only()).
//  - KV reuse distances are long compared with a tier, so plain recency throws away blocks
//    that come back and keeps one-off blocks (long unique documents, partial prompt tails)
//    for a full cache turnover. Blocks fall into classes by what the store knows when they
//    are touched: access count (1, 2, 3, 4+), whether the block is a prompt's padded
//    partial tail, depth in the prompt (log2 buckets), how many blocks follow it in the
//    Put that stored it (0, 1, 2, 3+), where that Put began its new blocks (PutOrigin:
//    a root, a continuation of a cached prompt that ended there, other; a session that
//    came back once comes back again more often), and the output length its client
//    reported (not said, 1-31, 32-127, 128-511, 512+ tokens; a class with few trials
//    starts at the rate of its shape's other output classes). For each class the policy
//    learns P(reuse): a trial succeeds when a block of the class is accessed again while
//    resident or while its key is still in a ghost history of recently evicted keys (keys
//    only, no payload; a hit the tier below served in place counts, OnReferenceBelow),
//    and fails when the key ages out of that history. The history is per
//    partition (a tenant's blocks of one size class) and spans 4 of the partition's
//    turnovers, a turnover being the most blocks the partition has held at once: another
//    tenant's flood of evictions (a scan) does not age a tenant's keys out. A block is
//    ranked by its partition's own trials of its class, starting from the tier's estimate
//    (with one partition the two are the same). Counts halve every 8 turnovers of the
//    tier so the estimate follows the workload.
//  - Priority = last access tick + w x capacity x P(reuse | class): a block that is sure
//    to return gets w more cache turnovers of life than a block that is sure not to, a
//    turnover being the blocks of its size the tier holds (BlockTraits::tier_capacity:
//    per byte, a smaller block earns more life for the same P). Lowest priority is
//    evicted first. Ties fall back to LRU. The weight w is chosen online by BonusTuner
//    (miniature simulations of the tier with w in {0, 1, 2, 4, 8}; 0 is LRU, where it
//    starts): where nearly every block returns within one LRU turnover, any bonus costs
//    hits. With the -tune ablation w is kBonusTurnovers. A new w reorders every heap
//    (ApplyWeight; at most once per turnover of the tuner's small caches).
//  - A returning key keeps the access count it had when evicted (from the ghost history),
//    so frequency survives a round trip through eviction.
//  - Two orders. On the tier's clock (every OnResident and OnAccess ticks it) for Victim,
//    VictimOf and EvictsBefore: partitions compete there, and the common clock is what
//    maximises the tier's hits. On each partition's own clock (its own blocks' operations;
//    a turnover is the blocks it holds) for OwnVictimOf, when a partition must make room
//    within its own share (a tenant held at its guarantee or limit): there a neighbour's
//    traffic would otherwise make the tier's clock run many times faster than the
//    partition's, and its reuse bonus, counted in the tier's ticks, worth almost nothing.
//
// State is arrays indexed by handle and an indexed binary heap per partition, plus a
// second (own clock) from the first OwnVictimOf of that partition on: OnAccess,
// SetEvictable and OnLeave are O(log n), VictimOf O(1), OwnVictimOf O(1) (O(n) the first
// time), Victim O(partitions in use), the ghost history O(1) per operation (hash map +
// ring), the periodic halving O(classes).
#ifndef KVTIER_CACHE_STORE_ADAPTIVE_POLICY_H_
#define KVTIER_CACHE_STORE_ADAPTIVE_POLICY_H_

#include <algorithm>
#include <array>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "cache_store/bonus_tuner.h"
#include "cache_store/class_rates.h"
#include "cache_store/eviction_policy.h"

namespace kvtier {

class AdaptivePolicy final : public EvictionPolicy {
 public:
  static constexpr double kBonusTurnovers = 4.0;
  static constexpr uint32_t kGhostPerBlock = 4;
  static constexpr uint32_t kDecayTurnovers = 8;
  static constexpr int kShapes = ClassRates::kShapes;
  static constexpr int kClasses = ClassRates::kClasses;

  // What the policy uses, each on by default. Turning one off is an ablation, for measuring
  // what each ingredient is worth (docs/policy.md "Ablation"; MakeEvictionPolicy's
  // "adaptive:-NAME,..." names); no deployment should need it.
  struct Ingredients {
    bool count = true;          // access count in the class (else every block counts 1)
    bool tail = true;           // the partial-tail flag in the class
    bool depth = true;          // depth buckets in the class
    bool blocks_to_end = true;  // blocks following in the Put, in the class
    bool output = true;         // the output length the client reported, in the class
    bool origin = true;         // where the block's Put began (PutOrigin), in the class
    bool ghost_count = true;    // a returning key keeps its access count
    bool bonus = true;          // learned reuse bonus (off: recency alone)
    bool tune = true;           // the bonus weight chosen by BonusTuner (off: kBonusTurnovers)
    bool leaves_only = true;    // evict leaves only
  };
  // Parses "-count,-tail,..." (the names of the Ingredients fields, each turned off).
  static absl::StatusOr<Ingredients> ParseAblation(std::string_view spec);

  AdaptivePolicy(uint32_t handles, uint32_t tier_blocks);
  AdaptivePolicy(uint32_t handles, uint32_t tier_blocks, Ingredients ingredients);

  std::string_view name() const override { return "adaptive"; }
  bool leaves_only() const override { return ingredients_.leaves_only; }
  void OnResident(uint32_t handle, const BlockTraits& traits) override;
  void OnAccess(uint32_t handle, const BlockTraits& traits) override;
  void SetEvictable(uint32_t handle, bool evictable) override;
  void OnLeave(uint32_t handle, bool evicted) override;
  // Feeds BonusTuner: the small caches must see every reference, or they would rank the
  // weights on a stream filtered by the weight in use (a block the tier gave up under
  // weight 0 and the tier below served is a hit a larger weight would have had). And a key
  // still in the ghost history has come back: its trial closes as a success and a new one
  // opens, as an access would (else T1 learns that the blocks T2 serves never return).
  void OnReferenceBelow(const BlockTraits& traits, uint32_t access_count) override;
  bool IsResident(uint32_t handle) const override;
  bool IsEvictable(uint32_t handle) const override;
  std::optional<uint32_t> Victim() const override;
  std::optional<uint32_t> VictimOf(uint32_t partition) const override;
  std::optional<uint32_t> OwnVictimOf(uint32_t partition) const override;
  bool EvictsBefore(uint32_t a, uint32_t b) const override;
  double ReuseScore(uint32_t handle) const override;
  size_t evictable_size() const override { return evictable_; }

  static int ClassOf(uint32_t access_count, const BlockTraits& traits);
  static int ClassOf(uint32_t access_count, const BlockTraits& traits, const Ingredients& in);
  // The learned P(reuse) of a class: the tier's (over all learners), and one learner's
  // (BlockTraits::learner: its own trials, starting from the tier's; the policy ranks a
  // block by its learner's).
  double ClassReuseProbability(int cls) const;
  double ClassReuseProbability(uint32_t learner, int cls) const;
  // The bonus weight blocks are ranked with now: BonusTuner's choice (kBonusTurnovers with
  // -tune; 0 with -bonus).
  double bonus_weight() const override;
  const BonusTuner& tuner() const { return tuner_; }

 private:
  static constexpr uint32_t kNil = UINT32_MAX;
  struct Ghost {
    uint64_t fingerprint = 0;
    uint16_t cls = 0;
    uint8_t count = 0;
    bool valid = false;
  };

  // A turnover of the tier: the most blocks it has held at once, which for a full tier of
  // one layout is its capacity in blocks (tier_blocks, given at construction, only bounds
  // it: a tier of many block sizes holds as many blocks as their mix allows).
  uint32_t turnover_blocks() const { return std::clamp<uint32_t>(peak_resident_, 1, tier_blocks_); }
  void Tick();
  void Trial(uint32_t learner, int cls, bool reused);
  void Reprioritise(uint32_t handle);
  void PushGhost(uint32_t handle);
  // Records an eviction (or, for a T2 hit of an evicted key, a new interval) of
  // `fingerprint` in `learner`'s ghost ring: a trial of `cls`, open until the key is
  // referenced again or ages out.
  void PushGhostRecord(uint32_t learner, uint64_t fingerprint, uint16_t cls, uint8_t count);
  // Indexed min-heaps, two per partition: on own_prio_ (the partition's clock) and on
  // prio_ (the tier's clock).
  enum class Order { kOwn = 0, kTier = 1 };
  bool InHeap(uint32_t handle) const {
    return heap_pos_[static_cast<int>(Order::kTier)][handle] != kNil;
  }
  bool Less(Order o, uint32_t a, uint32_t b) const;
  // Whether the partition's own-clock heap is kept (OwnVictimOf asked for it).
  bool OwnKept(uint32_t partition) const {
    return partition < own_kept_.size() && own_kept_[partition];
  }
  void SiftUp(Order o, std::vector<uint32_t>& heap, uint32_t i) const;
  // Restores heap order over the whole array (positions in heap_pos_ already set): O(n).
  void Heapify(Order o, std::vector<uint32_t>& heap) const;
  void SiftDown(Order o, std::vector<uint32_t>& heap, uint32_t i) const;
  void HeapInsert(uint32_t handle);
  void HeapUpdate(uint32_t handle);
  void HeapRemove(uint32_t handle);

  const uint32_t tier_blocks_;
  const Ingredients ingredients_;
  uint64_t tick_ = 0;
  uint64_t ops_since_decay_ = 0;
  ClassRates rates_;  // the tier's trials, all learners together
  BonusTuner tuner_;
  // Each learner's own trials (a tenant's blocks behave as its workload does, not as the
  // tier's mix), allocated at its first trial. The halving every kDecayTurnovers reaches a
  // learner when it is next touched (decay_epoch_ counts the halvings).
  struct LearnerEstimates {
    std::vector<double> reuse, trials;  // by class
    uint64_t epoch = 0;                 // decay_epoch_ when last halved
  };
  std::vector<LearnerEstimates> estimates_;  // by learner
  uint64_t decay_epoch_ = 0;

  std::vector<uint8_t> resident_;
  std::vector<uint8_t> count_;
  std::vector<uint16_t> cls_;
  std::vector<uint64_t> fingerprint_;
  // A block's priority is its last tick plus weight_ x its life: P(reuse) turnovers, on the
  // tier's clock (life_) and on its partition's (own_life_, PartitionClock), as of its
  // last access. The weight is kept apart so that a new one reorders the heaps without
  // touching a block (ApplyWeight).
  double weight_ = 0;
  std::vector<double> life_;
  std::vector<uint64_t> last_tick_;
  std::vector<double> own_life_;
  std::vector<uint64_t> last_own_tick_;
  double Prio(uint32_t handle) const {
    return static_cast<double>(last_tick_[handle]) + weight_ * life_[handle];
  }
  double OwnPrio(uint32_t handle) const {
    return static_cast<double>(last_own_tick_[handle]) + weight_ * own_life_[handle];
  }
  // Takes the tuner's weight when it differs from weight_, and rebuilds every heap on it:
  // O(evictable blocks), at most once per BonusTuner decision period.
  void ApplyWeight();
  std::vector<uint32_t> partition_;
  std::vector<uint32_t> learner_;
  std::vector<uint32_t> capacity_;  // BlockTraits::tier_capacity
  // The own-clock heap of a partition is built at its first OwnVictimOf, a const query
  // (the store asks under its mutex), hence mutable; the tier's heaps always exist.
  mutable std::array<std::vector<uint32_t>, 2> heap_pos_;            // by Order
  mutable std::vector<std::array<std::vector<uint32_t>, 2>> heaps_;  // by partition, then Order
  mutable std::vector<uint8_t> own_kept_;                            // by partition
  size_t evictable_ = 0;

  uint32_t resident_count_ = 0;
  // The share of the tier its resident blocks fill, in units of 1/kFillOne: each block
  // counts 1/(blocks of its size the tier holds).
  static constexpr uint64_t kFillOne = uint64_t{1} << 32;
  uint64_t FillOf(uint32_t handle) const {
    return kFillOne / (capacity_[handle] ? capacity_[handle] : tier_blocks_);
  }
  uint64_t fill_ = 0;
  uint32_t peak_resident_ = 0;

  // Each partition's own clock: its blocks' OnResident and OnAccess tick it (own_prio_).
  struct PartitionClock {
    uint64_t tick = 0;
    uint32_t resident = 0;  // the partition's resident blocks: its turnover
  };
  std::vector<PartitionClock> clocks_;  // by partition

  // The ghost history, one ring per learner (a tenant's blocks of one size class): the
  // last `size` records before `next`, for kGhostPerBlock turnovers of the learner's own
  // blocks, so that one tenant's evictions (a scan) do not age another's keys out.
  struct GhostRing {
    std::vector<Ghost> slots;
    size_t next = 0;
    size_t size = 0;
    uint32_t resident = 0;  // the learner's resident blocks
    uint32_t peak = 0;      // the most it has held: its turnover
  };
  GhostRing& RingOf(uint32_t learner);
  void GrowRing(uint32_t learner, size_t capacity);
  // kGhostPerBlock x tier_blocks: no ring grows past it, and all of them together hold at
  // most twice it (a learner that once held many blocks keeps its ring; past the budget
  // a growing learner's window is what its ring holds).
  const size_t ghost_limit_;
  size_t ghost_slots_ = 0;        // all rings' slots
  std::vector<GhostRing> rings_;  // by learner
  // fingerprint -> (learner << 32) | slot
  absl::flat_hash_map<uint64_t, uint64_t> ghost_index_;
};

}  // namespace kvtier

#endif  // KVTIER_CACHE_STORE_ADAPTIVE_POLICY_H_
