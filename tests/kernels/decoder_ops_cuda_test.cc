// The dense decoder operations on the GPU (kernels/decoder_ops.h) against plain loops on
// the host: GEMM (odd m and n, accumulate, and the same bits for a row whatever the batch),
// RMSNorm, embedding, RoPE with the K/V page write (fp32, fp16 and bf16 pools), SiLU·mul.
// Every GPU test SKIPS, visibly, where there is no CUDA device; the validation tests run
// everywhere.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "kernels/cuda_memory.h"
#include "kernels/decoder_ops.h"
#include "kernels/element_io.h"
#include "kernels/numeric.h"

namespace kvtier::kernels {
namespace {

#define SKIP_WITHOUT_CUDA()                                                      \
  do {                                                                           \
    if (!CudaDeviceAvailable()) {                                                \
      GTEST_SKIP() << "no CUDA device here (" << CudaDeviceDescription() << ")"; \
    }                                                                            \
  } while (0)

template <typename T>
CudaBuffer ToDevice(const std::vector<T>& v) {
  absl::StatusOr<CudaBuffer> buffer =
      CudaBuffer::Allocate(std::max<uint64_t>(1, v.size()) * sizeof(T));
  EXPECT_TRUE(buffer.ok()) << buffer.status();
  if (!v.empty()) EXPECT_TRUE(CudaCopy(buffer->data(), v.data(), v.size() * sizeof(T)).ok());
  return std::move(*buffer);
}

template <typename T>
std::vector<T> ToHost(const CudaBuffer& buffer, uint64_t count) {
  EXPECT_TRUE(CudaSynchronize().ok());
  std::vector<T> out(count);
  EXPECT_TRUE(CudaCopy(out.data(), buffer.data(), count * sizeof(T)).ok());
  return out;
}

std::vector<uint16_t> RandomBf16(uint64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-scale, scale);
  std::vector<uint16_t> v(n);
  for (uint16_t& x : v) x = FloatToBf16(d(rng));
  return v;
}

std::vector<float> RandomFloats(uint64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

TEST(DecoderOpsCudaTest, GemmMatchesTheHost) {
  SKIP_WITHOUT_CUDA();
  for (auto [m, n, k] : {std::tuple{1u, 1u, 32u}, std::tuple{5u, 100u, 96u},
                         std::tuple{64u, 128u, 256u}, std::tuple{130u, 300u, 4096u}}) {
    const std::vector<uint16_t> x = RandomBf16(uint64_t{m} * k, m + n);
    const std::vector<uint16_t> w = RandomBf16(uint64_t{n} * k, k);
    const std::vector<float> y0 = RandomFloats(uint64_t{m} * n, 9);
    CudaBuffer dx = ToDevice(x), dw = ToDevice(w);
    for (bool accumulate : {false, true}) {
      CudaBuffer dy = ToDevice(y0);
      ASSERT_TRUE(GemmBf16Cuda(static_cast<const uint16_t*>(dx.data()),
                               static_cast<const uint16_t*>(dw.data()),
                               static_cast<float*>(dy.data()), m, n, k, accumulate)
                      .ok());
      const std::vector<float> y = ToHost<float>(dy, uint64_t{m} * n);
      double worst = 0;
      for (uint32_t r = 0; r < m; ++r) {
        for (uint32_t c = 0; c < n; ++c) {
          double want = accumulate ? y0[uint64_t{r} * n + c] : 0.0;
          for (uint32_t i = 0; i < k; ++i) {
            want +=
                double{Bf16ToFloat(x[uint64_t{r} * k + i])} * Bf16ToFloat(w[uint64_t{c} * k + i]);
          }
          worst = std::max(worst, std::fabs(want - y[uint64_t{r} * n + c]));
        }
      }
      EXPECT_LE(worst, 1e-5 * k) << m << "x" << n << "x" << k << " accumulate " << accumulate;
    }
  }
}

TEST(DecoderOpsCudaTest, GemmRowsDoNotDependOnTheBatch) {
  SKIP_WITHOUT_CUDA();
  const uint32_t m = 200, n = 257, k = 512;
  const std::vector<uint16_t> x = RandomBf16(uint64_t{m} * k, 1);
  const std::vector<uint16_t> w = RandomBf16(uint64_t{n} * k, 2);
  CudaBuffer dx = ToDevice(x), dw = ToDevice(w);
  CudaBuffer all = ToDevice(std::vector<float>(uint64_t{m} * n));
  ASSERT_TRUE(GemmBf16Cuda(static_cast<const uint16_t*>(dx.data()),
                           static_cast<const uint16_t*>(dw.data()), static_cast<float*>(all.data()),
                           m, n, k, false)
                  .ok());
  const std::vector<float> batched = ToHost<float>(all, uint64_t{m} * n);
  for (uint32_t r : {0u, 63u, 64u, 199u}) {
    CudaBuffer one = ToDevice(std::vector<float>(n));
    ASSERT_TRUE(GemmBf16Cuda(static_cast<const uint16_t*>(dx.data()) + uint64_t{r} * k,
                             static_cast<const uint16_t*>(dw.data()),
                             static_cast<float*>(one.data()), 1, n, k, false)
                    .ok());
    const std::vector<float> alone = ToHost<float>(one, n);
    EXPECT_EQ(std::memcmp(alone.data(), batched.data() + uint64_t{r} * n, n * sizeof(float)), 0)
        << "row " << r;
  }
}

TEST(DecoderOpsCudaTest, RmsNormEmbedAndSiluMulMatchTheHost) {
  SKIP_WITHOUT_CUDA();
  const uint32_t m = 7, n = 4096;
  const std::vector<float> x = RandomFloats(uint64_t{m} * n, 3, 4.0f);
  const std::vector<float> weight = RandomFloats(n, 4);
  CudaBuffer dx = ToDevice(x), dweight = ToDevice(weight);
  CudaBuffer out = ToDevice(std::vector<uint16_t>(uint64_t{m} * n));
  ASSERT_TRUE(RmsNormToBf16Cuda(static_cast<const float*>(dx.data()),
                                static_cast<const float*>(dweight.data()), 1e-5f, m, n,
                                static_cast<uint16_t*>(out.data()))
                  .ok());
  const std::vector<uint16_t> normed = ToHost<uint16_t>(out, uint64_t{m} * n);
  for (uint32_t r = 0; r < m; ++r) {
    double sum = 0;
    for (uint32_t i = 0; i < n; ++i) sum += double{x[uint64_t{r} * n + i]} * x[uint64_t{r} * n + i];
    const double scale = 1.0 / std::sqrt(sum / n + 1e-5);
    for (uint32_t i = 0; i < n; ++i) {
      const double want = x[uint64_t{r} * n + i] * scale * weight[i];
      ASSERT_NEAR(Bf16ToFloat(normed[uint64_t{r} * n + i]), want, 8e-3 * std::fabs(want) + 1e-6)
          << r << "," << i;
    }
  }

  const uint32_t vocab = 50, hidden = 96;
  const std::vector<uint16_t> table = RandomBf16(uint64_t{vocab} * hidden, 5);
  const std::vector<uint32_t> tokens = {3, 0, 49, 3, 1000 /* out of range: zeros */};
  CudaBuffer dtable = ToDevice(table), dtokens = ToDevice(tokens);
  CudaBuffer dembedded = ToDevice(std::vector<float>(tokens.size() * hidden, 7.0f));
  ASSERT_TRUE(EmbedCuda(static_cast<const uint16_t*>(dtable.data()), vocab, hidden,
                        static_cast<const uint32_t*>(dtokens.data()),
                        static_cast<uint32_t>(tokens.size()), static_cast<float*>(dembedded.data()))
                  .ok());
  const std::vector<float> embedded = ToHost<float>(dembedded, tokens.size() * hidden);
  for (size_t r = 0; r < tokens.size(); ++r) {
    for (uint32_t i = 0; i < hidden; ++i) {
      const float want =
          tokens[r] < vocab ? Bf16ToFloat(table[uint64_t{tokens[r]} * hidden + i]) : 0.0f;
      ASSERT_EQ(embedded[r * hidden + i], want) << r << "," << i;
    }
  }

  const uint32_t inter = 300;
  const std::vector<float> gate_up = RandomFloats(uint64_t{m} * 2 * inter, 6, 6.0f);
  CudaBuffer dgu = ToDevice(gate_up);
  CudaBuffer dact = ToDevice(std::vector<uint16_t>(uint64_t{m} * inter));
  ASSERT_TRUE(SiluMulToBf16Cuda(static_cast<const float*>(dgu.data()), m, inter,
                                static_cast<uint16_t*>(dact.data()))
                  .ok());
  const std::vector<uint16_t> act = ToHost<uint16_t>(dact, uint64_t{m} * inter);
  for (uint32_t r = 0; r < m; ++r) {
    for (uint32_t i = 0; i < inter; ++i) {
      const float g = gate_up[uint64_t{r} * 2 * inter + i];
      const float u = gate_up[uint64_t{r} * 2 * inter + inter + i];
      const double want = g / (1.0 + std::exp(-double{g})) * u;
      ASSERT_NEAR(Bf16ToFloat(act[uint64_t{r} * inter + i]), want, 8e-3 * std::fabs(want) + 1e-6);
    }
  }
}

// rotate_half RoPE on the host, as the reference decoder computes it.
void HostRope(float* head, uint32_t dim, uint32_t position, float theta) {
  const uint32_t half = dim / 2;
  for (uint32_t i = 0; i < half; ++i) {
    const auto inv = static_cast<float>(std::pow(double{theta}, -2.0 * i / double(dim)));
    const double angle = static_cast<double>(position) * inv;
    const auto c = static_cast<float>(std::cos(angle)), s = static_cast<float>(std::sin(angle));
    const float a = head[i], b = head[i + half];
    head[i] = a * c - b * s;
    head[i + half] = b * c + a * s;
  }
}

class RopeKvCudaTest : public ::testing::TestWithParam<DType> {};

TEST_P(RopeKvCudaTest, RotatesAndWritesKvIntoTheRightSlots) {
  SKIP_WITHOUT_CUDA();
  const DType dtype = GetParam();
  KvPagePool pool{.num_pages = 5,
                  .num_layers = 3,
                  .tokens_per_page = 16,
                  .num_kv_heads = 2,
                  .head_dim = 128,
                  .dtype = dtype};
  const uint32_t q_heads = 8, m = 6, layer = 1;
  const uint32_t qdim = q_heads * pool.head_dim, kvdim = pool.num_kv_heads * pool.head_dim;
  const std::vector<uint32_t> positions = {0, 1, 15, 16, 1000, 70000};
  const std::vector<uint32_t> pages = {4, 4, 4, 0, 2, 3};
  const std::vector<float> qkv = RandomFloats(uint64_t{m} * (qdim + 2 * kvdim), 11);
  std::vector<uint8_t> init(pool.num_pages * pool.PageBytes(), 0xAB);
  CudaBuffer dpages = ToDevice(init), dqkv = ToDevice(qkv), dpos = ToDevice(positions),
             dpage = ToDevice(pages);
  CudaBuffer dq = ToDevice(std::vector<float>(uint64_t{m} * qdim));
  pool.pages = dpages.data();
  const absl::Status s =
      RopeAndStoreKvCuda(pool, {.qkv = static_cast<const float*>(dqkv.data()),
                                .m = m,
                                .num_q_heads = q_heads,
                                .positions = static_cast<const uint32_t*>(dpos.data()),
                                .page_of_row = static_cast<const uint32_t*>(dpage.data()),
                                .layer = layer,
                                .rope_theta = 500000.0f,
                                .q_out = static_cast<float*>(dq.data())});
  ASSERT_TRUE(s.ok()) << s;
  const std::vector<float> q = ToHost<float>(dq, uint64_t{m} * qdim);
  const std::vector<uint8_t> got = ToHost<uint8_t>(dpages, init.size());
  // The expected pool: untouched bytes stay 0xAB.
  std::vector<uint8_t> want = init;
  for (uint32_t r = 0; r < m; ++r) {
    std::vector<float> row(qkv.begin() + uint64_t{r} * (qdim + 2 * kvdim),
                           qkv.begin() + uint64_t{r + 1} * (qdim + 2 * kvdim));
    for (uint32_t h = 0; h < q_heads + pool.num_kv_heads; ++h) {
      HostRope(row.data() + uint64_t{h} * pool.head_dim, pool.head_dim, positions[r], 500000.0f);
    }
    for (uint32_t i = 0; i < qdim; ++i) {
      ASSERT_NEAR(q[uint64_t{r} * qdim + i], row[i], 2e-6 * (1 + std::fabs(row[i])))
          << r << "," << i;
    }
    uint8_t* base = want.data() + pages[r] * pool.PageBytes() + layer * pool.LayerBytes();
    const uint64_t slot = positions[r] % pool.tokens_per_page;
    StoreRow(row.data() + qdim, kvdim, dtype, base + slot * pool.RowBytes());
    StoreRow(row.data() + qdim + kvdim, kvdim, dtype,
             base + (pool.tokens_per_page + slot) * pool.RowBytes());
  }
  // K differs from the host at most by the rotation's last bit before conversion; V and every
  // untouched byte are exact.
  const auto elements = static_cast<uint32_t>(init.size() / DTypeBytes(dtype));
  std::vector<float> got_f(elements), want_f(elements);
  LoadRow(got.data(), dtype, elements, 1.0f, got_f.data());
  LoadRow(want.data(), dtype, elements, 1.0f, want_f.data());
  for (size_t i = 0; i < got_f.size(); ++i) {
    ASSERT_NEAR(got_f[i], want_f[i], 1e-2 * (1 + std::fabs(want_f[i]))) << "element " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, RopeKvCudaTest,
                         ::testing::Values(DType::kFp32, DType::kFp16, DType::kBf16),
                         [](const ::testing::TestParamInfo<DType>& info) {
                           return std::string(DTypeName(info.param));
                         });

// Host-side validation: runs in every build (UNIMPLEMENTED without CUDA, INVALID_ARGUMENT
// with it); never OK.
TEST(DecoderOpsValidationTest, BadShapesAreRefused) {
  alignas(16) uint16_t x[64] = {}, w[64] = {};
  float y[4] = {};
  EXPECT_FALSE(GemmBf16Cuda(x, w, y, 1, 1, 33, false).ok());  // k not a multiple of 32
  EXPECT_FALSE(GemmBf16Cuda(nullptr, w, y, 1, 1, 32, false).ok());
  EXPECT_FALSE(GemmBf16Cuda(x + 1, w, y, 1, 1, 32, false).ok());  // misaligned
  KvPagePool pool{.pages = x,
                  .num_pages = 1,
                  .num_layers = 1,
                  .tokens_per_page = 16,
                  .num_kv_heads = 2,
                  .head_dim = 64,
                  .dtype = DType::kInt8};
  const uint32_t zeros[1] = {};
  EXPECT_FALSE(RopeAndStoreKvCuda(pool, {.qkv = y,
                                         .m = 1,
                                         .num_q_heads = 2,
                                         .positions = zeros,
                                         .page_of_row = zeros,
                                         .q_out = y})
                   .ok());  // int8 pool
  pool.dtype = DType::kBf16;
  EXPECT_FALSE(RopeAndStoreKvCuda(pool, {.qkv = y,
                                         .m = 1,
                                         .num_q_heads = 3,
                                         .positions = zeros,
                                         .page_of_row = zeros,
                                         .q_out = y})
                   .ok());  // 3 q heads over 2 KV heads
  EXPECT_FALSE(RopeAndStoreKvCuda(pool, {.qkv = y,
                                         .m = 1,
                                         .num_q_heads = 2,
                                         .positions = zeros,
                                         .page_of_row = zeros,
                                         .layer = 1,
                                         .q_out = y})
                   .ok());  // no layer 1
}

}  // namespace
}  // namespace kvtier::kernels
