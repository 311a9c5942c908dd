#include "cache_store/eviction_policy.h"

#include "absl/strings/str_cat.h"
#include "cache_store/adaptive_policy.h"
#include "cache_store/lru_policy.h"
#include "cache_store/slru_policy.h"

namespace kvtier {

absl::StatusOr<std::unique_ptr<EvictionPolicy>> MakeEvictionPolicy(std::string_view name,
                                                                   uint32_t handles,
                                                                   uint32_t tier_blocks) {
  if (name == "lru") return std::make_unique<LruPolicy>(handles);
  if (name == "slru") return std::make_unique<SlruPolicy>(handles);
  if (name == "adaptive") return std::make_unique<AdaptivePolicy>(handles, tier_blocks);
  if (name.starts_with("adaptive:")) {
    absl::StatusOr<AdaptivePolicy::Ingredients> in =
        AdaptivePolicy::ParseAblation(name.substr(sizeof("adaptive:") - 1));
    if (!in.ok()) return in.status();
    return std::make_unique<AdaptivePolicy>(handles, tier_blocks, *in);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown eviction policy \"", std::string(name),
                                                 "\"; known: adaptive, lru, slru (and adaptive:-INGREDIENT,... "
                                                 "for ablations)"));
}

}  // namespace kvtier
