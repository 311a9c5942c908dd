// LlamaWeights: the parameters of the reference decoder, in fp32 on the host, with the
// shapes of llama_config.h. From a seed (deterministic: the same seed and config give the
// same weights on every machine) or from a safetensors file in the Hugging Face Llama
// naming (model.embed_tokens.weight, model.layers.N.self_attn.q_proj.weight, ...,
// model.norm.weight, lm_head.weight; a missing lm_head means tied embeddings). Immutable
// after construction.
#ifndef KVTIER_WORKER_LLAMA_WEIGHTS_H_
#define KVTIER_WORKER_LLAMA_WEIGHTS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/llama_config.h"
#include "worker/safetensors.h"

namespace kvtier::worker {

struct LlamaLayerWeights {
  std::vector<float> input_norm;  // [hidden]
  std::vector<float> wq;          // [q_heads * head_dim, hidden]
  std::vector<float> wk, wv;      // [kv_heads * head_dim, hidden]
  std::vector<float> wo;          // [hidden, q_heads * head_dim]
  std::vector<float> post_norm;   // [hidden]
  std::vector<float> gate, up;    // [intermediate, hidden]
  std::vector<float> down;        // [hidden, intermediate]
};

struct LlamaWeights {
  LlamaConfig config;
  std::vector<float> embed;  // [vocab, hidden]
  std::vector<LlamaLayerWeights> layers;
  std::vector<float> norm;     // [hidden]
  std::vector<float> lm_head;  // [vocab, hidden]

  static absl::StatusOr<LlamaWeights> FromSeed(const LlamaConfig& config, uint64_t seed);
  // Every tensor must be present with the config's shape; errors name the tensor.
  static absl::StatusOr<LlamaWeights> FromSafetensors(const LlamaConfig& config,
                                                      const std::string& path);
  // The tensors under their Hugging Face names (for WriteSafetensors).
  std::vector<NamedTensor> ToTensors() const;
};

}  // namespace kvtier::worker

#endif  // KVTIER_WORKER_LLAMA_WEIGHTS_H_
