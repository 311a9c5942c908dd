#include "bench/policy_cost_bench.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <random>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "cache_store/adaptive_policy.h"
#include "cache_store/eviction_policy.h"
#include "cache_store/lru_policy.h"

namespace kvtier::bench {
namespace {

struct Reference {
  uint64_t key;
  BlockTraits traits;
};

std::vector<Reference> MakeStream(const PolicyCostOptions& o) {
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> u(0, 1);
  const uint64_t hot = uint64_t{o.tier_blocks} * 2;
  std::vector<Reference> stream;
  stream.reserve(o.references);
  uint64_t next_new = hot;
  for (uint64_t i = 0; i < o.references; ++i) {
    const bool is_hot = u(rng) < o.hot_share;
    const uint64_t id = is_hot ? rng() % hot : next_new++;
    // The traits are a function of the key, as a block's are.
    const uint64_t fingerprint = (id + 1) * 0x9E3779B97F4A7C15ull;
    BlockTraits t;
    t.key_fingerprint = fingerprint;
    t.depth = static_cast<uint32_t>(fingerprint >> 58);  // 0-63
    t.blocks_to_end = static_cast<uint8_t>((fingerprint >> 40) & 3);
    t.origin = static_cast<uint8_t>((fingerprint >> 20) % kPutOrigins);
    t.tier_capacity = o.tier_blocks;
    stream.push_back({fingerprint, t});
  }
  return stream;
}

struct Run {
  double ns_per_reference = 0;
  double hit_rate = 0;
};

Run Drive(EvictionPolicy& policy, uint32_t tier_blocks, const std::vector<Reference>& stream) {
  absl::flat_hash_map<uint64_t, uint32_t> resident;
  std::vector<uint64_t> key_of(tier_blocks, 0);
  std::vector<uint32_t> free_handles;
  for (uint32_t h = tier_blocks; h-- > 0;) free_handles.push_back(h);
  uint64_t hits = 0;
  const auto start = std::chrono::steady_clock::now();
  for (const Reference& r : stream) {
    if (auto it = resident.find(r.key); it != resident.end()) {
      ++hits;
      policy.OnAccess(it->second, r.traits);
      continue;
    }
    if (free_handles.empty()) {
      const uint32_t victim = *policy.Victim();
      policy.OnLeave(victim, /*evicted=*/true);
      resident.erase(key_of[victim]);
      free_handles.push_back(victim);
    }
    const uint32_t h = free_handles.back();
    free_handles.pop_back();
    policy.OnResident(h, r.traits);
    policy.SetEvictable(h, true);
    resident[r.key] = h;
    key_of[h] = r.key;
  }
  const double ns =
      std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
  return {.ns_per_reference = ns / static_cast<double>(stream.size()),
          .hit_rate = static_cast<double>(hits) / static_cast<double>(stream.size())};
}

}  // namespace

absl::StatusOr<std::vector<std::string>> RunPolicyCostBench(const PolicyCostOptions& o) {
  if (o.tier_blocks < 2) return absl::InvalidArgumentError("--policy_blocks must be at least 2");
  if (o.references == 0) return absl::InvalidArgumentError("--policy_references must be > 0");
  if (!(o.hot_share >= 0 && o.hot_share <= 1)) {
    return absl::InvalidArgumentError("--hot_share must be between 0 and 1");
  }
  if (o.iterations < 1) return absl::InvalidArgumentError("--iterations must be at least 1");
  const std::vector<Reference> stream = MakeStream(o);
  struct Candidate {
    const char* name;
    std::unique_ptr<EvictionPolicy> (*make)(uint32_t);
  };
  const Candidate candidates[] = {
      {"lru", [](uint32_t n) -> std::unique_ptr<EvictionPolicy> {
         return std::make_unique<LruPolicy>(n);
       }},
      {"adaptive:-tune", [](uint32_t n) -> std::unique_ptr<EvictionPolicy> {
         return std::make_unique<AdaptivePolicy>(n, n, AdaptivePolicy::Ingredients{.tune = false});
       }},
      {"adaptive", [](uint32_t n) -> std::unique_ptr<EvictionPolicy> {
         return std::make_unique<AdaptivePolicy>(n, n);
       }},
  };
  std::vector<std::string> lines;
  double best[3] = {0, 0, 0};
  for (int c = 0; c < 3; ++c) {
    Run b{.ns_per_reference = 1e300};
    for (int i = 0; i < o.iterations; ++i) {
      std::unique_ptr<EvictionPolicy> policy = candidates[c].make(o.tier_blocks);
      const Run r = Drive(*policy, o.tier_blocks, stream);
      if (r.ns_per_reference < b.ns_per_reference) b = r;
    }
    best[c] = b.ns_per_reference;
    lines.push_back(absl::StrFormat(
        "{\"bench\": \"policy_cost\", \"policy\": \"%s\", \"tier_blocks\": %u, \"references\": "
        "%u, \"hot_share\": %.2f, \"ns_per_reference\": %.1f, \"hit_rate\": %.4f}",
        candidates[c].name, o.tier_blocks, o.references, o.hot_share, b.ns_per_reference,
        b.hit_rate));
  }
  lines.push_back(absl::StrFormat(
      "{\"bench\": \"policy_cost\", \"fixed_over_lru\": %.2f, \"tuned_over_fixed\": %.2f}",
      best[1] / best[0], best[2] / best[1]));
  return lines;
}

}  // namespace kvtier::bench
