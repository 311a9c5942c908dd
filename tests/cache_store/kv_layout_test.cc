#include "cache_store/kv_layout.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace kvtier {
namespace {

TEST(KvLayoutTest, BlockBytesMatchesDesignExample) {
  KvLayout layout = Llama3_8BLayout();
  ASSERT_TRUE(layout.Validate().ok());
  EXPECT_EQ(layout.BlockBytes(), uint64_t{2} << 20);  // DESIGN.md: 2 MiB
  EXPECT_EQ(layout.LayerBytes(), layout.BlockBytes() / 32);
}

TEST(KvLayoutTest, DTypeSizes) {
  EXPECT_EQ(DTypeBytes(DType::kFp32), 4u);
  EXPECT_EQ(DTypeBytes(DType::kFp16), 2u);
  EXPECT_EQ(DTypeBytes(DType::kBf16), 2u);
  EXPECT_EQ(DTypeBytes(DType::kFp8E4M3), 1u);
  EXPECT_EQ(DTypeBytes(DType::kInt8), 1u);
  EXPECT_EQ(DTypeBytes(static_cast<DType>(99)), 0u);
}

TEST(KvLayoutTest, RejectsZeroAndOversizedFieldsByName) {
  struct Case {
    void (*mutate)(KvLayout&);
    const char* field;
  };
  const Case cases[] = {
      {[](KvLayout& l) { l.model_id.clear(); }, "model_id"},
      {[](KvLayout& l) { l.num_layers = 0; }, "num_layers"},
      {[](KvLayout& l) { l.num_kv_heads = 0; }, "num_kv_heads"},
      {[](KvLayout& l) { l.head_dim = 0; }, "head_dim"},
      {[](KvLayout& l) { l.tokens_per_block = 0; }, "tokens_per_block"},
      {[](KvLayout& l) { l.head_dim = kMaxHeadDim + 1; }, "head_dim"},
      {[](KvLayout& l) { l.dtype = static_cast<DType>(42); }, "dtype"},
      {[](KvLayout& l) { l.model_id.assign(300, 'x'); }, "model_id"},
  };
  for (const Case& c : cases) {
    KvLayout layout = Llama3_8BLayout();
    c.mutate(layout);
    absl::Status s = layout.Validate();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_NE(s.message().find(c.field), std::string_view::npos) << s.message();
  }
}

TEST(KvLayoutTest, RejectsBlocksOverTheSizeLimit) {
  KvLayout layout = Llama3_8BLayout();
  layout.tokens_per_block = 65536;  // 8 GiB per block
  absl::Status s = layout.Validate();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("block of"), std::string_view::npos) << s.message();
}

TEST(KvLayoutTest, FingerprintKnownAnswerAndSensitivity) {
  KvLayout layout = Llama3_8BLayout();
  // Computed independently with Python's hashlib from the encoding in kv_layout.cc.
  EXPECT_EQ(layout.Fingerprint(), 0xaab6d3378306ca86ull);
  KvLayout other = layout;
  other.dtype = DType::kFp16;
  EXPECT_NE(other.Fingerprint(), layout.Fingerprint());
  other = layout;
  other.tokens_per_block = 32;
  EXPECT_NE(other.Fingerprint(), layout.Fingerprint());
  other = layout;
  other.model_id = "llama-3-8b-instruct";
  EXPECT_NE(other.Fingerprint(), layout.Fingerprint());
}

TEST(KvLayoutTest, QuantizedLayoutsCarryTheirScalesInThePayload) {
  const KvLayout bf16 = Llama3_8BLayout();
  EXPECT_EQ(bf16.LayerScaleBytes(), 0u);
  for (DType d : {DType::kFp8E4M3, DType::kInt8}) {
    const KvLayout q = Llama3_8BLayout(d);
    EXPECT_EQ(q.LayerElementBytes(), bf16.LayerElementBytes() / 2);
    EXPECT_EQ(q.LayerScaleBytes(), 2u * 8 * sizeof(float));  // K and V, per KV head
    EXPECT_EQ(q.LayerBytes(), q.LayerElementBytes() + q.LayerScaleBytes());
    EXPECT_EQ(q.BlockBytes(), 32u * q.LayerBytes());
    // The payload format differs from before scales were carried: so does the fingerprint.
    EXPECT_NE(q.Fingerprint(), bf16.Fingerprint());
  }
}

TEST(KvLayoutTest, MlaLayoutsHaveOneLatentPerTokenAndNoHeads) {
  const KvLayout mla = DeepSeekV3MlaLayout();
  ASSERT_TRUE(mla.Validate().ok()) << mla.Validate();
  EXPECT_EQ(mla.LayerBytes(), 16u * (512 + 64) * 2);
  EXPECT_EQ(mla.BlockBytes(), 1124352u);
  const KvLayout fp8 = DeepSeekV3MlaLayout(DType::kFp8E4M3);
  EXPECT_EQ(fp8.LayerBytes(), 16u * 576 + 2 * sizeof(float));

  KvLayout bad = mla;
  bad.num_kv_heads = 1;
  EXPECT_NE(bad.Validate().message().find("num_kv_heads"), std::string_view::npos);
  bad = mla;
  bad.kv_lora_rank = 0;
  EXPECT_NE(bad.Validate().message().find("kv_lora_rank"), std::string_view::npos);
  bad = Llama3_8BLayout();
  bad.rope_dim = 64;
  EXPECT_NE(bad.Validate().message().find("MLA"), std::string_view::npos) << bad.Validate();
  bad = mla;
  bad.kind = static_cast<LayoutKind>(9);
  EXPECT_NE(bad.Validate().message().find("kind"), std::string_view::npos);
  // An MLA layout and a K/V-head one never share a fingerprint, even with equal bytes.
  KvLayout heads{.model_id = "deepseek-v3",
                 .num_layers = 61,
                 .num_kv_heads = 1,
                 .head_dim = 288,
                 .dtype = DType::kBf16,
                 .tokens_per_block = 16};
  EXPECT_EQ(heads.BlockBytes(), mla.BlockBytes());
  EXPECT_NE(heads.Fingerprint(), mla.Fingerprint());
}

// The same file is checked by the Python package's tests (client/python/tests).
TEST(KvLayoutTest, SharedKnownAnswerLayoutsFile) {
  std::ifstream in(KVTIER_SOURCE_DIR "/tests/data/layout_vectors.txt");
  ASSERT_TRUE(in) << "tests/data/layout_vectors.txt is missing";
  std::string line;
  int cases = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> f = absl::StrSplit(line, '|');
    ASSERT_EQ(f.size(), 12u) << line;
    auto u32 = [&](int i) { return static_cast<uint32_t>(std::stoul(f[i])); };
    KvLayout l{.model_id = f[1],
               .num_layers = u32(2),
               .num_kv_heads = u32(3),
               .head_dim = u32(4),
               .dtype = static_cast<DType>(u32(7)),
               .tokens_per_block = u32(8),
               .kind = f[0] == "mla" ? LayoutKind::kMla : LayoutKind::kKvHeads,
               .kv_lora_rank = u32(5),
               .rope_dim = u32(6)};
    ASSERT_TRUE(l.Validate().ok()) << line << ": " << l.Validate();
    EXPECT_EQ(l.LayerBytes(), std::stoull(f[9])) << line;
    EXPECT_EQ(l.BlockBytes(), std::stoull(f[10])) << line;
    EXPECT_EQ(absl::StrFormat("%016x", l.Fingerprint()), f[11]) << line;
    ++cases;
  }
  EXPECT_GE(cases, 8);
}

}  // namespace
}  // namespace kvtier
