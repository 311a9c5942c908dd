// The CUDA kernels against their CPU implementations on the same inputs: paged decode
// attention (every dtype pair, GQA groups that do and do not fill a CTA tile, head dims
// 64/128/256, lengths around page boundaries, empty sequences, split-KV merging), K/V
// quantization (bit-identical), page gather/scatter (device and mapped pinned buffers), and
// bad input. Every test SKIPS, visibly, where there is no CUDA device or no CUDA build.
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <cstring>
#include <random>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "kernels/cuda_memory.h"
#include "kernels/cuda_workspace.h"
#include "kernels/dispatch.h"
#include "tests/kernels/kernel_test_util.h"

namespace kvtier::kernels {
namespace {

using testing::Batch;
using testing::Decode;
using testing::MakeBatch;
using testing::Reference;

constexpr uint32_t kPage = 16;

#define SKIP_WITHOUT_CUDA()                                                      \
  do {                                                                           \
    if (!CudaDeviceAvailable()) {                                                \
      GTEST_SKIP() << "no CUDA device here (" << CudaDeviceDescription() << ")"; \
    }                                                                            \
  } while (0)

CudaBuffer ToDevice(const void* data, uint64_t bytes) {
  absl::StatusOr<CudaBuffer> buffer = CudaBuffer::Allocate(bytes);
  EXPECT_TRUE(buffer.ok()) << buffer.status();
  if (bytes > 0) {
    EXPECT_TRUE(CudaCopy(buffer->data(), data, bytes).ok());
  }
  return std::move(*buffer);
}

std::vector<uint8_t> ToHost(const CudaBuffer& buffer) {
  std::vector<uint8_t> out(buffer.size());
  if (!out.empty()) {
    EXPECT_TRUE(CudaCopy(out.data(), buffer.data(), out.size()).ok());
  }
  return out;
}

// |gpu - cpu| allowed: both accumulate in fp32 in different orders, then round to the
// output dtype, so they may land one output ulp apart.
double Tolerance(DType out) {
  switch (out) {
    case DType::kFp32:
      return 1e-5;
    case DType::kFp16:
      return 2e-3;
    default:
      return 1.6e-2;
  }
}

struct AttentionRun {
  std::vector<float> out;
  std::vector<float> lse;
};

// Runs the batch on the CPU and on the GPU with the same arguments.
std::pair<AttentionRun, AttentionRun> RunBoth(const Batch& b, DType out_dtype, uint32_t layer,
                                              uint32_t gpu_split, const CudaOptions& base = {}) {
  const uint32_t dim = b.pool.head_dim;
  const uint32_t seqs = static_cast<uint32_t>(b.lens.size());
  const uint64_t out_elems = uint64_t{seqs} * b.num_q_heads * dim;
  const uint64_t out_bytes = out_elems * DTypeBytes(out_dtype);
  DecodeAttentionArgs args{.q_dtype = b.q_dtype,
                           .out_dtype = out_dtype,
                           .num_seqs = seqs,
                           .num_q_heads = b.num_q_heads,
                           .layer = layer,
                           .softmax_scale = 1.0f / std::sqrt(static_cast<float>(dim)),
                           .page_indptr = b.indptr.data(),
                           .page_indices = b.indices.data(),
                           .seq_lens = b.lens.data()};
  AttentionRun cpu, gpu;
  std::vector<uint8_t> out(out_bytes, 0xEE);
  cpu.lse.assign(uint64_t{seqs} * b.num_q_heads, 1234.0f);
  DecodeAttentionArgs cpu_args = args;
  cpu_args.q = b.q.data();
  cpu_args.out = out.data();
  cpu_args.lse = cpu.lse.data();
  EXPECT_TRUE(PagedDecodeAttentionCpu(b.pool, cpu_args, {.threads = 2}).ok());
  cpu.out = Decode(out, out_dtype, out_elems);

  CudaBuffer pages = ToDevice(b.pages.data(), b.pages.size());
  CudaBuffer scales = ToDevice(b.scales.data(), b.scales.size() * sizeof(float));
  CudaBuffer q = ToDevice(b.q.data(), b.q.size());
  std::vector<uint8_t> poison(out_bytes, 0xEE);
  CudaBuffer d_out = ToDevice(poison.data(), out_bytes);
  std::vector<float> lse_init(uint64_t{seqs} * b.num_q_heads, 1234.0f);
  CudaBuffer d_lse = ToDevice(lse_init.data(), lse_init.size() * sizeof(float));
  KvPagePool pool = b.pool;
  pool.pages = pages.data();
  pool.scales = b.scales.empty() ? nullptr : static_cast<const float*>(scales.data());
  DecodeAttentionArgs gpu_args = args;
  gpu_args.q = q.data();
  gpu_args.out = d_out.data();
  gpu_args.lse = static_cast<float*>(d_lse.data());
  CudaOptions options = base;
  options.split_tokens = gpu_split;
  const absl::Status queued = PagedDecodeAttentionCuda(pool, gpu_args, options);
  EXPECT_TRUE(queued.ok()) << queued;
  const absl::Status done = CudaSynchronize(options.stream);
  EXPECT_TRUE(done.ok()) << done;
  gpu.out = Decode(ToHost(d_out), out_dtype, out_elems);
  const std::vector<uint8_t> lse_bytes = ToHost(d_lse);
  gpu.lse.resize(lse_init.size());
  std::memcpy(gpu.lse.data(), lse_bytes.data(), lse_bytes.size());
  return {cpu, gpu};
}

void ExpectSame(const Batch& b, const AttentionRun& cpu, const AttentionRun& gpu, DType out) {
  ASSERT_EQ(cpu.out.size(), gpu.out.size());
  double worst = 0;
  for (size_t i = 0; i < cpu.out.size(); ++i) {
    ASSERT_TRUE(std::isfinite(gpu.out[i])) << "element " << i;
    worst = std::max(worst, static_cast<double>(std::fabs(cpu.out[i] - gpu.out[i])));
  }
  EXPECT_LE(worst, Tolerance(out));
  for (size_t i = 0; i < cpu.lse.size(); ++i) {
    const uint32_t seq = static_cast<uint32_t>(i / b.num_q_heads);
    if (b.lens[seq] == 0) {
      EXPECT_TRUE(std::isinf(gpu.lse[i]) && gpu.lse[i] < 0) << "empty sequence " << seq;
    } else {
      EXPECT_NEAR(gpu.lse[i], cpu.lse[i], 1e-4 * std::max(1.0f, std::fabs(cpu.lse[i])))
          << "lse " << i;
    }
  }
}

// (kv dtype, out dtype, group size, head_dim)
using Shape = std::tuple<DType, DType, uint32_t, uint32_t>;
class PagedAttentionCudaTest : public ::testing::TestWithParam<Shape> {};

std::string ShapeName(const ::testing::TestParamInfo<Shape>& info) {
  const auto [kv, out, group, dim] = info.param;
  std::string name =
      absl::StrCat("kv_", DTypeName(kv), "_out_", DTypeName(out), "_group", group, "_dim", dim);
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

TEST_P(PagedAttentionCudaTest, MatchesCpu) {
  SKIP_WITHOUT_CUDA();
  const auto [kv, out, group, dim] = GetParam();
  const uint32_t kv_heads = 2;
  const Batch b = MakeBatch({1, kPage - 1, kPage, kPage + 1, 3 * kPage + 5, 0, 700},
                            kv_heads * group, kv_heads, dim, kPage, kv,
                            kv == DType::kFp32 ? DType::kFp32 : DType::kBf16, 2, 11 + dim + group);
  // One chunk per sequence (direct write), then chunks of 64 tokens (split-KV merge).
  for (uint32_t split : {100000u, 64u}) {
    auto [cpu, gpu] = RunBoth(b, out, /*layer=*/1, split);
    ExpectSame(b, cpu, gpu, out);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, PagedAttentionCudaTest,
    ::testing::Combine(::testing::Values(DType::kFp32, DType::kFp16, DType::kBf16, DType::kFp8E4M3,
                                         DType::kInt8),
                       ::testing::Values(DType::kFp32, DType::kBf16),
                       // 6 and 12 leave part of a CTA tile empty; 16 needs two tiles.
                       ::testing::Values(1u, 4u, 6u, 8u, 12u, 16u),
                       ::testing::Values(64u, 128u, 256u)),
    ShapeName);

TEST(PagedAttentionCudaLongTest, EightThousandTokensWithTheDefaultSplit) {
  SKIP_WITHOUT_CUDA();
  const Batch b = MakeBatch({8192, 7, 4099}, 32, 8, 128, kPage, DType::kBf16, DType::kBf16, 1, 3);
  auto [cpu, gpu] = RunBoth(b, DType::kFp32, 0, 0);
  ExpectSame(b, cpu, gpu, DType::kFp32);
  // And against the textbook attention directly, for one head of the long sequence.
  auto [want, want_lse] = Reference(b, 0, 5, 0, 1.0 / std::sqrt(128.0));
  for (uint32_t d = 0; d < 128; ++d) EXPECT_NEAR(gpu.out[5 * 128 + d], want[d], 2e-5);
  EXPECT_NEAR(gpu.lse[5], want_lse, 1e-4 * std::fabs(want_lse));
}

TEST(PagedAttentionCudaLongTest, OneWorkspaceServesTwoStreams) {
  SKIP_WITHOUT_CUDA();
  absl::StatusOr<CudaStream> a = CudaStream::Create();
  absl::StatusOr<CudaStream> c = CudaStream::Create();
  ASSERT_TRUE(a.ok() && c.ok());
  CudaWorkspace workspace;
  const Batch small = MakeBatch({40, 3}, 8, 2, 64, kPage, DType::kFp16, DType::kFp16, 1, 4);
  const Batch large = MakeBatch({3000, 900}, 8, 2, 64, kPage, DType::kFp16, DType::kFp16, 1, 5);
  for (int round = 0; round < 3; ++round) {
    auto [c1, g1] = RunBoth(small, DType::kFp32, 0, 0,
                            CudaOptions{.stream = a->get(), .workspace = &workspace});
    ExpectSame(small, c1, g1, DType::kFp32);
    auto [c2, g2] = RunBoth(large, DType::kFp32, 0, 128,
                            CudaOptions{.stream = c->get(), .workspace = &workspace});
    ExpectSame(large, c2, g2, DType::kFp32);
  }
}

TEST(PagedAttentionCudaErrorsTest, BadInputIsAnErrorAndWritesNothing) {
  SKIP_WITHOUT_CUDA();
  Batch b = MakeBatch({20, 5}, 4, 2, 64, kPage, DType::kFp16, DType::kFp32, 2, 1);
  CudaBuffer pages = ToDevice(b.pages.data(), b.pages.size());
  CudaBuffer q = ToDevice(b.q.data(), b.q.size());
  std::vector<float> sentinel(2 * 4 * 64, 7.0f);
  CudaBuffer out = ToDevice(sentinel.data(), sentinel.size() * sizeof(float));
  KvPagePool pool = b.pool;
  pool.pages = pages.data();
  auto args = [&] {
    return DecodeAttentionArgs{.q = q.data(),
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
  b.indices[1] = pool.num_pages;  // out of range
  absl::Status s = PagedDecodeAttentionCuda(pool, args());
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange) << s;
  b.indices[1] = 0;
  KvPagePool odd = pool;
  odd.head_dim = 96;
  s = PagedDecodeAttentionCuda(odd, args());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("head_dim 96"), std::string::npos) << s;
  KvPagePool misaligned = pool;
  misaligned.pages = static_cast<const uint8_t*>(pages.data()) + 4;
  s = PagedDecodeAttentionCuda(misaligned, args());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  DecodeAttentionArgs bad_heads = args();
  bad_heads.num_q_heads = 3;
  EXPECT_EQ(PagedDecodeAttentionCuda(pool, bad_heads).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(CudaSynchronize().ok());
  const std::vector<uint8_t> after = ToHost(out);
  EXPECT_EQ(std::memcmp(after.data(), sentinel.data(), after.size()), 0);
}

TEST(KvQuantizeCudaTest, BitIdenticalToCpu) {
  SKIP_WITHOUT_CUDA();
  const KvPageShape shape{
      .num_pages = 5, .num_layers = 3, .tokens_per_page = 16, .num_kv_heads = 4, .head_dim = 128};
  std::mt19937 rng(8);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> raw(shape.Elements());
  for (float& x : raw) x = normal(rng);
  for (size_t i = 0; i < 4096; ++i) raw[i] = 0.0f;  // an all-zero head: scale 1
  for (DType src : {DType::kFp32, DType::kFp16, DType::kBf16}) {
    const std::vector<uint8_t> in = testing::Encode(raw, src);
    CudaBuffer d_in = ToDevice(in.data(), in.size());
    for (DType q : {DType::kFp8E4M3, DType::kInt8}) {
      std::vector<uint8_t> cpu_q(shape.Elements());
      std::vector<float> cpu_scales(shape.Scales());
      ASSERT_TRUE(QuantizeKvCpu(in.data(), src, shape, q, cpu_q.data(), cpu_scales.data(), 2).ok());
      absl::StatusOr<CudaBuffer> d_q = CudaBuffer::Allocate(shape.Elements());
      absl::StatusOr<CudaBuffer> d_scales = CudaBuffer::Allocate(shape.Scales() * sizeof(float));
      ASSERT_TRUE(d_q.ok() && d_scales.ok());
      ASSERT_TRUE(QuantizeKvCuda(d_in.data(), src, shape, q, d_q->data(),
                                 static_cast<float*>(d_scales->data()))
                      .ok());
      ASSERT_TRUE(CudaSynchronize().ok());
      EXPECT_EQ(ToHost(*d_q), cpu_q) << DTypeName(src) << " → " << DTypeName(q);
      const std::vector<uint8_t> scale_bytes = ToHost(*d_scales);
      EXPECT_EQ(std::memcmp(scale_bytes.data(), cpu_scales.data(), scale_bytes.size()), 0);
      for (DType back : {DType::kFp32, DType::kFp16, DType::kBf16}) {
        std::vector<uint8_t> cpu_back(shape.Elements() * DTypeBytes(back));
        ASSERT_TRUE(
            DequantizeKvCpu(cpu_q.data(), q, cpu_scales.data(), shape, back, cpu_back.data(), 2)
                .ok());
        absl::StatusOr<CudaBuffer> d_back = CudaBuffer::Allocate(cpu_back.size());
        ASSERT_TRUE(d_back.ok());
        ASSERT_TRUE(DequantizeKvCuda(d_q->data(), q, static_cast<const float*>(d_scales->data()),
                                     shape, back, d_back->data())
                        .ok());
        ASSERT_TRUE(CudaSynchronize().ok());
        EXPECT_EQ(ToHost(*d_back), cpu_back) << DTypeName(q) << " → " << DTypeName(back);
      }
    }
  }
  EXPECT_EQ(QuantizeKvCuda(nullptr, DType::kFp8E4M3, shape, DType::kInt8, nullptr, nullptr).code(),
            absl::StatusCode::kInvalidArgument);
}

// Fragments of every alignment, one longer than a copy piece, one empty.
std::vector<CopyFragment> MixedFragments(uint64_t page_bytes) {
  return {{3, 0, page_bytes},     {0, 16, 4096}, {7, 1, 333},          {2, 200000, 70000},
          {5, page_bytes - 5, 5}, {1, 64, 0},    {6, 4096, 65536 + 48}};
}

TEST(PageCopyCudaTest, GatherAndScatterMatchCpu) {
  SKIP_WITHOUT_CUDA();
  const uint64_t page_bytes = 300000;
  const uint32_t num_pages = 8;
  std::vector<uint8_t> host_pages(page_bytes * num_pages);
  std::mt19937 rng(2);
  for (uint8_t& x : host_pages) x = static_cast<uint8_t>(rng());
  const std::vector<CopyFragment> fragments = MixedFragments(page_bytes);
  uint64_t total = 0;
  for (const CopyFragment& f : fragments) total += f.length;

  // Gather: device pages → a device buffer and → a mapped pinned buffer.
  std::vector<uint8_t> want(total);
  const PagePoolBytes host_pool{host_pages.data(), page_bytes, num_pages};
  ASSERT_TRUE(GatherPagesCpu(host_pool, fragments, want.data(), total, 2).ok());
  CudaBuffer d_pages = ToDevice(host_pages.data(), host_pages.size());
  const PagePoolBytes pool{d_pages.data(), page_bytes, num_pages};
  absl::StatusOr<CudaBuffer> d_dst = CudaBuffer::Allocate(total);
  absl::StatusOr<CudaBuffer> pinned = CudaBuffer::Allocate(total, CudaBuffer::Kind::kPinnedHost);
  ASSERT_TRUE(d_dst.ok() && pinned.ok());
  ASSERT_TRUE(GatherPagesCuda(pool, fragments, d_dst->data(), total).ok());
  ASSERT_TRUE(GatherPagesCuda(pool, fragments, pinned->data(), total).ok());
  ASSERT_TRUE(CudaSynchronize().ok());
  EXPECT_EQ(ToHost(*d_dst), want);
  EXPECT_EQ(std::memcmp(pinned->data(), want.data(), total), 0);

  // Scatter from pinned staging into zeroed device pages: the restore path.
  std::vector<uint8_t> src(total);
  for (uint8_t& x : src) x = static_cast<uint8_t>(rng());
  std::memcpy(pinned->data(), src.data(), total);
  std::vector<uint8_t> want_pages(host_pages.size(), 0);
  ASSERT_TRUE(
      ScatterPagesCpu(src.data(), total, fragments, {want_pages.data(), page_bytes, num_pages}, 2)
          .ok());
  ASSERT_TRUE(CudaFill(d_pages.data(), 0, d_pages.size()).ok());
  ASSERT_TRUE(ScatterPagesCuda(pinned->data(), total, fragments, pool).ok());
  ASSERT_TRUE(CudaSynchronize().ok());
  EXPECT_EQ(ToHost(d_pages), want_pages);
}

// A restore's layer: ranges of the mapped pinned staging blocks into scattered device pages.
TEST(PageCopyCudaTest, MovesFromPinnedStagingMatchCpu) {
  SKIP_WITHOUT_CUDA();
  const uint64_t page_bytes = 200000;
  const uint32_t staging_pages = 3, device_pages = 5;
  absl::StatusOr<CudaBuffer> staging =
      CudaBuffer::Allocate(page_bytes * staging_pages, CudaBuffer::Kind::kPinnedHost);
  ASSERT_TRUE(staging.ok()) << staging.status();
  std::mt19937 rng(3);
  auto* staged = static_cast<uint8_t*>(staging->data());
  for (uint64_t i = 0; i < staging->size(); ++i) staged[i] = static_cast<uint8_t>(rng());
  const std::vector<PageMove> moves = {
      {.src_page = 0, .dst_page = 4, .offset = 0, .length = page_bytes},
      {.src_page = 1, .dst_page = 1, .offset = 65536, .length = 70001},
      {.src_page = 2, .dst_page = 0, .offset = 3, .length = 1000},
      {.src_page = 2, .dst_page = 2, .offset = 7, .length = 0}};
  std::vector<uint8_t> want(page_bytes * device_pages, 0);
  ASSERT_TRUE(MovePagesCpu({staged, page_bytes, staging_pages},
                           {want.data(), page_bytes, device_pages}, moves, 2)
                  .ok());
  absl::StatusOr<CudaBuffer> pages = CudaBuffer::Allocate(page_bytes * device_pages);
  ASSERT_TRUE(pages.ok());
  ASSERT_TRUE(CudaFill(pages->data(), 0, pages->size()).ok());
  ASSERT_TRUE(MovePagesCuda({staged, page_bytes, staging_pages},
                            {pages->data(), page_bytes, device_pages}, moves)
                  .ok());
  ASSERT_TRUE(CudaSynchronize().ok());
  EXPECT_EQ(ToHost(*pages), want);
}

TEST(PageCopyCudaTest, BadFragmentsAreErrorsAndCopyNothing) {
  SKIP_WITHOUT_CUDA();
  const uint64_t page_bytes = 4096;
  absl::StatusOr<CudaBuffer> pages = CudaBuffer::Allocate(page_bytes * 2);
  absl::StatusOr<CudaBuffer> buffer = CudaBuffer::Allocate(8192);
  ASSERT_TRUE(pages.ok() && buffer.ok());
  ASSERT_TRUE(CudaFill(pages->data(), 0x11, pages->size()).ok());
  const PagePoolBytes pool{pages->data(), page_bytes, 2};
  const std::vector<CopyFragment> past_end{{0, 0, 100}, {1, 4000, 200}};
  EXPECT_EQ(ScatterPagesCuda(buffer->data(), 8192, past_end, pool).code(),
            absl::StatusCode::kOutOfRange);
  const std::vector<CopyFragment> bad_page{{2, 0, 8}};
  EXPECT_EQ(GatherPagesCuda(pool, bad_page, buffer->data(), 8192).code(),
            absl::StatusCode::kOutOfRange);
  const std::vector<CopyFragment> overlap{{0, 0, 100}, {0, 50, 100}};
  EXPECT_EQ(ScatterPagesCuda(buffer->data(), 8192, overlap, pool).code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(CudaSynchronize().ok());
  const std::vector<uint8_t> after = ToHost(*pages);
  EXPECT_EQ(after, std::vector<uint8_t>(after.size(), 0x11));
}

TEST(DispatchCudaTest, AutoContextRunsOnTheGpu) {
  SKIP_WITHOUT_CUDA();
  EXPECT_EQ(AutoContext().backend, Backend::kCuda);
  KernelContext context;
  EXPECT_TRUE(ContextFromName("cuda", &context).ok());
  EXPECT_EQ(context.backend, Backend::kCuda);
}

}  // namespace
}  // namespace kvtier::kernels
