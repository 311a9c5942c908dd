// The CPU paged decode attention against a textbook softmax(q·Kᵀ·scale)·V written here,
// over dtypes, GQA ratios, head dims, sequence lengths around page boundaries, long and
// ragged batches, split-KV merging, and bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <tuple>

#include "tests/kernels/kernel_test_util.h"

namespace kvtier::kernels {
namespace {

using testing::Batch;
using testing::Decode;
using testing::MakeBatch;
using testing::Reference;

constexpr uint32_t kPage = 16;

// Output tolerance: dominated by the rounding of the output dtype (values are O(1)).
double Tolerance(DType out) {
  switch (out) {
    case DType::kFp32:
      return 2e-5;
    case DType::kFp16:
      return 2e-3;
    default:
      return 1.6e-2;  // bf16: 8 bits of mantissa
  }
}

void CheckAgainstReference(const Batch& b, DType out_dtype, uint32_t layer, CpuOptions options) {
  const uint32_t dim = b.pool.head_dim;
  const uint32_t seqs = static_cast<uint32_t>(b.lens.size());
  const double scale = 1.0 / std::sqrt(static_cast<double>(dim));
  std::vector<uint8_t> out(uint64_t{seqs} * b.num_q_heads * dim * DTypeBytes(out_dtype), 0xEE);
  std::vector<float> lse(uint64_t{seqs} * b.num_q_heads, 12345.0f);
  DecodeAttentionArgs args{.q = b.q.data(),
                           .q_dtype = b.q_dtype,
                           .out = out.data(),
                           .out_dtype = out_dtype,
                           .lse = lse.data(),
                           .num_seqs = seqs,
                           .num_q_heads = b.num_q_heads,
                           .layer = layer,
                           .softmax_scale = static_cast<float>(scale),
                           .page_indptr = b.indptr.data(),
                           .page_indices = b.indices.data(),
                           .seq_lens = b.lens.data()};
  ASSERT_TRUE(PagedDecodeAttentionCpu(b.pool, args, options).ok());
  const std::vector<float> got = Decode(out, out_dtype, uint64_t{seqs} * b.num_q_heads * dim);
  double worst = 0;
  for (uint32_t s = 0; s < seqs; ++s) {
    for (uint32_t h = 0; h < b.num_q_heads; ++h) {
      auto [want, want_lse] = Reference(b, s, h, layer, scale);
      for (uint32_t d = 0; d < dim; ++d) {
        const double err = std::fabs(got[(uint64_t{s} * b.num_q_heads + h) * dim + d] - want[d]);
        worst = std::max(worst, err);
      }
      const float l = lse[uint64_t{s} * b.num_q_heads + h];
      if (b.lens[s] == 0) {
        EXPECT_TRUE(std::isinf(l) && l < 0) << "seq " << s;
      } else {
        EXPECT_NEAR(l, want_lse, 1e-4 * std::max(1.0, std::fabs(want_lse))) << "seq " << s;
      }
    }
  }
  EXPECT_LE(worst, Tolerance(out_dtype));
}

// (kv dtype, out dtype, group size, head_dim)
class PagedAttentionCpuTest
    : public ::testing::TestWithParam<std::tuple<DType, DType, uint32_t, uint32_t>> {};

TEST_P(PagedAttentionCpuTest, MatchesTextbookAttention) {
  const auto [kv, out, group, dim] = GetParam();
  const uint32_t kv_heads = 2;
  // Lengths around page boundaries, in one ragged batch; q in bf16 when K/V are 16-bit.
  const Batch b =
      MakeBatch({1, kPage - 1, kPage, kPage + 1, 3 * kPage + 5, 0, 200}, kv_heads * group, kv_heads,
                dim, kPage, kv, kv == DType::kFp32 ? DType::kFp32 : DType::kBf16, 2, 7 + dim);
  CheckAgainstReference(b, out, /*layer=*/1, {.threads = 2, .split_tokens = 4096});
  // Split-KV: chunks of one page, merged by log-sum-exp, give the same answer.
  CheckAgainstReference(b, out, /*layer=*/0, {.threads = 2, .split_tokens = kPage});
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, PagedAttentionCpuTest,
    ::testing::Combine(::testing::Values(DType::kFp32, DType::kFp16, DType::kBf16, DType::kFp8E4M3,
                                         DType::kInt8),
                       ::testing::Values(DType::kFp32, DType::kFp16, DType::kBf16),
                       ::testing::Values(1u, 4u, 8u), ::testing::Values(64u, 128u)));

TEST(PagedAttentionCpuLongTest, EightThousandTokensSplitAcrossThreads) {
  const Batch b = MakeBatch({8192, 7}, 8, 1, 128, kPage, DType::kBf16, DType::kBf16, 1, 99);
  CheckAgainstReference(b, DType::kFp32, 0, {.threads = 4, .split_tokens = 1024});
}

TEST(PagedAttentionCpuLongTest, QuantizedKvStaysCloseToFullPrecision) {
  // The same logical K/V in fp32 and in fp8 / int8: attention outputs within the error the
  // quantization introduces (stated in kv_quantize.h), here measured on unit-normal data.
  for (DType kv : {DType::kFp8E4M3, DType::kInt8}) {
    const Batch exact = MakeBatch({300}, 4, 1, 64, kPage, DType::kFp32, DType::kFp32, 1, 5);
    const Batch quant = MakeBatch({300}, 4, 1, 64, kPage, kv, DType::kFp32, 1, 5);
    double worst = 0;
    for (uint32_t h = 0; h < 4; ++h) {
      auto [a, la] = Reference(exact, 0, h, 0, 0.125);
      auto [q, lq] = Reference(quant, 0, h, 0, 0.125);
      for (size_t d = 0; d < a.size(); ++d) worst = std::max(worst, std::fabs(a[d] - q[d]));
    }
    EXPECT_LT(worst, kv == DType::kInt8 ? 0.02 : 0.08) << DTypeName(kv);
  }
}

// The store's compressed block format keeps each layer's scales in the page, after its K
// and V. Attention over such pages gives exactly what it gives over the same elements with
// the scales in a separate array.
TEST(PagedAttentionCpuLongTest, ScalesInsideThePagesReadLikeASeparateArray) {
  for (DType kv : {DType::kFp8E4M3, DType::kInt8}) {
    const Batch b = MakeBatch({1, 17, 70}, 8, 2, 64, kPage, kv, DType::kBf16, 3, 21);
    KvPagePool inline_pool = b.pool;
    inline_pool.scales = nullptr;
    inline_pool.inline_scales = true;
    const uint64_t elements = b.pool.LayerBytes();  // without scales
    ASSERT_EQ(inline_pool.LayerBytes(), elements + 2 * 2 * sizeof(float));
    std::vector<uint8_t> pages(inline_pool.PageBytes() * b.pool.num_pages);
    for (uint32_t p = 0; p < b.pool.num_pages; ++p) {
      for (uint32_t l = 0; l < b.pool.num_layers; ++l) {
        uint8_t* dst = pages.data() + p * inline_pool.PageBytes() + l * inline_pool.LayerBytes();
        std::memcpy(dst, b.pages.data() + p * b.pool.PageBytes() + l * elements, elements);
        std::memcpy(dst + elements, &b.scales[(uint64_t{p} * b.pool.num_layers + l) * 2 * 2],
                    2 * 2 * sizeof(float));
      }
    }
    inline_pool.pages = pages.data();
    const uint32_t seqs = static_cast<uint32_t>(b.lens.size());
    std::vector<float> a(uint64_t{seqs} * b.num_q_heads * 64), c(a.size(), -1.0f);
    DecodeAttentionArgs args{.q = b.q.data(),
                             .q_dtype = b.q_dtype,
                             .out = a.data(),
                             .out_dtype = DType::kFp32,
                             .num_seqs = seqs,
                             .num_q_heads = b.num_q_heads,
                             .layer = 2,
                             .softmax_scale = 0.125f,
                             .page_indptr = b.indptr.data(),
                             .page_indices = b.indices.data(),
                             .seq_lens = b.lens.data()};
    ASSERT_TRUE(PagedDecodeAttentionCpu(b.pool, args, {.threads = 2}).ok());
    args.out = c.data();
    ASSERT_TRUE(PagedDecodeAttentionCpu(inline_pool, args, {.threads = 2}).ok());
    EXPECT_EQ(a, c) << DTypeName(kv);
  }
}

TEST(PagedAttentionCpuErrorsTest, BadInputIsAClearErrorAndWritesNothing) {
  Batch b = MakeBatch({20, 5}, 4, 2, 64, kPage, DType::kFp16, DType::kFp32, 2, 1);
  std::vector<float> out(2 * 4 * 64, 7.0f);
  auto args = [&] {
    return DecodeAttentionArgs{.q = b.q.data(),
                               .q_dtype = DType::kFp32,
                               .out = out.data(),
                               .out_dtype = DType::kFp32,
                               .num_seqs = 2,
                               .num_q_heads = 4,
                               .layer = 0,
                               .softmax_scale = 0.125f,
                               .page_indptr = b.indptr.data(),
                               .page_indices = b.indices.data(),
                               .seq_lens = b.lens.data()};
  };
  auto expect_error = [&](const DecodeAttentionArgs& a, const KvPagePool& pool,
                          std::string_view words) {
    absl::Status s = PagedDecodeAttentionCpu(pool, a);
    EXPECT_FALSE(s.ok());
    EXPECT_NE(std::string(s.message()).find(words), std::string::npos) << s;
    for (float x : out) ASSERT_EQ(x, 7.0f) << "output written despite " << s;
  };
  DecodeAttentionArgs a = args();
  a.num_q_heads = 3;
  expect_error(a, b.pool, "multiple of num_kv_heads");
  a = args();
  a.layer = 2;
  expect_error(a, b.pool, "layer 2");
  a = args();
  a.q_dtype = DType::kInt8;
  expect_error(a, b.pool, "fp32, fp16 or bf16");
  a = args();
  std::vector<uint32_t> bad = b.indices;
  bad[1] = b.pool.num_pages;
  a.page_indices = bad.data();
  expect_error(a, b.pool, "names page");
  a = args();
  std::vector<uint32_t> long_lens = {40, 5};  // 40 tokens need 3 pages, the table has 2
  a.seq_lens = long_lens.data();
  expect_error(a, b.pool, "need 3 pages");
  KvPagePool pool = b.pool;
  pool.head_dim = 96;
  expect_error(args(), pool, "unsupported head_dim 96");
  pool = b.pool;
  pool.dtype = DType::kInt8;
  pool.scales = nullptr;
  expect_error(args(), pool, "scales");
  a = args();
  a.softmax_scale = NAN;
  expect_error(a, b.pool, "softmax_scale");
  // An empty batch is fine and touches nothing.
  a = args();
  a.num_seqs = 0;
  EXPECT_TRUE(PagedDecodeAttentionCpu(b.pool, a).ok());
  for (float x : out) ASSERT_EQ(x, 7.0f);
}

}  // namespace
}  // namespace kvtier::kernels
