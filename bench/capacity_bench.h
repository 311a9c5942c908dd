// kvtier-bench capacity: how many blocks of each real layout a store of --t1_bytes holds
// with the default slabs (the arithmetic of cache_store/slab_allocator.h that T1 runs), the
// block's size class, and the share of the tier that holds payload: the capacity table of
// docs/benchmarks.md ("Many layouts in one store").
#ifndef KVTIER_BENCH_CAPACITY_BENCH_H_
#define KVTIER_BENCH_CAPACITY_BENCH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kvtier::bench {

// One JSON line per layout.
absl::StatusOr<std::vector<std::string>> RunCapacityBench(uint64_t tier_bytes);

}  // namespace kvtier::bench

#endif  // KVTIER_BENCH_CAPACITY_BENCH_H_
