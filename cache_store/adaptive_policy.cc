#include "cache_store/adaptive_policy.h"

#include <algorithm>
#include <bit>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cache_store/log.h"

namespace kvtier {

absl::StatusOr<AdaptivePolicy::Ingredients> AdaptivePolicy::ParseAblation(std::string_view spec) {
  Ingredients in;
  const std::pair<std::string_view, bool Ingredients::*> names[] = {
      {"count", &Ingredients::count},   {"tail", &Ingredients::tail},
      {"depth", &Ingredients::depth},   {"blocks_to_end", &Ingredients::blocks_to_end},
      {"output", &Ingredients::output}, {"origin", &Ingredients::origin},
      {"ghost_count", &Ingredients::ghost_count},
      {"bonus", &Ingredients::bonus},   {"tune", &Ingredients::tune},
      {"leaves_only", &Ingredients::leaves_only}};
  for (absl::string_view piece :
       absl::StrSplit(absl::string_view(spec.data(), spec.size()), ',', absl::SkipEmpty())) {
    const std::string item(piece);
    bool found = false;
    for (const auto& [name, field] : names) {
      if (item.size() > 1 && item[0] == '-' && std::string_view(item).substr(1) == name) {
        in.*field = false;
        found = true;
      }
    }
    if (!found) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown adaptive policy ablation \"", item,
                       "\"; known: -count, -tail, -depth, -blocks_to_end, -output, -origin, "
                       "-ghost_count, -bonus, -tune, -leaves_only"));
    }
  }
  return in;
}

AdaptivePolicy::AdaptivePolicy(uint32_t handles, uint32_t tier_blocks)
    : AdaptivePolicy(handles, tier_blocks, Ingredients{}) {}

AdaptivePolicy::AdaptivePolicy(uint32_t handles, uint32_t tier_blocks, Ingredients ingredients)
    : tier_blocks_(std::max<uint32_t>(tier_blocks, 1)),
      ingredients_(ingredients),
      tuner_(tier_blocks_),
      resident_(handles, 0),
      count_(handles, 0),
      cls_(handles, 0),
      fingerprint_(handles, 0),
      life_(handles, 0.0),
      last_tick_(handles, 0),
      own_life_(handles, 0.0),
      last_own_tick_(handles, 0),
      partition_(handles, 0),
      learner_(handles, 0),
      capacity_(handles, 0),
      heap_pos_{std::vector<uint32_t>(handles, kNil), std::vector<uint32_t>(handles, kNil)},
      ghost_limit_(size_t{tier_blocks_} * kGhostPerBlock) {
  weight_ = bonus_weight();
}

int AdaptivePolicy::ClassOf(uint32_t access_count, const BlockTraits& traits) {
  return ClassOf(access_count, traits, Ingredients{});
}

int AdaptivePolicy::ClassOf(uint32_t access_count, const BlockTraits& traits,
                            const Ingredients& in) {
  const int count_bucket =
      in.count ? static_cast<int>(std::clamp<uint32_t>(access_count, 1, 4) - 1) : 0;
  // floor(log2(depth + 1)): 0 | 1-2 | 3-6 | 7-14 | ... | 127+
  const int depth_bucket =
      in.depth ? std::min(static_cast<int>(std::bit_width(uint64_t{traits.depth} + 1)) - 1, 7) : 0;
  const int end_bucket = in.blocks_to_end ? std::min<int>(traits.blocks_to_end, 3) : 0;
  const int tail = in.tail && traits.prompt_tail ? 1 : 0;
  const int origin = in.origin ? std::min<int>(traits.origin, kPutOrigins - 1) : 0;
  const int shape =
      (((count_bucket * 2 + tail) * 8 + depth_bucket) * 4 + end_bucket) * kPutOrigins + origin;
  return shape * kOutputTokensBuckets + (in.output ? OutputTokensBucket(traits.output_tokens) : 0);
}

namespace {

// The factor `halvings` halvings leave of a count.
double Halved(uint64_t halvings) {
  return halvings >= 64 ? 0.0 : std::ldexp(1.0, -static_cast<int>(halvings));
}

}  // namespace

