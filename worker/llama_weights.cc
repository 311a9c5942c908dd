#include "worker/llama_weights.h"

#include <cmath>
#include <functional>
#include <random>

#include "absl/strings/str_cat.h"

namespace kvtier::worker {
namespace {

// Visits every tensor with its Hugging Face name and shape.
template <typename W, typename Fn>
void ForEachTensor(W& w, Fn&& fn) {
  const LlamaConfig& c = w.config;
  const uint64_t q = uint64_t{c.num_q_heads} * c.head_dim;
  const uint64_t kv = uint64_t{c.num_kv_heads} * c.head_dim;
  fn("model.embed_tokens.weight", std::vector<uint64_t>{c.vocab_size, c.hidden}, w.embed);
  for (uint32_t l = 0; l < c.num_layers; ++l) {
    auto& L = w.layers[l];
    const std::string p = absl::StrCat("model.layers.", l, ".");
    fn(p + "input_layernorm.weight", std::vector<uint64_t>{c.hidden}, L.input_norm);
    fn(p + "self_attn.q_proj.weight", std::vector<uint64_t>{q, c.hidden}, L.wq);
    fn(p + "self_attn.k_proj.weight", std::vector<uint64_t>{kv, c.hidden}, L.wk);
    fn(p + "self_attn.v_proj.weight", std::vector<uint64_t>{kv, c.hidden}, L.wv);
    fn(p + "self_attn.o_proj.weight", std::vector<uint64_t>{c.hidden, q}, L.wo);
    fn(p + "post_attention_layernorm.weight", std::vector<uint64_t>{c.hidden}, L.post_norm);
    fn(p + "mlp.gate_proj.weight", std::vector<uint64_t>{c.intermediate, c.hidden}, L.gate);
    fn(p + "mlp.up_proj.weight", std::vector<uint64_t>{c.intermediate, c.hidden}, L.up);
    fn(p + "mlp.down_proj.weight", std::vector<uint64_t>{c.hidden, c.intermediate}, L.down);
  }
  fn("model.norm.weight", std::vector<uint64_t>{c.hidden}, w.norm);
  fn("lm_head.weight", std::vector<uint64_t>{c.vocab_size, c.hidden}, w.lm_head);
}

uint64_t Product(const std::vector<uint64_t>& shape) {
  uint64_t n = 1;
  for (uint64_t d : shape) n *= d;
  return n;
}

}  // namespace

absl::StatusOr<LlamaWeights> LlamaWeights::FromSeed(const LlamaConfig& config, uint64_t seed) {
  if (absl::Status s = config.Validate(); !s.ok()) return s;
  LlamaWeights w;
  w.config = config;
  w.layers.resize(config.num_layers);
  std::mt19937_64 rng(seed);
  ForEachTensor(w, [&](const std::string& name, const std::vector<uint64_t>& shape,
                       std::vector<float>& values) {
    values.resize(Product(shape));
    if (shape.size() == 1) {  // norms: around 1
      for (float& v : values) v = 1.0f + 0.1f * (static_cast<float>(rng() % 2001) / 1000.0f - 1.0f);
      return;
    }
    // Uniform with the variance of N(0, 1/fan_in); the embedding at unit scale. Drawn from
    // integers so that every platform's library gives the same values.
    const float bound =
        name == "model.embed_tokens.weight" ? 1.0f : std::sqrt(3.0f / static_cast<float>(shape[1]));
    for (float& v : values) {
      v = bound * (static_cast<float>(rng() % 2000001) / 1000000.0f - 1.0f);
    }
  });
  return w;
}

absl::StatusOr<LlamaWeights> LlamaWeights::FromSafetensors(const LlamaConfig& config,
                                                           const std::string& path) {
  if (absl::Status s = config.Validate(); !s.ok()) return s;
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(path);
  if (!file.ok()) return file.status();
  LlamaWeights w;
  w.config = config;
  w.layers.resize(config.num_layers);
  absl::Status status;
  ForEachTensor(w, [&](const std::string& name, const std::vector<uint64_t>& shape,
                       std::vector<float>& values) {
    if (!status.ok()) return;
    if (name == "lm_head.weight" && !file->Has(name)) {
      values.clear();  // tied: filled from the embedding below
      return;
    }
    absl::StatusOr<std::vector<float>> t = file->ReadF32(name, shape);
    if (!t.ok()) {
      status = t.status();
      return;
    }
    values = *std::move(t);
  });
  if (!status.ok()) return status;
  if (w.lm_head.empty()) w.lm_head = w.embed;
  return w;
}

std::vector<NamedTensor> LlamaWeights::ToTensors() const {
  std::vector<NamedTensor> out;
  ForEachTensor(*this, [&](const std::string& name, const std::vector<uint64_t>& shape,
                           const std::vector<float>& values) {
    out.push_back({name, shape, values});
  });
  return out;
}

}  // namespace kvtier::worker
