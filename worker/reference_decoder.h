// ReferenceDecoder: a small Llama-architecture decoder (embeddings, RMSNorm, RoPE, GQA
// attention through the paged attention kernels, SwiGLU MLP, greedy sampling) whose K/V
// live in a PagePool. It makes the worker's promise testable: tokens decoded against K/V
// restored from the store must equal tokens decoded against recomputed K/V.
//
// Every token is run at its position: its K and V are written into the page that holds
// that position (page_table[position / tokens_per_block], slot position % tokens_per_block,
// converted to the layout's dtype), then attention reads positions [0, position] through
// the kernels. Prefill is therefore a sequence of decode steps, and the K/V of a position
// do not depend on how the tokens before it were batched: the arithmetic is the same
// function of the same inputs, in a fixed order, so results are bit-for-bit repeatable.
//
// The matrix arithmetic runs on the CPU in fp32; the pool must be a host (CPU-backend)
// pool. Thread-compatible: one caller at a time (the worker serialises steps).
#ifndef KVTIER_WORKER_REFERENCE_DECODER_H_
#define KVTIER_WORKER_REFERENCE_DECODER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/dispatch.h"
#include "worker/llama_weights.h"
#include "worker/page_pool.h"

namespace kvtier::worker {

class ReferenceDecoder {
 public:
  // One sequence's part of a decode step.
  struct Step {
    uint32_t token = 0;
    uint32_t position = 0;
    std::span<const uint32_t> page_table;  // covers position
  };

  ReferenceDecoder(std::shared_ptr<const LlamaWeights> weights, kernels::KernelContext context);

  // Runs one token of each sequence; returns logits [batch][vocab].
  absl::StatusOr<std::vector<std::vector<float>>> Run(std::span<const Step> batch, PagePool& pool);
  // Runs tokens at positions first_position, first_position + 1, ...; logits of the last.
  absl::StatusOr<std::vector<float>> Prefill(std::span<const uint32_t> tokens,
                                             uint32_t first_position,
                                             std::span<const uint32_t> page_table, PagePool& pool);

  // The same as Prefill, run layer by layer over the whole chunk: before_layer(l) is called
  // before layer l (a restore uses it to wait until layer l of the restored pages has
  // arrived and verified); an error from it ends the prefill with that error. Results are
  // bit-for-bit those of Prefill.
  absl::StatusOr<std::vector<float>> PrefillLayerMajor(
      std::span<const uint32_t> tokens, uint32_t first_position,
      std::span<const uint32_t> page_table, PagePool& pool,
      const std::function<absl::Status(uint32_t layer)>& before_layer);

  // The most likely token (the lowest id among equals).
  static uint32_t Greedy(std::span<const float> logits);

  const LlamaConfig& config() const { return weights_->config; }

 private:
  absl::Status Check(std::span<const Step> batch, const PagePool& pool) const;
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