double AdaptivePolicy::ClassReuseProbability(uint32_t learner, int cls) const {
  if (learner >= estimates_.size() || estimates_[learner].reuse.empty()) {
    return rates_.Probability(cls);
  }
  // The learner's own counts, starting from the tier's other trials of the class.
  const LearnerEstimates& e = estimates_[learner];
  const double scale = Halved(decay_epoch_ - e.epoch);  // halvings not applied yet
  return rates_.SubsetProbability(cls, e.reuse[cls] * scale, e.trials[cls] * scale);
}

double AdaptivePolicy::ClassReuseProbability(int cls) const { return rates_.Probability(cls); }

double AdaptivePolicy::ReuseScore(uint32_t handle) const {
  KVTIER_CHECK(IsResident(handle)) << "handle " << handle;
  return ClassReuseProbability(learner_[handle], cls_[handle]);
}

void AdaptivePolicy::Tick() {
  ++tick_;
  if (++ops_since_decay_ < uint64_t{turnover_blocks()} * kDecayTurnovers) return;
  ops_since_decay_ = 0;
  rates_.Halve();
  ++decay_epoch_;  // learners' estimates halve when next touched
}

void AdaptivePolicy::Trial(uint32_t learner, int cls, bool reused) {
  if (estimates_.size() <= learner) estimates_.resize(learner + 1);
  LearnerEstimates& e = estimates_[learner];
  if (e.reuse.empty()) {
    e.reuse.assign(kClasses, 0.0);
    e.trials.assign(kClasses, 0.0);
    e.epoch = decay_epoch_;
  }
  if (e.epoch != decay_epoch_) {
    const double scale = Halved(decay_epoch_ - e.epoch);
    for (double& v : e.reuse) v *= scale;
    for (double& v : e.trials) v *= scale;
    e.epoch = decay_epoch_;
  }
  e.trials[cls] += 1;
  if (reused) e.reuse[cls] += 1;
  rates_.Add(cls, reused);
}

double AdaptivePolicy::bonus_weight() const {
  if (!ingredients_.bonus) return 0.0;
  return ingredients_.tune ? tuner_.weight() : kBonusTurnovers;
}

void AdaptivePolicy::Reprioritise(uint32_t handle) {
  const double p = ingredients_.bonus ? ClassReuseProbability(learner_[handle], cls_[handle]) : 0.0;
  // On the tier's clock a turnover is the blocks of this size the tier holds.
  const double turnover = capacity_[handle] ? capacity_[handle] : tier_blocks_;
  life_[handle] = p * turnover;
  // On the partition's own clock it is the blocks the partition holds over the share of
  // the tier that is filled: its own blocks when the tier is full, and exactly `turnover`
  // when the partition is alone in the tier.
  const double filled = static_cast<double>(std::max<uint64_t>(fill_, 1)) / kFillOne;
  own_life_[handle] = p * clocks_[partition_[handle]].resident / filled;
  if (InHeap(handle)) HeapUpdate(handle);
  if (ingredients_.bonus && ingredients_.tune) {
    // Every Put or access of a block is a reference for the tuner's small caches.
    tuner_.Reference(fingerprint_[handle], capacity_[handle], p);
    ApplyWeight();
  }
}

void AdaptivePolicy::OnReferenceBelow(const BlockTraits& traits, uint32_t access_count) {
  const int cls = ClassOf(std::clamp<uint32_t>(access_count, 1, 255), traits, ingredients_);
  if (auto it = ghost_index_.find(traits.key_fingerprint); it != ghost_index_.end()) {
    const auto learner = static_cast<uint32_t>(it->second >> 32);
    Ghost& g = rings_[learner].slots[it->second & UINT32_MAX];
    Trial(learner, g.cls, /*reused=*/true);
    const uint32_t count = ingredients_.ghost_count ? std::min<uint32_t>(g.count + 1u, 255) : 1;
    g.valid = false;
    ghost_index_.erase(it);
    PushGhostRecord(learner, traits.key_fingerprint,
                    static_cast<uint16_t>(ClassOf(count, traits, ingredients_)),
                    static_cast<uint8_t>(count));
  }
  if (!ingredients_.bonus || !ingredients_.tune) return;
  tuner_.Reference(traits.key_fingerprint, traits.tier_capacity,
                   ClassReuseProbability(traits.learner, cls));
  ApplyWeight();
}

