// LlamaConfig: the dimensions of a Llama-architecture decoder (the reference decoder of the
// worker), and the KV block layout it implies. Value type.
//
// Shapes (Hugging Face conventions): hidden states [hidden]; q = Wq·x with Wq
// [q_heads * head_dim, hidden]; k, v with Wk, Wv [kv_heads * head_dim, hidden]; attention
// output projected by Wo [hidden, q_heads * head_dim]; SwiGLU MLP with gate/up
// [intermediate, hidden] and down [hidden, intermediate]; logits = lm_head·norm(x) with
// lm_head [vocab, hidden]. RoPE rotates the two halves of each head (rotate_half).
#ifndef KVTIER_WORKER_LLAMA_CONFIG_H_
#define KVTIER_WORKER_LLAMA_CONFIG_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "cache_store/kv_layout.h"

namespace kvtier::worker {

struct LlamaConfig {
  std::string model_id = "kvtier-tiny-llama";
  uint32_t vocab_size = 512;
  uint32_t hidden = 128;
  uint32_t num_layers = 2;
  uint32_t num_q_heads = 4;
  uint32_t num_kv_heads = 2;
  uint32_t head_dim = 64;
  uint32_t intermediate = 256;
  float rope_theta = 10000.0f;
  float rms_eps = 1e-5f;
  // How K/V are stored in pages and in the store: fp32/fp16/bf16, or quantized (fp8_e4m3,
  // int8: with per-layer, per-head scales, worker/kv_calibration.h).
  DType kv_dtype = DType::kBf16;
  uint32_t tokens_per_block = 16;

  // INVALID_ARGUMENT naming the first bad field (head_dim must be one the kernels support,
  // q heads a multiple of KV heads, every size positive and bounded).
  absl::Status Validate() const;
  // The KV block layout: model_id, layers, KV heads, head_dim, kv_dtype, tokens_per_block.
  KvLayout Layout() const;
  uint64_t ParameterCount() const;
};

// The small default: runs on a CPU in milliseconds per token.
LlamaConfig TinyLlamaConfig();
// Llama-3-8B's dimensions (random weights; for GPU-scale benchmarks).
LlamaConfig Llama3_8BConfig();

}  // namespace kvtier::worker

#endif  // KVTIER_WORKER_LLAMA_CONFIG_H_
