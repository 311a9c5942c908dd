// CudaDecoder: the Decoder (worker/decoder.h) on the GPU, against a device page pool.
//
// The weights live on the device as bf16 (norm weights fp32), with q/k/v and gate/up fused
// into one matrix each, uploaded once by Create. A call runs its rows (the tokens of a
// batch, or of a prefill) layer by layer; within a layer, in chunks of up to kChunkRows
// rows, in order:
//   RMSNorm → bf16; qkv = GEMM; RoPE on q and k, K and V written into the pages; paged
//   attention of each row over positions [0, position] (the decode kernel, one "sequence"
//   per row; a prefill's rows share their page table), bf16 out; x += GEMM(Wo);
//   RMSNorm → bf16; gate_up = GEMM; silu(gate)·up → bf16; x += GEMM(down).
// Rows of a chunk are written before its attention runs, and chunks run in order, so each
// row sees exactly the K/V of the positions before it. The attention's split-KV size is
// fixed (kSplitTokens), and every operation computes an element from its own inputs in a
// fixed order, so results do not depend on the batching (kernels/decoder_ops.h).
//
// Work is queued on the decoder's own stream; every call waits for it before returning
// (the logits are copied back), so when a call returns no kernel touches the pool.
// Arithmetic differs from the ReferenceDecoder by bf16 rounding of the linear layers'
// inputs and weights; the GPU tests bound the difference and require the same greedy
// tokens on the tiny model.
#ifndef KVTIER_WORKER_CUDA_DECODER_H_
#define KVTIER_WORKER_CUDA_DECODER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/cuda_memory.h"
#include "kernels/cuda_workspace.h"
#include "kernels/dispatch.h"
#include "worker/decoder.h"

namespace kvtier::worker {

class CudaDecoder final : public Decoder {
 public:
  static constexpr uint32_t kChunkRows = 1024;
  static constexpr uint32_t kLogitRows = 64;
  static constexpr uint32_t kSplitTokens = 1024;

  // Uploads the weights. UNIMPLEMENTED without CUDA, UNAVAILABLE without a device,
  // RESOURCE_EXHAUSTED when they do not fit.
  static absl::StatusOr<std::unique_ptr<CudaDecoder>> Create(
      std::shared_ptr<const LlamaWeights> weights);
  ~CudaDecoder() override;

  absl::StatusOr<std::vector<std::vector<float>>> Run(std::span<const Step> batch,
                                                      PagePool& pool) override;
  absl::StatusOr<std::vector<float>> Prefill(std::span<const uint32_t> tokens,
                                             uint32_t first_position,
                                             std::span<const uint32_t> page_table,
                                             PagePool& pool) override;
  absl::StatusOr<std::vector<float>> PrefillLayerMajor(
      std::span<const uint32_t> tokens, uint32_t first_position,
      std::span<const uint32_t> page_table, PagePool& pool,
      const std::function<absl::Status(uint32_t layer)>& before_layer) override;

  const LlamaConfig& config() const override { return weights_->config; }
  uint64_t weight_bytes() const { return arena_.size(); }

 private:
  struct LayerWeights {
    const uint16_t *wqkv = nullptr, *wo = nullptr, *gate_up = nullptr, *down = nullptr;
    const float *input_norm = nullptr, *post_norm = nullptr;
  };
  // The attention page table of a chunk of rows (CSR), built once per call.
  struct ChunkTable {
    std::vector<uint32_t> indptr, indices, lens;
  };

  explicit CudaDecoder(std::shared_ptr<const LlamaWeights> weights);
  absl::Status Upload();
  absl::Status EnsureRows(uint32_t rows);
  // Runs `rows` through the model; logits of rows [first_logit_row, rows.size()).
  absl::StatusOr<std::vector<std::vector<float>>> Forward(
      std::span<const Step> rows, PagePool& pool, uint32_t first_logit_row,
      const std::function<absl::Status(uint32_t layer)>* before_layer);
  absl::Status QueueLayer(uint32_t l, uint32_t first, uint32_t count, const ChunkTable& table,
                          PagePool& pool);
  absl::Status QueueLogits(uint32_t first, uint32_t count, std::vector<std::vector<float>>& out);

  std::shared_ptr<const LlamaWeights> weights_;
  kernels::CudaStream stream_;
  std::unique_ptr<kernels::CudaWorkspace> workspace_;
  kernels::KernelContext context_;

  kernels::CudaBuffer arena_;  // every weight
  const uint16_t* embed_ = nullptr;
  const uint16_t* lm_head_ = nullptr;
  const float* norm_ = nullptr;
  std::vector<LayerWeights> layers_;

  // Scratch: x for every row of a call; the rest per chunk.
  uint32_t row_capacity_ = 0;
  kernels::CudaBuffer x_, control_dev_, control_host_;  // control: tokens, positions, pages
  kernels::CudaBuffer h_, qkv_, q_, attn_, gate_up_, act_, logits_dev_, logits_host_;
};

}  // namespace kvtier::worker

#endif  // KVTIER_WORKER_CUDA_DECODER_H_
