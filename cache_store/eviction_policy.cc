#include "cache_store/eviction_policy.h"

#include "absl/strings/str_cat.h"
#include "cache_store/adaptive_policy.h"
#include "cache_store/lru_policy.h"

namespace kvtier {

absl::StatusOr<std::unique_ptr<EvictionPolicy>> MakeEvictionPolicy(std::string_view name,
                                                                   uint32_t handles,
                                                                   uint32_t tier_blocks) {
  if (name == "lru") return std::make_unique<LruPolicy>(handles);
  if (name == "adaptive") return std::make_unique<AdaptivePolicy>(handles, tier_blocks);
  return absl::InvalidArgumentError(
      absl::StrCat("unknown eviction policy \"", std::string(name), "\"; known: adaptive, lru"));
}

}  // namespace kvtier