void AdaptivePolicy::ApplyWeight() {
  const double w = bonus_weight();
  if (w == weight_) return;
  weight_ = w;
  for (uint32_t partition = 0; partition < heaps_.size(); ++partition) {
    for (Order o : {Order::kOwn, Order::kTier}) {
      if (o == Order::kOwn && !OwnKept(partition)) continue;
      Heapify(o, heaps_[partition][static_cast<int>(o)]);
    }
  }
}

void AdaptivePolicy::OnResident(uint32_t handle, const BlockTraits& traits) {
  KVTIER_CHECK(handle < resident_.size() && !resident_[handle]) << "handle " << handle;
  Tick();
  uint32_t count = 1;
  if (auto it = ghost_index_.find(traits.key_fingerprint); it != ghost_index_.end()) {
    Ghost& g = rings_[it->second >> 32].slots[it->second & UINT32_MAX];
    Trial(static_cast<uint32_t>(it->second >> 32), g.cls, /*reused=*/true);
    if (ingredients_.ghost_count) count = std::min<uint32_t>(g.count + 1u, 255);
    g.valid = false;
    ghost_index_.erase(it);
  }
  resident_[handle] = 1;
  ++resident_count_;
  peak_resident_ = std::max(peak_resident_, resident_count_);
  GhostRing& ring = RingOf(traits.learner);
  ring.peak = std::max(ring.peak, ++ring.resident);
  if (clocks_.size() <= traits.partition) clocks_.resize(traits.partition + 1);
  ++clocks_[traits.partition].resident;
  count_[handle] = static_cast<uint8_t>(count);
  cls_[handle] = static_cast<uint16_t>(ClassOf(count, traits, ingredients_));
  fingerprint_[handle] = traits.key_fingerprint;
  partition_[handle] = traits.partition;
  learner_[handle] = traits.learner;
  capacity_[handle] = traits.tier_capacity;
  fill_ += FillOf(handle);
  if (heaps_.size() <= traits.partition) heaps_.resize(traits.partition + 1);
  last_tick_[handle] = tick_;
  last_own_tick_[handle] = ++clocks_[partition_[handle]].tick;
  Reprioritise(handle);
}

void AdaptivePolicy::OnAccess(uint32_t handle, const BlockTraits& traits) {
  KVTIER_CHECK(IsResident(handle)) << "handle " << handle;
  Tick();
  Trial(learner_[handle], cls_[handle], /*reused=*/true);
  const uint32_t count = std::min<uint32_t>(count_[handle] + 1u, 255);
  count_[handle] = static_cast<uint8_t>(count);
  cls_[handle] = static_cast<uint16_t>(ClassOf(count, traits, ingredients_));
  last_tick_[handle] = tick_;
  last_own_tick_[handle] = ++clocks_[partition_[handle]].tick;
  Reprioritise(handle);
}

void AdaptivePolicy::SetEvictable(uint32_t handle, bool evictable) {
  KVTIER_CHECK(IsResident(handle)) << "handle " << handle;
  const bool in_heap = InHeap(handle);
  if (evictable == in_heap) return;
  if (evictable) {
    HeapInsert(handle);
  } else {
    HeapRemove(handle);
  }
}

void AdaptivePolicy::OnLeave(uint32_t handle, bool evicted) {
  if (!IsResident(handle)) return;
  if (InHeap(handle)) HeapRemove(handle);
  if (evicted) PushGhost(handle);
  resident_[handle] = 0;
  --resident_count_;
  fill_ -= FillOf(handle);
  --RingOf(learner_[handle]).resident;
  --clocks_[partition_[handle]].resident;
}

AdaptivePolicy::GhostRing& AdaptivePolicy::RingOf(uint32_t learner) {
  if (rings_.size() <= learner) rings_.resize(learner + 1);
  return rings_[learner];
}

