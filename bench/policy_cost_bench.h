// kvtier-bench policy_cost: what a T1 eviction policy costs per reference, on its own (no
// store, no trace parsing, no lock), so that the BonusTuner's share can be told apart from
// this shared machine's noise. One synthetic stream drives each policy the way BlockStore
// drives a full tier of `tier_blocks` one-size blocks: a resident key is an access
// (OnAccess), any other evicts the policy's victim (OnLeave) and becomes resident
// (OnResident, SetEvictable). The stream mixes a hot set of 2 x tier_blocks keys (a share
// `hot_share` of the references, chosen uniformly) with keys never seen before, with
// depths and blocks-to-end drawn so that the classes differ. Policies, in one run: lru, adaptive with a fixed bonus
// weight (adaptive:-tune) and the default adaptive (tuned weight), each the best of
// `iterations` runs; the report gives ns per reference and the tuned/fixed ratio (the
// tuner's cost), and each policy's hit rate on the stream (the three must not differ by
// much: they see the same references).
#ifndef KVTIER_BENCH_POLICY_COST_BENCH_H_
#define KVTIER_BENCH_POLICY_COST_BENCH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kvtier::bench {

struct PolicyCostOptions {
  uint32_t tier_blocks = 2048;
  uint64_t references = 2'000'000;
  double hot_share = 0.7;
  int iterations = 3;
};

// One JSON object per policy, then one with the ratios.
absl::StatusOr<std::vector<std::string>> RunPolicyCostBench(const PolicyCostOptions& o);

}  // namespace kvtier::bench

#endif  // KVTIER_BENCH_POLICY_COST_BENCH_H_
