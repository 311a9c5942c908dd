// The CUDA decoder against the reference decoder, and the worker's promise on the GPU path:
// K/V restored from the store through pinned staging and asynchronous host→device copies
// decode exactly like recomputed K/V. The GPU tests SKIP, visibly, where there is no CUDA
// device; what a worker does when asked for CUDA without one is tested everywhere.
#include "worker/cuda_decoder.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "kernels/numeric.h"
#include "tests/services/test_store_server.h"
#include "worker/decode_engine.h"
#include "worker/reference_decoder.h"

namespace kvtier::worker {
namespace {

#define SKIP_WITHOUT_CUDA()                                                               \
  do {                                                                                    \
    if (!kernels::CudaDeviceAvailable()) {                                                \
      GTEST_SKIP() << "no CUDA device here (" << kernels::CudaDeviceDescription() << ")"; \
    }                                                                                     \
  } while (0)

// Seeded tiny weights rounded to bf16, so both decoders use the same weight values; what
// remains between them is the bf16 rounding of the GPU's linear-layer inputs.
std::shared_ptr<const LlamaWeights> Weights() {
  static auto* w = [] {
    LlamaWeights weights = *LlamaWeights::FromSeed(TinyLlamaConfig(), 7);
    auto round = [](std::vector<float>& v) {
      for (float& x : v) x = kernels::Bf16ToFloat(kernels::FloatToBf16(x));
    };
    round(weights.embed);
    round(weights.lm_head);
    for (LlamaLayerWeights& l : weights.layers) {
      for (std::vector<float>* v : {&l.wq, &l.wk, &l.wv, &l.wo, &l.gate, &l.up, &l.down}) round(*v);
    }
    return new std::shared_ptr<const LlamaWeights>(std::make_shared<LlamaWeights>(weights));
  }();
  return *w;
}

std::vector<uint32_t> Prompt(uint32_t n, uint32_t salt) {
  std::vector<uint32_t> p(n);
  for (uint32_t i = 0; i < n; ++i) p[i] = (i * 37 + salt * 11 + 5) % TinyLlamaConfig().vocab_size;
  return p;
}

std::vector<uint32_t> Pages(uint32_t first, uint32_t count) {
  std::vector<uint32_t> pages(count);
  for (uint32_t i = 0; i < count; ++i) pages[i] = first + i;
  return pages;
}

TEST(CudaDecoderTest, MatchesTheReferenceDecoder) {
  SKIP_WITHOUT_CUDA();
  const LlamaConfig& c = Weights()->config;
  auto cpu_pool = *PagePool::Create(c.Layout(), 16, kernels::Backend::kCpu);
  auto gpu_pool = *PagePool::Create(c.Layout(), 16, kernels::Backend::kCuda);
  ReferenceDecoder cpu(Weights(), {});
  absl::StatusOr<std::unique_ptr<CudaDecoder>> gpu = CudaDecoder::Create(Weights());
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  const std::vector<uint32_t> prompt = Prompt(90, 1);
  const std::vector<uint32_t> pages = Pages(0, 8);
  absl::StatusOr<std::vector<float>> want = cpu.Prefill(prompt, 0, pages, *cpu_pool);
  absl::StatusOr<std::vector<float>> got = (*gpu)->Prefill(prompt, 0, pages, *gpu_pool);
  ASSERT_TRUE(want.ok() && got.ok()) << want.status() << " " << got.status();
  float scale = 0, worst = 0;
  for (size_t i = 0; i < want->size(); ++i) {
    scale = std::max(scale, std::fabs((*want)[i]));
    worst = std::max(worst, std::fabs((*want)[i] - (*got)[i]));
  }
  EXPECT_LE(worst, 0.03f * scale) << "max |Δlogit| " << worst << " of max |logit| " << scale;
  // The GPU's choice is the CPU's, or one the CPU scores within the tolerance of its best.
  const uint32_t choice = Decoder::Greedy(*got);
  EXPECT_GE((*want)[choice], (*want)[Decoder::Greedy(*want)] - 0.03f * scale);

  // Decode steps continue to agree.
  uint32_t token = Decoder::Greedy(*want);
  for (uint32_t pos = 90; pos < 100; ++pos) {
    const Decoder::Step step{token, pos, pages};
    auto c_logits = cpu.Run({&step, 1}, *cpu_pool);
    auto g_logits = (*gpu)->Run({&step, 1}, *gpu_pool);
    ASSERT_TRUE(c_logits.ok() && g_logits.ok());
    for (size_t i = 0; i < (*c_logits)[0].size(); ++i) {
      ASSERT_NEAR((*c_logits)[0][i], (*g_logits)[0][i], 0.05f * scale) << "position " << pos;
    }
    token = Decoder::Greedy((*c_logits)[0]);
  }
}

TEST(CudaDecoderTest, BatchingDoesNotChangeABit) {
  SKIP_WITHOUT_CUDA();
  const LlamaConfig& c = Weights()->config;
  auto pool = *PagePool::Create(c.Layout(), 32, kernels::Backend::kCuda);
  auto decoder = *CudaDecoder::Create(Weights());
  const std::vector<uint32_t> prompt = Prompt(70, 2);
  // All at once into pages 0..4; one token at a time into pages 8..12.
  const std::vector<uint32_t> a = Pages(0, 5), b = Pages(8, 5);
  absl::StatusOr<std::vector<float>> whole = decoder->Prefill(prompt, 0, a, *pool);
  ASSERT_TRUE(whole.ok()) << whole.status();
  std::vector<float> last;
  for (uint32_t i = 0; i < prompt.size(); ++i) {
    const Decoder::Step step{prompt[i], i, b};
    auto logits = decoder->Run({&step, 1}, *pool);
    ASSERT_TRUE(logits.ok()) << logits.status();
    last = (*logits)[0];
  }
  EXPECT_EQ(*whole, last);
  std::vector<uint8_t> page_a(pool->page_bytes()), page_b(pool->page_bytes());
  for (uint32_t p = 0; p < 5; ++p) {
    ASSERT_TRUE(kernels::CudaCopy(page_a.data(), pool->PageData(a[p]), page_a.size()).ok());
    ASSERT_TRUE(kernels::CudaCopy(page_b.data(), pool->PageData(b[p]), page_b.size()).ok());
    if (p < 4) {  // full blocks: every byte
      EXPECT_EQ(page_a, page_b) << "block " << p;
    }
  }
}

TEST(CudaDecoderTest, BadInputIsRefused) {
  SKIP_WITHOUT_CUDA();
  const LlamaConfig& c = Weights()->config;
  auto decoder = *CudaDecoder::Create(Weights());
  auto host_pool = *PagePool::Create(c.Layout(), 4, kernels::Backend::kCpu);
  auto pool = *PagePool::Create(c.Layout(), 4, kernels::Backend::kCuda);
  const std::vector<uint32_t> pages = Pages(0, 2);
  EXPECT_EQ(decoder->Prefill(Prompt(5, 1), 0, pages, *host_pool).status().code(),
            absl::StatusCode::kFailedPrecondition);
  const std::vector<uint32_t> bad_token = {1, c.vocab_size};
  EXPECT_EQ(decoder->Prefill(bad_token, 0, pages, *pool).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(decoder->Prefill(Prompt(40, 1), 0, pages, *pool).status().code(),
            absl::StatusCode::kInvalidArgument);  // 40 tokens, 2 pages of 16
  const std::vector<uint32_t> outside = {0, 9};
  EXPECT_EQ(decoder->Prefill(Prompt(20, 1), 0, outside, *pool).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// The promise on the GPU path: a worker restarted with an empty device pool restores the
// prefix from the store (pinned staging, asynchronous copies, layer by layer) and generates
// exactly what the cold worker generated.
TEST(CudaDecoderTest, RestoredDevicePagesDecodeExactlyLikeRecomputedOnes) {
  SKIP_WITHOUT_CUDA();
  testing::TestStoreServer store({.min_slot_bytes = TinyLlamaConfig().Layout().BlockBytes()});
  auto client = [&] {
    ClientOptions o;
    o.target = store.target();
    o.tenant = "t";
    return std::make_shared<CacheStoreClient>(o);
  };
  const DecodeEngineOptions options{
      .pages = 64, .tenant = "t", .kernels = {.backend = kernels::Backend::kCuda}};
  auto generate = [](DecodeEngine& engine, const std::vector<uint32_t>& prompt,
                     DecodeEngine::Opened* opened) {
    absl::StatusOr<DecodeEngine::Opened> o = engine.Open(prompt);
    EXPECT_TRUE(o.ok()) << o.status();
    *opened = *o;
    std::vector<uint32_t> tokens = {o->next_token};
    for (int i = 0; i < 6; ++i) {
      const uint64_t id = o->id;
      tokens.push_back((*engine.Step({&id, 1}))[0]);
    }
    EXPECT_TRUE(engine.Close(o->id).ok());
    return tokens;
  };
  const std::vector<uint32_t> prompt = Prompt(150, 3);
  DecodeEngine::Opened cold_open, warm_open;
  std::vector<uint32_t> cold;
  {
    auto engine = DecodeEngine::Create(Weights(), client(), options);
    ASSERT_TRUE(engine.ok()) << engine.status();
    cold = generate(**engine, prompt, &cold_open);
    (*engine)->FlushOffloads();
    EXPECT_GT((*engine)->stats().offload.blocks, 0u);
  }
  auto engine = DecodeEngine::Create(Weights(), client(), options);
  ASSERT_TRUE(engine.ok()) << engine.status();
  const std::vector<uint32_t> warm = generate(**engine, prompt, &warm_open);
  EXPECT_EQ(warm_open.store_tokens, 144u);  // (150 - 1) / 16 = 9 blocks
  EXPECT_EQ(warm, cold);
  EXPECT_EQ(warm_open.logits, cold_open.logits);
  EXPECT_EQ((*engine)->stats().restore_failures, 0u);
}

// Without a device, asking for the CUDA path is a clear error, not a crash or a silent CPU
// fallback.
TEST(CudaDecoderTest, WithoutADeviceTheCudaPathSaysWhy) {
  if (kernels::CudaDeviceAvailable()) GTEST_SKIP() << "a CUDA device is present";
  absl::StatusOr<std::unique_ptr<CudaDecoder>> decoder = CudaDecoder::Create(Weights());
  EXPECT_FALSE(decoder.ok());
  absl::StatusOr<std::unique_ptr<DecodeEngine>> engine =
      DecodeEngine::Create(Weights(), nullptr, {.kernels = {.backend = kernels::Backend::kCuda}});
  ASSERT_FALSE(engine.ok());
  EXPECT_FALSE(engine.status().message().empty());
}

}  // namespace
}  // namespace kvtier::worker
