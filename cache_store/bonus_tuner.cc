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
  for (size_t i = 0; i < kWeights.size(); ++i) sims_[i].weight = kWeights[i];
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
    Entry& e = sim.entries[it->second];
    e.prio = prio;
    e.tick = tick_;
    SiftUp(sim, e.heap_pos);
    SiftDown(sim, sim.entries[it->second].heap_pos);
    return;
  }
  // Room first, among the blocks already there (as the store evicts before it inserts).
  constexpr double kSlack = 1e-9;
  while (!sim.heap.empty() && sim.fill + fill > 1.0 + kSlack) PopMin(sim);
  uint32_t slot;
  if (!sim.free_slots.empty()) {
    slot = sim.free_slots.back();
    sim.free_slots.pop_back();
  } else {
    slot = static_cast<uint32_t>(sim.entries.size());
    sim.entries.emplace_back();
  }
  sim.entries[slot] = Entry{.fingerprint = fingerprint,
                            .prio = prio,
                            .tick = tick_,
                            .fill = fill,
                            .heap_pos = static_cast<uint32_t>(sim.heap.size())};
  sim.heap.push_back(slot);
  sim.slot_of[fingerprint] = slot;
  sim.fill += fill;
  SiftUp(sim, sim.entries[slot].heap_pos);
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

bool BonusTuner::Less(const Sim& sim, uint32_t a, uint32_t b) const {
  const Entry& x = sim.entries[a];
  const Entry& y = sim.entries[b];
  if (x.prio != y.prio) return x.prio < y.prio;
  return x.tick < y.tick;
}

void BonusTuner::SiftUp(Sim& sim, uint32_t i) {
  while (i > 0) {
    const uint32_t parent = (i - 1) / 2;
    if (!Less(sim, sim.heap[i], sim.heap[parent])) break;
    std::swap(sim.heap[i], sim.heap[parent]);
    sim.entries[sim.heap[i]].heap_pos = i;
    sim.entries[sim.heap[parent]].heap_pos = parent;
    i = parent;
  }
}

void BonusTuner::SiftDown(Sim& sim, uint32_t i) {
  const uint32_t n = static_cast<uint32_t>(sim.heap.size());
  while (true) {
    const uint32_t l = 2 * i + 1;
    const uint32_t r = l + 1;
    uint32_t best = i;
    if (l < n && Less(sim, sim.heap[l], sim.heap[best])) best = l;
    if (r < n && Less(sim, sim.heap[r], sim.heap[best])) best = r;
    if (best == i) return;
    std::swap(sim.heap[i], sim.heap[best]);
    sim.entries[sim.heap[i]].heap_pos = i;
    sim.entries[sim.heap[best]].heap_pos = best;
    i = best;
  }
}

void BonusTuner::PopMin(Sim& sim) {
  const uint32_t slot = sim.heap[0];
  Entry& e = sim.entries[slot];
  sim.fill -= e.fill;
  sim.slot_of.erase(e.fingerprint);
  e.heap_pos = kNil;
  sim.free_slots.push_back(slot);
  const uint32_t last = sim.heap.back();
  sim.heap.pop_back();
  if (last == slot) return;
  sim.heap[0] = last;
  sim.entries[last].heap_pos = 0;
  SiftDown(sim, 0);
}

}  // namespace kvtier
