// Tier: where a block lives. T1 is pinned host DRAM; T2 (local SSD) arrives with the SSD
// tier.
#ifndef KVTIER_CACHE_STORE_TIER_H_
#define KVTIER_CACHE_STORE_TIER_H_

#include <cstdint>

namespace kvtier {

enum class Tier : uint8_t {
  kHostDram = 1,
  kLocalSsd = 2,
};

inline const char* TierName(Tier tier) { return tier == Tier::kHostDram ? "t1" : "t2"; }

}  // namespace kvtier

#endif  // KVTIER_CACHE_STORE_TIER_H_
