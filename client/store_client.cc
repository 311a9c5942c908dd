#include "client/store_client.h"

#include "absl/strings/str_cat.h"

namespace kvtier {

absl::StatusOr<PutReply> StoreClient::Put(const KvLayout& layout, std::span<const uint32_t> tokens,
                                          uint32_t first_block, std::span<const uint8_t> payload,
                                          const std::string& salt, bool last_block_partial) {
  return Put(layout, tokens, first_block, payload,
             PutParams{.salt = salt, .last_block_partial = last_block_partial});
}

absl::StatusOr<PutReply> StoreClient::Put(const KvLayout& layout, std::span<const uint32_t> tokens,
                                          uint32_t first_block, std::span<const uint8_t> payload,
                                          const PutParams& params) {
  if (absl::Status s = layout.Validate(); !s.ok()) return s;
  const uint64_t block_bytes = layout.BlockBytes();
  if (payload.empty() || payload.size() % block_bytes != 0) {
    return absl::InvalidArgumentError(absl::StrCat("a Put payload is a whole number of ",
                                                   block_bytes, "-byte blocks; got ",
                                                   payload.size(), " bytes"));
  }
  std::vector<std::span<const uint8_t>> blocks;
  for (uint64_t off = 0; off < payload.size(); off += block_bytes) {
    blocks.push_back(payload.subspan(off, block_bytes));
  }
  return PutBlocks(layout, tokens, first_block, blocks, params);
}

absl::StatusOr<PutReply> StoreClient::PutBlocks(const KvLayout& layout,
                                                std::span<const uint32_t> tokens,
                                                uint32_t first_block,
                                                std::span<const std::span<const uint8_t>> blocks,
                                                const std::string& salt, bool last_block_partial) {
  return PutBlocks(layout, tokens, first_block, blocks,
                   PutParams{.salt = salt, .last_block_partial = last_block_partial});
}

}  // namespace kvtier
