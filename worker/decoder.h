// Decoder: what the worker's engine runs tokens through. A Llama-architecture model whose
// K/V live in a PagePool: every token is run at its position, its K and V are written into
// the page that holds that position (page_table[position / tokens_per_block], slot
// position % tokens_per_block, in the layout's dtype), and attention reads positions
// [0, position] through the paged attention kernels.
//
// Two implementations: ReferenceDecoder (host pages, fp32 arithmetic on the CPU) and
// CudaDecoder (device pages, bf16 tensor-core GEMMs with fp32 accumulation). Both promise
// that the K/V of a position, and the logits after it, do not depend on how the tokens
// were batched, so K/V restored from the store decode exactly like recomputed K/V.
//
// Thread-compatible: one caller at a time (the engine serialises steps).
#ifndef KVTIER_WORKER_DECODER_H_
#define KVTIER_WORKER_DECODER_H_

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

class Decoder {
 public:
  // One sequence's part of a decode step.
  struct Step {
    uint32_t token = 0;
    uint32_t position = 0;
    std::span<const uint32_t> page_table;  // covers position
  };

  virtual ~Decoder() = default;

  // Runs one token of each sequence; returns logits [batch][vocab].
  virtual absl::StatusOr<std::vector<std::vector<float>>> Run(std::span<const Step> batch,
                                                              PagePool& pool) = 0;
  // Runs tokens at positions first_position, first_position + 1, ...; logits of the last.
  virtual absl::StatusOr<std::vector<float>> Prefill(std::span<const uint32_t> tokens,
                                                     uint32_t first_position,
                                                     std::span<const uint32_t> page_table,
                                                     PagePool& pool) = 0;
  // The same as Prefill, run layer by layer over the whole chunk: before_layer(l) is called
  // before layer l is queued (a restore uses it to wait until layer l of the restored pages
  // has arrived, verified, and been copied into its pages); an error from it ends the
  // prefill with that error. Results are bit-for-bit those of Prefill.
  virtual absl::StatusOr<std::vector<float>> PrefillLayerMajor(
      std::span<const uint32_t> tokens, uint32_t first_position,
      std::span<const uint32_t> page_table, PagePool& pool,
      const std::function<absl::Status(uint32_t layer)>& before_layer) = 0;

  virtual const LlamaConfig& config() const = 0;

  // The most likely token (the lowest id among equals).
  static uint32_t Greedy(std::span<const float> logits);

 protected:
  // What both decoders require of a batch: a pool of `backend` (FAILED_PRECONDITION naming
  // `who` otherwise) with the model's layout, tokens in the vocabulary, and page tables that
  // cover each position with a page of the pool (INVALID_ARGUMENT naming the problem).
  static absl::Status CheckBatch(const LlamaConfig& config, std::span<const Step> batch,
                                 const PagePool& pool, kernels::Backend backend, const char* who);
};

// The decoder for context.backend: ReferenceDecoder on kCpu, CudaDecoder on kCuda (which
// uploads the weights to the device).
absl::StatusOr<std::unique_ptr<Decoder>> MakeDecoder(std::shared_ptr<const LlamaWeights> weights,
                                                     const kernels::KernelContext& context);

}  // namespace kvtier::worker

#endif  // KVTIER_WORKER_DECODER_H_
