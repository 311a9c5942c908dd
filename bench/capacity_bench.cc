#include "bench/capacity_bench.h"

#include "absl/strings/str_format.h"
#include "cache_store/kv_layout.h"
#include "cache_store/slab_allocator.h"

namespace kvtier::bench {

absl::StatusOr<std::vector<std::string>> RunCapacityBench(uint64_t tier_bytes) {
  absl::StatusOr<SlabAllocator> tier = SlabAllocator::Create({.capacity_bytes = tier_bytes});
  if (!tier.ok()) return tier.status();
  const KvLayout llama70b{.model_id = "llama-3-70b",
                          .num_layers = 80,
                          .num_kv_heads = 8,
                          .head_dim = 128,
                          .dtype = DType::kBf16,
                          .tokens_per_block = 16};
  const std::vector<KvLayout> layouts = {
      Llama3_8BLayout(), Llama3_8BLayout(DType::kFp8E4M3), Llama3_8BLayout(DType::kInt8),
      llama70b,          DeepSeekV3MlaLayout(),            DeepSeekV3MlaLayout(DType::kFp8E4M3)};
  std::vector<std::string> lines;
  for (const KvLayout& layout : layouts) {
    const uint64_t block = layout.BlockBytes();
    const std::optional<int> cls = tier->ClassFor(block);
    if (!cls) {
      lines.push_back(absl::StrFormat(
          "{\"layout\": \"%s\", \"block_bytes\": %d, \"refused\": \"over max_block_bytes %d\"}",
          layout.DebugString(), block, tier->max_slot_bytes()));
      continue;
    }
    const uint64_t blocks = tier->capacity_slots(*cls);
    lines.push_back(absl::StrFormat(
        "{\"layout\": \"%s\", \"block_bytes\": %d, \"tier_bytes\": %d, \"slab_bytes\": %d, "
        "\"slot_bytes\": %d, \"blocks\": %d, \"blocks_payload_only\": %d, "
        "\"payload_share\": %.4f, \"tokens\": %d}",
        layout.DebugString(), block, tier->capacity_bytes(), tier->slab_bytes(),
        tier->class_slot_bytes(*cls), blocks, tier->capacity_bytes() / block,
        double(blocks * block) / double(tier->capacity_bytes()),
        blocks * layout.tokens_per_block));
  }
  return lines;
}

}  // namespace kvtier::bench
