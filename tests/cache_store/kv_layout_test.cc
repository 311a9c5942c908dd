#include "cache_store/kv_layout.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace kvtier
