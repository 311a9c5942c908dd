#include "cache_store/block_key.h"

#include <openssl/sha.h>

#include <algorithm>
#include <bit>

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

// SHA-256 through OpenSSL's direct interface. OpenSSL 3 marks it deprecated in favour of
// EVP, but EVP looks the algorithm up (locks, name comparisons) on every one-shot call and
// dispatches through a provider on every update: for the 96-byte inputs of a key chain that
// is 7x (one-shot) or 1.5x (a cached EVP_MD) the cost of the hash itself, and a 128k-token
// Lookup derives 8,192 keys in a row. The digest is the same SHA-256 either way
// (block_key_test's known answers).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
class Sha256Hasher {
 public:
  Sha256Hasher() { SHA256_Init(&ctx_); }
  void Update(const void* data, size_t size) { SHA256_Update(&ctx_, data, size); }
  BlockKey Final() {
    BlockKey key;
    SHA256_Final(key.bytes.data(), &ctx_);
    return key;
  }

 private:
  SHA256_CTX ctx_;
};
#pragma GCC diagnostic pop

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
  Sha256Hasher h;
  h.Update(buf.data(), buf.size());
  return h.Final();
}

BlockKey NextBlockKey(const BlockKey& parent, std::span<const uint32_t> block_tokens) {
  Sha256Hasher h;
  h.Update(parent.bytes.data(), parent.bytes.size());
  if constexpr (std::endian::native == std::endian::little) {
    // The tokens are already the u32le bytes the key is defined over.
    h.Update(block_tokens.data(), block_tokens.size_bytes());
  } else {
    std::string buf;
    buf.reserve(4 * block_tokens.size());
    for (uint32_t t : block_tokens) AppendU32(buf, t);
    h.Update(buf.data(), buf.size());
  }
  return h.Final();
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
