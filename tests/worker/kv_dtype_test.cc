// The worker with compressed K/V (--kv_dtype): pages hold fp8_e4m3 or int8 with their
// per-head scales inside (the store's block format), offload and restore move those
// blocks as they are, and restoring a prefix decodes exactly like recomputing it, for every
// kv_dtype.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "client/cache_store_client.h"
#include "kernels/numeric.h"
#include "tests/services/test_store_server.h"
#include "worker/decode_engine.h"
#include "worker/kv_calibration.h"
#include "worker/llama_weights.h"
#include "worker/reference_decoder.h"

namespace kvtier::worker {
namespace {

std::shared_ptr<const LlamaWeights> Weights(DType kv_dtype) {
  LlamaConfig config = TinyLlamaConfig();
  config.kv_dtype = kv_dtype;
  return std::make_shared<const LlamaWeights>(*LlamaWeights::FromSeed(config, 3));
}

std::vector<uint32_t> Prompt(uint32_t n, uint32_t salt) {
  std::vector<uint32_t> p(n);
  for (uint32_t i = 0; i < n; ++i) p[i] = (i * 31 + salt * 7 + 1) % 512;
  return p;
}

testing::TestStoreServer& Store() {
  static auto* store = new testing::TestStoreServer({.t1_bytes = uint64_t{64} << 20});
  return *store;
}

std::shared_ptr<CacheStoreClient> Client(const std::string& tenant) {
  ClientOptions o;
  o.target = Store().target();
  o.tenant = tenant;
  o.timeout = absl::Seconds(5);
  return std::make_shared<CacheStoreClient>(o);
}

struct Generation {
  DecodeEngine::Opened opened;
  std::vector<uint32_t> tokens;
};

Generation Generate(DecodeEngine& engine, const std::vector<uint32_t>& prompt, int n) {
  Generation g;
  absl::StatusOr<DecodeEngine::Opened> opened = engine.Open(prompt);
  EXPECT_TRUE(opened.ok()) << opened.status();
  if (!opened.ok()) return g;
  g.opened = *opened;
  g.tokens.push_back(opened->next_token);
  for (int i = 1; i < n; ++i) {
    const uint64_t id = opened->id;
    absl::StatusOr<std::vector<uint32_t>> next = engine.Step({&id, 1});
    EXPECT_TRUE(next.ok()) << next.status();
    if (next.ok()) g.tokens.push_back((*next)[0]);
  }
  EXPECT_TRUE(engine.Close(opened->id).ok());
  return g;
}

class KvDtypeTest : public ::testing::TestWithParam<DType> {
 protected:
  std::unique_ptr<DecodeEngine> Engine(std::shared_ptr<CacheStoreClient> store) {
    absl::StatusOr<std::unique_ptr<DecodeEngine>> e = DecodeEngine::Create(
        Weights(GetParam()), std::move(store),
        {.pages = 64, .tenant = std::string("kv-") + DTypeName(GetParam())});
    EXPECT_TRUE(e.ok()) << e.status();
    return *std::move(e);
  }
};

TEST_P(KvDtypeTest, RestoringAPrefixDecodesExactlyLikeRecomputingIt) {
  const std::string tenant = std::string("kv-") + DTypeName(GetParam());
  const std::vector<uint32_t> p = Prompt(100, 2);
  Generation cold;
  uint64_t block_bytes = 0;
  {
    auto engine = Engine(Client(tenant));
    block_bytes = engine->layout().BlockBytes();
    EXPECT_EQ(engine->layout().dtype, GetParam());
    cold = Generate(*engine, p, 10);
    engine->FlushOffloads();
    EXPECT_EQ(engine->stats().offload.blocks, 6u);
  }
  auto engine = Engine(Client(tenant));  // empty pool
  const Generation warm = Generate(*engine, p, 10);
  EXPECT_EQ(warm.opened.store_tokens, 96u);
  EXPECT_EQ(warm.opened.computed_tokens, 4u);
  EXPECT_EQ(warm.tokens, cold.tokens);
  EXPECT_EQ(warm.opened.logits, cold.opened.logits);  // bit for bit
  // The blocks moved compressed: half of bf16's elements (a quarter of fp32's), plus scales.
  EXPECT_EQ(engine->stats().restored_bytes, 6 * block_bytes);
  const KvLayout bf16 = Weights(DType::kBf16)->config.Layout();
  if (IsQuantized(GetParam())) {
    EXPECT_EQ(block_bytes, bf16.BlockBytes() / 2 + bf16.num_layers * 2 * bf16.num_kv_heads * 4);
  }
  // And a worker that never saw the store computes the same tokens.
  auto recompute = DecodeEngine::Create(Weights(GetParam()), nullptr, {.pages = 64});
  ASSERT_TRUE(recompute.ok());
  const Generation want = Generate(**recompute, p, 10);
  EXPECT_EQ(want.tokens, cold.tokens);
  EXPECT_EQ(want.opened.logits, cold.opened.logits);
}

TEST_P(KvDtypeTest, ReusedPagesDecodeIdentically) {
  auto engine = Engine(nullptr);
  const std::vector<uint32_t> p = Prompt(70, 1);
  const Generation cold = Generate(*engine, p, 8);
  const Generation warm = Generate(*engine, p, 8);
  EXPECT_EQ(warm.opened.local_tokens, 64u);
  EXPECT_EQ(warm.tokens, cold.tokens);
  EXPECT_EQ(warm.opened.logits, cold.opened.logits);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, KvDtypeTest,
                         ::testing::Values(DType::kBf16, DType::kFp16, DType::kFp8E4M3,
                                           DType::kInt8),
                         [](const auto& info) { return std::string(DTypeName(info.param)); });

TEST(KvCalibrationTest, ScalesAreDeterministicPositiveAndCoverTheCalibrationValues) {
  const auto weights = Weights(DType::kInt8);
  ReferenceDecoder decoder(weights, {});
  const KvLayout layout = weights->config.Layout();
  absl::StatusOr<std::vector<float>> a = CalibrateKvScales(decoder, layout, kernels::Backend::kCpu);
  absl::StatusOr<std::vector<float>> b = CalibrateKvScales(decoder, layout, kernels::Backend::kCpu);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*a, *b);
  ASSERT_EQ(a->size(), 2u * layout.num_layers * layout.num_kv_heads);
  for (float s : *a) EXPECT_GT(s, 0.0f);
  KvLayout bf16 = layout;
  bf16.dtype = DType::kBf16;
  EXPECT_EQ(CalibrateKvScales(decoder, bf16, kernels::Backend::kCpu).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(KvCalibrationTest, QuantizedLogitsStayCloseToBf16) {
  const std::vector<uint32_t> p = Prompt(64, 9);
  std::vector<float> reference;
  for (DType d : {DType::kBf16, DType::kFp8E4M3, DType::kInt8}) {
    auto engine = DecodeEngine::Create(Weights(d), nullptr, {.pages = 16});
    ASSERT_TRUE(engine.ok()) << engine.status();
    const Generation g = Generate(**engine, p, 1);
    if (d == DType::kBf16) {
      reference = g.opened.logits;
      continue;
    }
    ASSERT_EQ(g.opened.logits.size(), reference.size());
    float worst = 0, range = 0;
    for (size_t i = 0; i < reference.size(); ++i) {
      worst = std::max(worst, std::fabs(g.opened.logits[i] - reference[i]));
      range = std::max(range, std::fabs(reference[i]));
    }
    EXPECT_LT(worst, 0.05f * range) << DTypeName(d);
    EXPECT_GT(worst, 0.0f) << DTypeName(d) << ": the K/V were not quantized";
  }
}

TEST(KvDtypeBadInputTest, APoolOfQuantizedKvNeedsItsScales) {
  const KvLayout layout = Weights(DType::kFp8E4M3)->config.Layout();
  absl::StatusOr<std::unique_ptr<PagePool>> pool = PagePool::Create(layout, 4, kernels::Backend::kCpu);
  EXPECT_EQ(pool.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(pool.status().message().find("scales"), std::string_view::npos) << pool.status();
}

}  // namespace
}  // namespace kvtier::worker
