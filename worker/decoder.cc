#include "worker/decoder.h"

#include <algorithm>

#include "worker/cuda_decoder.h"
#include "worker/reference_decoder.h"

namespace kvtier::worker {

uint32_t Decoder::Greedy(std::span<const float> logits) {
  return static_cast<uint32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

absl::StatusOr<std::unique_ptr<Decoder>> MakeDecoder(std::shared_ptr<const LlamaWeights> weights,
                                                     const kernels::KernelContext& context) {
  if (weights == nullptr) return absl::InvalidArgumentError("no model weights");
  if (context.backend == kernels::Backend::kCuda) {
    absl::StatusOr<std::unique_ptr<CudaDecoder>> decoder = CudaDecoder::Create(std::move(weights));
    if (!decoder.ok()) return decoder.status();
    return std::unique_ptr<Decoder>(*std::move(decoder));
  }
  return std::unique_ptr<Decoder>(std::make_unique<ReferenceDecoder>(std::move(weights), context));
}

}  // namespace kvtier::worker
