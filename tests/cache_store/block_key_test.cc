#include "cache_store/block_key.h"

#include <gtest/gtest.h>

#include <fstream>
#include <numeric>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "cache_store/kv_layout.h"

namespace kvtier {
namespace {

// Known answers computed independently with Python's hashlib from the encoding documented
// in block_key.h.
constexpr char kNsTenantA[] = "0deec033f5d20ba21e4d620e8b5120042f70c85779667ad280bc57c508e85fc2";
constexpr char kKey0[] = "cb245a51ad9f20f14de47f5515cbf6098d44cdbcabbc3ff91fcf5e5aae4aaa34";
constexpr char kKey1[] = "894fa8abceb8dcd8bc5c503817f79413b4e37c49267086d2decf96d7834aa5e7";
constexpr char kNsTenantBSalt[] =
    "d01eb266c164653cde6af9ee8254d37d23c79c037106aa0978e269e18da99dc3";
constexpr uint64_t kFp = 0x0123456789abcdefull;

TEST(BlockKeyTest, KnownAnswerVectors) {
  BlockKey ns = NamespaceKey("tenant-a", kFp, "");
  EXPECT_EQ(ns.ToHex(), kNsTenantA);
  std::vector<uint32_t> tokens = {1, 2, 3, 4, 5, 6, 7, 8};
  std::vector<BlockKey> keys = ChainBlockKeys(ns, tokens, 4);
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[0].ToHex(), kKey0);
  EXPECT_EQ(keys[1].ToHex(), kKey1);
  EXPECT_EQ(NamespaceKey("tenant-b", kFp, "salt").ToHex(), kNsTenantBSalt);
}

// The vectors the Python package's tests read too (client/python/tests): the two
// implementations cannot drift apart. Layouts, tenants (one not ASCII), salts and 32-bit
// token ids end to end, through the layout fingerprint.
TEST(BlockKeyTest, SharedKnownAnswerVectorsFile) {
  std::ifstream in(KVTIER_SOURCE_DIR "/tests/data/block_key_vectors.txt");
  ASSERT_TRUE(in) << "tests/data/block_key_vectors.txt is missing";
  std::string line;
  int cases = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const std::vector<std::string> f = absl::StrSplit(line, '|');
    ASSERT_EQ(f.size(), 10u) << line;
    uint32_t n[5];
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(absl::SimpleAtoi(f[2 + i], &n[i])) << line;
    const KvLayout layout{.model_id = f[1],
                          .num_layers = n[0],
                          .num_kv_heads = n[1],
                          .head_dim = n[2],
                          .dtype = static_cast<DType>(n[3]),
                          .tokens_per_block = n[4]};
    ASSERT_TRUE(layout.Validate().ok()) << line;
    std::vector<uint32_t> tokens;
    for (absl::string_view t : absl::StrSplit(f[8], ',', absl::SkipEmpty())) {
      uint32_t v;
      ASSERT_TRUE(absl::SimpleAtoi(t, &v)) << t;
      tokens.push_back(v);
    }
    const std::vector<std::string> want = absl::StrSplit(f[9], ',', absl::SkipEmpty());
    const std::vector<BlockKey> got =
        ChainBlockKeys(NamespaceKey(f[0], layout.Fingerprint(), f[7]), tokens, n[4]);
    ASSERT_EQ(got.size(), want.size()) << line;
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].ToHex(), want[i]) << line;
    ++cases;
  }
  EXPECT_GE(cases, 5);
}

TEST(BlockKeyTest, ChainingMakesKeysDependOnEveryEarlierToken) {
  BlockKey ns = NamespaceKey("t", kFp, "");
  std::vector<uint32_t> a(64);
  std::iota(a.begin(), a.end(), 0);
  std::vector<uint32_t> b = a;
  b[0] = 1000;  // differs only in block 0
  std::vector<BlockKey> ka = ChainBlockKeys(ns, a, 16);
  std::vector<BlockKey> kb = ChainBlockKeys(ns, b, 16);
  ASSERT_EQ(ka.size(), 4u);
  for (size_t i = 0; i < ka.size(); ++i) EXPECT_NE(ka[i], kb[i]) << "block " << i;
  std::vector<uint32_t> c = a;
  c[63] = 1000;  // differs only in the last block
  std::vector<BlockKey> kc = ChainBlockKeys(ns, c, 16);
  EXPECT_EQ(ka[0], kc[0]);
  EXPECT_EQ(ka[2], kc[2]);
  EXPECT_NE(ka[3], kc[3]);
}

TEST(BlockKeyTest, TenantsLayoutsAndSaltsSeparateNamespaces) {
  std::vector<uint32_t> tokens(16, 7);
  BlockKey base = ChainBlockKeys(NamespaceKey("a", kFp, ""), tokens, 16)[0];
  EXPECT_NE(base, ChainBlockKeys(NamespaceKey("b", kFp, ""), tokens, 16)[0]);
  EXPECT_NE(base, ChainBlockKeys(NamespaceKey("a", kFp + 1, ""), tokens, 16)[0]);
  EXPECT_NE(base, ChainBlockKeys(NamespaceKey("a", kFp, "s"), tokens, 16)[0]);
  // Length prefixes: moving bytes between tenant and salt changes the namespace.
  EXPECT_NE(NamespaceKey("ab", kFp, ""), NamespaceKey("a", kFp, "b"));
}

TEST(BlockKeyTest, OnlyFullBlocksAreKeyedAndMaxBlocksLimits) {
  BlockKey ns = NamespaceKey("t", kFp, "");
  std::vector<uint32_t> tokens(47, 1);
  EXPECT_EQ(ChainBlockKeys(ns, tokens, 16).size(), 2u);
  EXPECT_EQ(ChainBlockKeys(ns, tokens, 16, 1).size(), 1u);
  EXPECT_TRUE(ChainBlockKeys(ns, std::span<const uint32_t>(tokens).first(15), 16).empty());
}

TEST(BlockKeyTest, FromBytesRoundTripAndRejectsWrongLength) {
  BlockKey k = NamespaceKey("t", kFp, "");
  absl::StatusOr<BlockKey> back = BlockKey::FromBytes(k.AsBytes());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, k);
  absl::StatusOr<BlockKey> bad = BlockKey::FromBytes("short");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(k.ShortHex(), k.ToHex().substr(0, 8));
}

}  // namespace
}  // namespace kvtier
