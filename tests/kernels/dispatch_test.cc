// Runtime dispatch: the backend chosen for this machine, backend names, and that the CPU
// context runs the CPU implementations. Without a device (or without a CUDA build) the CUDA
// entry points answer with an error, never a crash.
#include "kernels/dispatch.h"

#include <gtest/gtest.h>

#include <cstring>

#include "tests/kernels/kernel_test_util.h"

namespace kvtier::kernels {
namespace {

TEST(DispatchTest, AutoPicksCudaExactlyWhenADeviceIsPresent) {
  EXPECT_EQ(AutoContext().backend, CudaDeviceAvailable() ? Backend::kCuda : Backend::kCpu);
  if (!CudaBuilt()) {
    EXPECT_FALSE(CudaDeviceAvailable());
  }
  EXPECT_FALSE(CudaDeviceDescription().empty());
}

TEST(DispatchTest, BackendNames) {
  KernelContext context;
  EXPECT_TRUE(ContextFromName("cpu", &context).ok());
  EXPECT_EQ(context.backend, Backend::kCpu);
  EXPECT_TRUE(ContextFromName("auto", &context).ok());
  const absl::Status bad = ContextFromName("tpu", &context);
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.message().find("'tpu'"), std::string::npos) << bad;
  if (!CudaDeviceAvailable()) {
    const absl::Status no_gpu = ContextFromName("cuda", &context);
    EXPECT_EQ(no_gpu.code(), absl::StatusCode::kFailedPrecondition) << no_gpu;
  }
}

TEST(DispatchTest, CpuContextRunsTheCpuKernels) {
  const testing::Batch b =
      testing::MakeBatch({33, 1, 0}, 8, 2, 64, 16, DType::kBf16, DType::kBf16, 1, 21);
  std::vector<float> direct(size_t{3} * 8 * 64), dispatched(size_t{3} * 8 * 64, -1.0f);
  DecodeAttentionArgs args{.q = b.q.data(),
                           .q_dtype = b.q_dtype,
                           .out = direct.data(),
                           .out_dtype = DType::kFp32,
                           .num_seqs = 3,
                           .num_q_heads = 8,
                           .softmax_scale = 0.125f,
                           .page_indptr = b.indptr.data(),
                           .page_indices = b.indices.data(),
                           .seq_lens = b.lens.data()};
  ASSERT_TRUE(PagedDecodeAttentionCpu(b.pool, args).ok());
  args.out = dispatched.data();
  const KernelContext cpu;
  ASSERT_TRUE(PagedDecodeAttention(cpu, b.pool, args).ok());
  EXPECT_TRUE(Synchronize(cpu).ok());
  EXPECT_EQ(std::memcmp(direct.data(), dispatched.data(), direct.size() * sizeof(float)), 0);
}

TEST(DispatchTest, CudaEntryPointsWithoutADeviceAreErrors) {
  if (CudaDeviceAvailable()) GTEST_SKIP() << "a CUDA device is present";
  const testing::Batch b = testing::MakeBatch({20}, 4, 1, 64, 16, DType::kFp16, DType::kFp32, 1, 2);
  std::vector<float> out(size_t{4} * 64, 5.0f);
  const DecodeAttentionArgs args{.q = b.q.data(),
                                 .q_dtype = b.q_dtype,
                                 .out = out.data(),
                                 .out_dtype = DType::kFp32,
                                 .num_seqs = 1,
                                 .num_q_heads = 4,
                                 .softmax_scale = 0.125f,
                                 .page_indptr = b.indptr.data(),
                                 .page_indices = b.indices.data(),
                                 .seq_lens = b.lens.data()};
  const absl::Status s = PagedDecodeAttentionCuda(b.pool, args);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(out, std::vector<float>(size_t{4} * 64, 5.0f));
  std::vector<uint8_t> dst(64);
  const CopyFragment one{0, 0, 64};
  EXPECT_FALSE(GatherPagesCuda({const_cast<void*>(b.pool.pages), b.pool.PageBytes(), 1}, {&one, 1},
                               dst.data(), dst.size())
                   .ok());
  EXPECT_FALSE(CudaSynchronize().ok());
}

}  // namespace
}  // namespace kvtier::kernels
