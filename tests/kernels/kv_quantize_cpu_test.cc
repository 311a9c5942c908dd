// Number formats and K/V quantization round trips, with the error bounds kv_quantize.h
// states.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kernels/kv_quantize.h"
#include "kernels/numeric.h"
#include "tests/kernels/kernel_test_util.h"

namespace kvtier::kernels {
namespace {

TEST(NumericTest, KnownEncodings) {
  EXPECT_EQ(FloatToHalf(1.0f), 0x3C00);
  EXPECT_EQ(FloatToHalf(-2.0f), 0xC000);
  EXPECT_EQ(FloatToHalf(65504.0f), 0x7BFF);
  EXPECT_EQ(FloatToHalf(1e6f), 0x7C00);                          // overflow: infinity
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -24)), 0x0001);         // smallest subnormal
  EXPECT_EQ(FloatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3C00);  // tie to even
  EXPECT_EQ(HalfToFloat(0x3555), 0.333251953125f);
  EXPECT_EQ(FloatToBf16(1.0f), 0x3F80);
  EXPECT_EQ(Bf16ToFloat(0xC040), -3.0f);
  EXPECT_EQ(FloatToE4m3(448.0f), 0x7E);
  EXPECT_EQ(FloatToE4m3(1e9f), 0x7E);  // saturates
  EXPECT_EQ(FloatToE4m3(-1.0f), 0xB8);
  EXPECT_EQ(FloatToE4m3(std::ldexp(1.0f, -9)), 0x01);  // smallest subnormal
  EXPECT_EQ(E4m3ToFloat(0x7E), 448.0f);
  EXPECT_TRUE(std::isnan(E4m3ToFloat(0x7F)));
  EXPECT_EQ(E4m3ToFloat(0x08), std::ldexp(1.0f, -6));
}

TEST(NumericTest, EveryFiniteCodeRoundTrips) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = HalfToFloat(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(FloatToHalf(f), h) << std::hex << h;
  }
  for (uint32_t v = 0; v < 256; ++v) {
    const float f = E4m3ToFloat(static_cast<uint8_t>(v));
    if (std::isnan(f)) continue;
    ASSERT_EQ(FloatToE4m3(f), v) << std::hex << v;
  }
}

TEST(KvQuantizeTest, RoundTripsWithinTheStatedBounds) {
  const KvPageShape shape{
      .num_pages = 3, .num_layers = 2, .tokens_per_page = 16, .num_kv_heads = 4, .head_dim = 64};
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> x(shape.Elements());
  for (float& v : x) v = normal(rng);
  for (size_t i = 0; i < 64; ++i) x[i] = 0;  // one head of one token is zero
  for (DType src : {DType::kFp32, DType::kBf16}) {
    const std::vector<uint8_t> in = testing::Encode(x, src);
    const std::vector<float> exact = testing::Decode(in, src, x.size());
    for (DType q : {DType::kInt8, DType::kFp8E4M3}) {
      std::vector<uint8_t> packed(shape.Elements());
      std::vector<float> scales(shape.Scales());
      ASSERT_TRUE(QuantizeKvCpu(in.data(), src, shape, q, packed.data(), scales.data(), 2).ok());
      std::vector<float> back(shape.Elements());
      ASSERT_TRUE(
          DequantizeKvCpu(packed.data(), q, scales.data(), shape, DType::kFp32, back.data(), 2)
              .ok());
      // Scales follow the layout [page][layer][K/V][head]; check each element's bound.
      for (uint64_t i = 0; i < x.size(); ++i) {
        const uint64_t head = (i / shape.head_dim) % shape.num_kv_heads;
        const uint64_t plk = i / (uint64_t{shape.head_dim} * shape.num_kv_heads *
                                  shape.tokens_per_page);  // (page, layer, kv)
        const float scale = scales[plk * shape.num_kv_heads + head];
        const double bound = q == DType::kInt8
                                 ? scale / 2 + 1e-6
                                 : std::fabs(exact[i]) / 16 + std::ldexp(scale, -10) + 1e-6;
        ASSERT_LE(std::fabs(back[i] - exact[i]), bound)
            << DTypeName(src) << "->" << DTypeName(q) << " element " << i;
      }
    }
  }
}

TEST(KvQuantizeTest, BadArgumentsAreClearErrors) {
  KvPageShape shape{
      .num_pages = 1, .num_layers = 1, .tokens_per_page = 2, .num_kv_heads = 1, .head_dim = 4};
  std::vector<uint8_t> buf(64);
  std::vector<float> scales(2);
  absl::Status s =
      QuantizeKvCpu(buf.data(), DType::kInt8, shape, DType::kInt8, buf.data(), scales.data());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(s.message()).find("fp32/fp16/bf16 to fp8/int8"), std::string::npos);
  s = DequantizeKvCpu(buf.data(), DType::kFp16, scales.data(), shape, DType::kFp32, buf.data());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  shape.head_dim = 0;
  s = QuantizeKvCpu(buf.data(), DType::kFp32, shape, DType::kInt8, buf.data(), scales.data());
  EXPECT_NE(std::string(s.message()).find("head_dim"), std::string::npos);
}

}  // namespace
}  // namespace kvtier::kernels
