#include "worker/llama_config.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "kernels/paged_attention.h"

namespace kvtier::worker {

absl::Status LlamaConfig::Validate() const {
  auto bad = [](const char* field, uint64_t value, const char* why) {
    return absl::InvalidArgumentError(absl::StrCat("model ", field, " = ", value, ": ", why));
  };
  constexpr uint32_t kLimit = 1u << 20;
  if (vocab_size == 0 || vocab_size > (1u << 24))
    return bad("vocab_size", vocab_size, "out of range");
  if (hidden == 0 || hidden > kLimit) return bad("hidden", hidden, "out of range");
  if (num_layers == 0 || num_layers > kMaxLayers)
    return bad("num_layers", num_layers, "out of range");
  if (num_kv_heads == 0 || num_kv_heads > kMaxKvHeads) {
    return bad("num_kv_heads", num_kv_heads, "out of range");
  }
  if (num_q_heads == 0 || num_q_heads % num_kv_heads != 0) {
    return bad("num_q_heads", num_q_heads, "must be a positive multiple of num_kv_heads");
  }
  if (!kernels::SupportedHeadDim(head_dim)) {
    return bad("head_dim", head_dim, "the attention kernels support 64, 128 and 256");
  }
  if (intermediate == 0 || intermediate > kLimit) {
    return bad("intermediate", intermediate, "out of range");
  }
  if (!(rope_theta > 1.0f) || !std::isfinite(rope_theta)) {
    return absl::InvalidArgumentError("model rope_theta must be finite and > 1");
  }
  if (!(rms_eps > 0.0f) || !std::isfinite(rms_eps)) {
    return absl::InvalidArgumentError("model rms_eps must be finite and > 0");
  }
  if (DTypeBytes(kv_dtype) == 0) {
    return absl::InvalidArgumentError("model kv_dtype must be fp32, fp16, bf16, fp8_e4m3 or int8");
  }
  return Layout().Validate();
}

KvLayout LlamaConfig::Layout() const {
  return KvLayout{.model_id = model_id,
                  .num_layers = num_layers,
                  .num_kv_heads = num_kv_heads,
                  .head_dim = head_dim,
                  .dtype = kv_dtype,
                  .tokens_per_block = tokens_per_block};
}

uint64_t LlamaConfig::ParameterCount() const {
  const uint64_t q = uint64_t{num_q_heads} * head_dim;
  const uint64_t kv = uint64_t{num_kv_heads} * head_dim;
  const uint64_t per_layer = 2 * uint64_t{hidden} + hidden * (q + 2 * kv) + q * hidden +
                             3 * uint64_t{hidden} * intermediate;
  return 2 * uint64_t{vocab_size} * hidden + hidden + num_layers * per_layer;
}

LlamaConfig TinyLlamaConfig() { return LlamaConfig{}; }

LlamaConfig Llama3_8BConfig() {
  return LlamaConfig{.model_id = "llama-3-8b",
                     .vocab_size = 128256,
                     .hidden = 4096,
                     .num_layers = 32,
                     .num_q_heads = 32,
                     .num_kv_heads = 8,
                     .head_dim = 128,
                     .intermediate = 14336,
                     .rope_theta = 500000.0f,
                     .rms_eps = 1e-5f,
                     .kv_dtype = DType::kBf16,
                     .tokens_per_block = 16};
}

}  // namespace kvtier::worker
