#include "cache_store/block_key.h"

#include <openssl/sha.h>

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace kvtier {
namespace {

void AppendU32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void AppendU64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

BlockKey Sha256(std::string_view data) {
  BlockKey key;
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), key.bytes.data());
  return key;
}

}  // namespace

absl::StatusOr<BlockKey> BlockKey::FromBytes(std::string_view raw) {
  if (raw.size() != kSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("a block key is ", kSize, " bytes, got ", raw.size()));
  }
  BlockKey key;
  std::memcpy(key.bytes.data(), raw.data(), kSize);
  return key;
}

std::string BlockKey::ToHex() const {
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

std::string BlockKey::ShortHex() const { return ToHex().substr(0, 8); }

BlockKey NamespaceKey(std::string_view tenant, uint64_t layout_fingerprint, std::string_view salt) {
  std::string buf = "kvtier.ns.v1";
  AppendU32(buf, static_cast<uint32_t>(tenant.size()));
  buf.append(tenant);
  AppendU64(buf, layout_fingerprint);
  AppendU32(buf, static_cast<uint32_t>(salt.size()));
  buf.append(salt);
  return Sha256(buf);
}

BlockKey NextBlockKey(const BlockKey& parent, std::span<const uint32_t> block_tokens) {
  std::string buf;
  buf.reserve(BlockKey::kSize + 4 * block_tokens.size());
  buf.append(parent.AsBytes());
  for (uint32_t t : block_tokens) AppendU32(buf, t);
  return Sha256(buf);
}

std::vector<BlockKey> ChainBlockKeys(const BlockKey& ns, std::span<const uint32_t> tokens,
                                     uint32_t tokens_per_block, size_t max_blocks) {
  const size_t n = std::min(max_blocks, tokens.size() / tokens_per_block);
  std::vector<BlockKey> keys;
  keys.reserve(n);
  const BlockKey* parent = &ns;
  for (size_t i = 0; i < n; ++i) {
    keys.push_back(NextBlockKey(*parent, tokens.subspan(i * tokens_per_block, tokens_per_block)));
    parent = &keys.back();
  }
  return keys;
}

}  // namespace kvtier
