#include "cache_store/bonus_tuner.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace kvtier {

namespace {

constexpr double kTwo53 = 9007199254740992.0;  // 2^53

double SampleRate(uint32_t tier_blocks) {
  return std::min(
      1.0, static_cast<double>(BonusTuner::kSampleBlocks) / std::max<uint32_t>(tier_blocks, 1));
}

}  // namespace

BonusTuner::BonusTuner(uint32_t tier_blocks)
    : tier_blocks_(std::max<uint32_t>(tier_blocks, 1)),
      rate_(SampleRate(tier_blocks)),
      sample_limit_(rate_ >= 1.0 ? UINT64_MAX : static_cast<uint64_t>(rate_ * kTwo53)),
      decay_references_(std::max(1.0, kDecayTurnovers * tier_blocks_ * rate_)),
      choice_references_(std::max(1.0, tier_blocks_ * rate_)) {
  for (size_t i = 0; i < kWeights.size(); ++i) {
    sims_[i].weight = kWeights[i];
    sims_[i].lru = kWeights[i] == 0.0;
  }
}

bool BonusTuner::Sampled(uint64_t fingerprint) const {
  if (sample_limit_ == UINT64_MAX) return true;
  // Fingerprints are key hash bytes already; the multiply spreads any structure left.
  return ((fingerprint * 0x9E3779B97F4A7C15ull) >> 11) < sample_limit_;
}

void BonusTuner::Reference(uint64_t fingerprint, uint32_t tier_capacity, double reuse) {
  if (!Sampled(fingerprint)) return;
  ++tick_;
  // The small caches hold rate_ of the tier: of this block's size, rate_ x tier_capacity.
  const double turnover = std::max(1.0, (tier_capacity ? tier_capacity : tier_blocks_) * rate_);
  const double fill = 1.0 / turnover;
  for (Sim& sim : sims_) Touch(sim, fingerprint, fill, turnover, reuse);
  if (++since_decay_ >= decay_references_) {
    since_decay_ = 0;
    for (Sim& sim : sims_) sim.hits /= 2;
  }
  // A new weight reorders the whole tier: decide once per turnover of the small caches.
  if (++since_choice_ >= choice_references_) {
    since_choice_ = 0;
    Choose();
  }
}

void BonusTuner::Touch(Sim& sim, uint64_t fingerprint, double fill, double turnover, double reuse) {
  const double prio = static_cast<double>(tick_) + sim.weight * reuse * turnover;
  if (auto it = sim.slot_of.find(fingerprint); it != sim.slot_of.end()) {
    sim.hits += 1;
    if (sim.lru) {
      Unlink(sim, it->second);
      Append(sim, it->second);
      return;
    }
    const uint32_t pos = sim.entries[it->second].heap_pos;
    Item& item = sim.heap[pos];
    const bool up = prio < item.prio;  // a lower P can bring a block's priority down
    item.prio = prio;
    item.tick = tick_;
    if (up) {
      SiftUp(sim, pos);
    } else {
      SiftDown(sim, pos);
    }
    return;
  }
  // Room first, among the blocks already there (as the store evicts before it inserts).
  constexpr double kSlack = 1e-9;
  while (!sim.slot_of.empty() && sim.fill + fill > 1.0 + kSlack) PopMin(sim);
  uint32_t slot;
  if (!sim.free_slots.empty()) {
    slot = sim.free_slots.back();
    sim.free_slots.pop_back();
  } else {
    slot = static_cast<uint32_t>(sim.entries.size());
    sim.entries.emplace_back();
  }
  sim.slot_of[fingerprint] = slot;
  sim.fill += fill;
  if (sim.lru) {
    sim.entries[slot] = Entry{.fingerprint = fingerprint, .fill = fill};
    Append(sim, slot);
    return;
  }
  const auto pos = static_cast<uint32_t>(sim.heap.size());
  sim.entries[slot] = Entry{.fingerprint = fingerprint, .fill = fill, .heap_pos = pos};
  sim.heap.push_back(Item{.prio = prio, .tick = tick_, .slot = slot});
  SiftUp(sim, pos);
}

void BonusTuner::Choose() {
  int best = chosen_;
  for (int i = 0; i < static_cast<int>(sims_.size()); ++i) {
    if (sims_[i].hits > sims_[best].hits) best = i;
  }
  const double current = sims_[chosen_].hits;
  if (best != chosen_ && sims_[best].hits > current * (1.0 + kSwitchMargin) + 1.0) {
    chosen_ = best;
  }
}

void BonusTuner::SiftUp(Sim& sim, uint32_t i) {
  const Item item = sim.heap[i];
  while (i > 0) {
    const uint32_t parent = (i - 1) / kArity;
    if (!Less(item, sim.heap[parent])) break;
    sim.heap[i] = sim.heap[parent];
    sim.entries[sim.heap[i].slot].heap_pos = i;
    i = parent;
  }
  sim.heap[i] = item;
  sim.entries[item.slot].heap_pos = i;
}

void BonusTuner::SiftDown(Sim& sim, uint32_t i) {
  const auto n = static_cast<uint32_t>(sim.heap.size());
  const Item item = sim.heap[i];
  while (true) {
    const uint32_t first = kArity * i + 1;
    if (first >= n) break;
    uint32_t child = first;
    const uint32_t last = std::min(first + kArity, n);
    for (uint32_t c = first + 1; c < last; ++c) {
      if (Less(sim.heap[c], sim.heap[child])) child = c;
    }
    if (!Less(sim.heap[child], item)) break;
    sim.heap[i] = sim.heap[child];
    sim.entries[sim.heap[i].slot].heap_pos = i;
    i = child;
  }
  sim.heap[i] = item;
  sim.entries[item.slot].heap_pos = i;
}

void BonusTuner::Unlink(Sim& sim, uint32_t slot) {
  Entry& e = sim.entries[slot];
  (e.prev == kNil ? sim.head : sim.entries[e.prev].next) = e.next;
  (e.next == kNil ? sim.tail : sim.entries[e.next].prev) = e.prev;
  e.prev = e.next = kNil;
}

void BonusTuner::Append(Sim& sim, uint32_t slot) {
  Entry& e = sim.entries[slot];
  e.prev = sim.tail;
  e.next = kNil;
  (sim.tail == kNil ? sim.head : sim.entries[sim.tail].next) = slot;
  sim.tail = slot;
}

void BonusTuner::PopMin(Sim& sim) {
  const uint32_t slot = sim.lru ? sim.head : sim.heap[0].slot;
  Entry& e = sim.entries[slot];
  sim.fill -= e.fill;
  sim.slot_of.erase(e.fingerprint);
  sim.free_slots.push_back(slot);
  if (sim.lru) {
    Unlink(sim, slot);
    return;
  }
  e.heap_pos = kNil;
  const Item last = sim.heap.back();
  sim.heap.pop_back();
  if (sim.heap.empty()) return;
  sim.heap[0] = last;
  sim.entries[last.slot].heap_pos = 0;
  SiftDown(sim, 0);
}

}  // namespace kvtier
