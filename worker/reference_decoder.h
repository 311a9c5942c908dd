// ReferenceDecoder: the Decoder (worker/decoder.h) on the CPU. The matrix arithmetic runs
// in fp32 on the host; the pool must be a host (CPU-backend) pool. Prefill is a sequence of
// decode steps, and the K/V of a position do not depend on how the tokens before it were
// batched: the arithmetic is the same function of the same inputs, in a fixed order, so
// results are bit-for-bit repeatable. It is also the reference the CUDA decoder is tested
// against.
#ifndef KVTIER_WORKER_REFERENCE_DECODER_H_
#define KVTIER_WORKER_REFERENCE_DECODER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/dispatch.h"
#include "worker/decoder.h"
#include "worker/llama_weights.h"
#include "worker/page_pool.h"

namespace kvtier::worker {

class ReferenceDecoder final : public Decoder {
 public:
  ReferenceDecoder(std::shared_ptr<const LlamaWeights> weights, kernels::KernelContext context);

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

 private:
  // Layer l for every step of the batch; x [batch][hidden] in and out.
  absl::Status RunLayer(uint32_t l, std::span<const Step> batch, float* x, PagePool& pool);
  // Final norm and lm_head for n hidden states.
  std::vector<std::vector<float>> Logits(const float* x, uint32_t n) const;

  struct Scratch {
    std::vector<float> h, q, k, v, attn, o, gate, up;
    std::vector<uint32_t> indptr, indices, lens;
  };

  std::shared_ptr<const LlamaWeights> weights_;
  kernels::KernelContext context_;
  Scratch scratch_;
  std::vector<float> inv_freq_;  // RoPE frequencies, [head_dim / 2]
};

}  // namespace kvtier::worker

#endif  // KVTIER_WORKER_REFERENCE_DECODER_H_
