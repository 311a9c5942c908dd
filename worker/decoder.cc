#include "worker/decoder.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "worker/cuda_decoder.h"
#include "worker/reference_decoder.h"

namespace kvtier::worker {

uint32_t Decoder::Greedy(std::span<const float> logits) {
  return static_cast<uint32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

absl::Status Decoder::CheckBatch(const LlamaConfig& config, std::span<const Step> batch,
                                 const PagePool& pool, kernels::Backend backend, const char* who) {
  const KvLayout& layout = pool.layout();
  if (pool.backend() != backend) {
    return absl::FailedPreconditionError(
        absl::StrCat(who, " runs on a ", kernels::BackendName(backend), "-backend page pool"));
  }
  if (layout.num_layers != config.num_layers || layout.num_kv_heads != config.num_kv_heads ||
      layout.head_dim != config.head_dim) {
    return absl::InvalidArgumentError("the page pool's layout is not the model's");
  }
  const uint32_t tpb = layout.tokens_per_block;
  for (const Step& s : batch) {
    if (s.token >= config.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("token ", s.token, " is outside the vocabulary of ", config.vocab_size));
    }
    if (s.page_table.size() <= s.position / tpb) {
      return absl::InvalidArgumentError(
          absl::StrCat("position ", s.position, " is past the sequence's pages"));
    }
    if (s.page_table[s.position / tpb] >= pool.num_pages()) {
      return absl::InvalidArgumentError(
          absl::StrCat("page ", s.page_table[s.position / tpb], " is outside the pool"));
    }
  }
  return absl::OkStatus();
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