void AdaptivePolicy::GrowRing(uint32_t learner, size_t capacity) {
  GhostRing& ring = rings_[learner];
  std::vector<Ghost> slots(capacity);
  const size_t old = ring.slots.size();
  for (size_t i = 0; i < ring.size; ++i) {  // oldest first, to slots [0, size)
    slots[i] = ring.slots[(ring.next + old - ring.size + i) % old];
    if (slots[i].valid) ghost_index_[slots[i].fingerprint] = (uint64_t{learner} << 32) | i;
  }
  ghost_slots_ += capacity - old;
  ring.slots = std::move(slots);
  ring.next = ring.size % capacity;
}

void AdaptivePolicy::PushGhost(uint32_t handle) {
  PushGhostRecord(learner_[handle], fingerprint_[handle], cls_[handle], count_[handle]);
}

void AdaptivePolicy::PushGhostRecord(uint32_t learner, uint64_t fingerprint, uint16_t cls,
                                     uint8_t count) {
  if (ghost_limit_ == 0) return;
  // The history spans kGhostPerBlock turnovers of the blocks the learner has held: the
  // oldest records age out first, failed trials.
  size_t window = std::min<size_t>(
      size_t{std::clamp<uint32_t>(rings_[learner].peak, 1, tier_blocks_)} * kGhostPerBlock,
      ghost_limit_);
  if (const size_t have = rings_[learner].slots.size(); have < window) {
    const size_t budget = 2 * ghost_limit_ - (ghost_slots_ - have);
    const size_t want = std::min({std::max(window, 2 * have), ghost_limit_, budget});
    if (want > have) GrowRing(learner, want);
    window = std::min(window, rings_[learner].slots.size());
    if (window == 0) return;
  }
  GhostRing& ring = rings_[learner];
  const size_t cap = ring.slots.size();
  while (ring.size > 0 && ring.size + 1 > window) {
    Ghost& old = ring.slots[(ring.next + cap - ring.size) % cap];
    if (old.valid) {  // aged out without coming back
      Trial(learner, old.cls, /*reused=*/false);
      ghost_index_.erase(old.fingerprint);
      old.valid = false;
    }
    --ring.size;
  }
  // A key evicted twice keeps only its newest record.
  if (auto it = ghost_index_.find(fingerprint); it != ghost_index_.end()) {
    rings_[it->second >> 32].slots[it->second & UINT32_MAX].valid = false;
    ghost_index_.erase(it);
  }
  Ghost& slot = ring.slots[ring.next];
  slot = Ghost{.fingerprint = fingerprint, .cls = cls, .count = count, .valid = true};
  ghost_index_[slot.fingerprint] = (uint64_t{learner} << 32) | ring.next;
  ring.next = (ring.next + 1) % cap;
  ++ring.size;
}

bool AdaptivePolicy::IsResident(uint32_t handle) const {
  return handle < resident_.size() && resident_[handle];
}

bool AdaptivePolicy::IsEvictable(uint32_t handle) const {
  return handle < resident_.size() && InHeap(handle);
}

std::optional<uint32_t> AdaptivePolicy::Victim() const {
  std::optional<uint32_t> best;
  for (const auto& heaps : heaps_) {
    const std::vector<uint32_t>& heap = heaps[static_cast<int>(Order::kTier)];
    if (!heap.empty() && (!best || Less(Order::kTier, heap[0], *best))) best = heap[0];
  }
  return best;
}

std::optional<uint32_t> AdaptivePolicy::VictimOf(uint32_t partition) const {
  if (partition >= heaps_.size() || heaps_[partition][static_cast<int>(Order::kTier)].empty())
    return std::nullopt;
  return heaps_[partition][static_cast<int>(Order::kTier)][0];
}

std::optional<uint32_t> AdaptivePolicy::OwnVictimOf(uint32_t partition) const {
  if (partition >= heaps_.size() || heaps_[partition][static_cast<int>(Order::kTier)].empty())
    return std::nullopt;
  if (!OwnKept(partition)) {
    // First asked: order the partition's evictable blocks on its own clock, and keep that
    // order from now on. A store without quotas never asks, and pays for one heap only.
    if (own_kept_.size() <= partition) own_kept_.resize(partition + 1, 0);
    own_kept_[partition] = 1;
    std::vector<uint32_t>& own = heaps_[partition][static_cast<int>(Order::kOwn)];
    own = heaps_[partition][static_cast<int>(Order::kTier)];
    std::vector<uint32_t>& pos = heap_pos_[static_cast<int>(Order::kOwn)];
    for (uint32_t i = 0; i < own.size(); ++i) pos[own[i]] = i;
    Heapify(Order::kOwn, own);
  }
  return heaps_[partition][static_cast<int>(Order::kOwn)][0];
}

bool AdaptivePolicy::Less(Order o, uint32_t a, uint32_t b) const {
  if (o == Order::kOwn) {
    const double pa = OwnPrio(a), pb = OwnPrio(b);
    if (pa != pb) return pa < pb;
    return last_own_tick_[a] < last_own_tick_[b];
  }
  const double pa = Prio(a), pb = Prio(b);
  if (pa != pb) return pa < pb;
  return last_tick_[a] < last_tick_[b];
}

bool AdaptivePolicy::EvictsBefore(uint32_t a, uint32_t b) const { return Less(Order::kTier, a, b); }

void AdaptivePolicy::SiftUp(Order o, std::vector<uint32_t>& heap, uint32_t i) const {
  std::vector<uint32_t>& pos = heap_pos_[static_cast<int>(o)];
  while (i > 0) {
    const uint32_t parent = (i - 1) / 2;
    if (!Less(o, heap[i], heap[parent])) break;
    std::swap(heap[i], heap[parent]);
    pos[heap[i]] = i;
    pos[heap[parent]] = parent;
    i = parent;
  }
}

void AdaptivePolicy::Heapify(Order o, std::vector<uint32_t>& heap) const {
  for (uint32_t i = static_cast<uint32_t>(heap.size() / 2); i-- > 0;) SiftDown(o, heap, i);
}

void AdaptivePolicy::SiftDown(Order o, std::vector<uint32_t>& heap, uint32_t i) const {
  std::vector<uint32_t>& pos = heap_pos_[static_cast<int>(o)];
  const uint32_t n = static_cast<uint32_t>(heap.size());
  while (true) {
    const uint32_t l = 2 * i + 1;
    const uint32_t r = l + 1;
    uint32_t best = i;
    if (l < n && Less(o, heap[l], heap[best])) best = l;
    if (r < n && Less(o, heap[r], heap[best])) best = r;
    if (best == i) return;
    std::swap(heap[i], heap[best]);
    pos[heap[i]] = i;
    pos[heap[best]] = best;
    i = best;
  }
}

void AdaptivePolicy::HeapInsert(uint32_t handle) {
  for (Order o : {Order::kOwn, Order::kTier}) {
    if (o == Order::kOwn && !OwnKept(partition_[handle])) continue;
    std::vector<uint32_t>& heap = heaps_[partition_[handle]][static_cast<int>(o)];
    heap_pos_[static_cast<int>(o)][handle] = static_cast<uint32_t>(heap.size());
    heap.push_back(handle);
    SiftUp(o, heap, static_cast<uint32_t>(heap.size() - 1));
  }
  ++evictable_;
}

void AdaptivePolicy::HeapUpdate(uint32_t handle) {
  for (Order o : {Order::kOwn, Order::kTier}) {
    if (o == Order::kOwn && !OwnKept(partition_[handle])) continue;
    std::vector<uint32_t>& heap = heaps_[partition_[handle]][static_cast<int>(o)];
    SiftUp(o, heap, heap_pos_[static_cast<int>(o)][handle]);
    SiftDown(o, heap, heap_pos_[static_cast<int>(o)][handle]);
  }
}

void AdaptivePolicy::HeapRemove(uint32_t handle) {
  for (Order o : {Order::kOwn, Order::kTier}) {
    if (o == Order::kOwn && !OwnKept(partition_[handle])) continue;
    std::vector<uint32_t>& pos = heap_pos_[static_cast<int>(o)];
    std::vector<uint32_t>& heap = heaps_[partition_[handle]][static_cast<int>(o)];
    const uint32_t i = pos[handle];
    const uint32_t last = heap.back();
    heap.pop_back();
    pos[handle] = kNil;
    if (last == handle) continue;
    heap[i] = last;
    pos[last] = i;
    SiftUp(o, heap, i);
    SiftDown(o, heap, pos[last]);
  }
  --evictable_;
}

}  // namespace kvtier
