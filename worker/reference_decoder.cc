#include "worker/reference_decoder.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "kernels/cpu_parallel.h"
#include "kernels/element_io.h"

namespace kvtier::worker {
namespace {

// y[rows] = W[rows, cols] · x[cols]. Rows are split across threads only when the matrix
// is large; each row's sum runs in a fixed order either way.
void MatVec(const std::vector<float>& w, const float* x, uint32_t rows, uint32_t cols, float* y,
            int threads) {
  auto row = [&](size_t r) {
    const float* wr = w.data() + r * cols;
    float lanes[8] = {};
    uint32_t c = 0;
    for (; c + 8 <= cols; c += 8) {
      for (int l = 0; l < 8; ++l) lanes[l] += wr[c + l] * x[c + l];
    }
    float sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
                ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
    for (; c < cols; ++c) sum += wr[c] * x[c];
    y[r] = sum;
  };
  if (uint64_t{rows} * cols < (1u << 20)) {
    for (uint32_t r = 0; r < rows; ++r) row(r);
    return;
  }
  const size_t chunk = 64;
  kernels::ParallelFor((rows + chunk - 1) / chunk, threads, [&](size_t i) {
    for (size_t r = i * chunk; r < std::min<size_t>(rows, (i + 1) * chunk); ++r) row(r);
  });
}

void RmsNorm(const float* x, const std::vector<float>& weight, float eps, uint32_t n, float* out) {
  double sum = 0;
  for (uint32_t i = 0; i < n; ++i) sum += double{x[i]} * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(sum / n + eps));
  for (uint32_t i = 0; i < n; ++i) out[i] = x[i] * scale * weight[i];
}

// rotate_half RoPE on one head in place.
void Rope(float* head, uint32_t dim, uint32_t position, const std::vector<float>& inv_freq) {
  const uint32_t half = dim / 2;
  for (uint32_t i = 0; i < half; ++i) {
    const double angle = static_cast<double>(position) * inv_freq[i];
    const float c = static_cast<float>(std::cos(angle));
    const float s = static_cast<float>(std::sin(angle));
    const float a = head[i], b = head[i + half];
    head[i] = a * c - b * s;
    head[i + half] = b * c + a * s;
  }
}

}  // namespace

ReferenceDecoder::ReferenceDecoder(std::shared_ptr<const LlamaWeights> weights,
                                   kernels::KernelContext context)
    : weights_(std::move(weights)), context_(context) {
  const LlamaConfig& c = weights_->config;
  inv_freq_.resize(c.head_dim / 2);
  for (uint32_t i = 0; i < c.head_dim / 2; ++i) {
    inv_freq_[i] = static_cast<float>(
        std::pow(double{c.rope_theta}, -2.0 * i / static_cast<double>(c.head_dim)));
  }
}

absl::StatusOr<std::vector<std::vector<float>>> ReferenceDecoder::Run(std::span<const Step> batch,
                                                                      PagePool& pool) {
  if (absl::Status st =
          CheckBatch(config(), batch, pool, kernels::Backend::kCpu, "the reference decoder");
      !st.ok())
    return st;
  const LlamaWeights& w = *weights_;
  const LlamaConfig& c = w.config;
  const uint32_t n = static_cast<uint32_t>(batch.size());
  std::vector<float> x(uint64_t{n} * c.hidden);
  for (uint32_t b = 0; b < n; ++b) {
    std::copy_n(&w.embed[uint64_t{batch[b].token} * c.hidden], c.hidden,
                &x[uint64_t{b} * c.hidden]);
  }
  for (uint32_t l = 0; l < c.num_layers; ++l) {
    if (absl::Status st = RunLayer(l, batch, x.data(), pool); !st.ok()) return st;
  }
  return Logits(x.data(), n);
}

std::vector<std::vector<float>> ReferenceDecoder::Logits(const float* x, uint32_t n) const {
  const LlamaWeights& w = *weights_;
  const LlamaConfig& c = w.config;
  std::vector<float> h(c.hidden);
  std::vector<std::vector<float>> logits(n, std::vector<float>(c.vocab_size));
  for (uint32_t b = 0; b < n; ++b) {
    RmsNorm(&x[uint64_t{b} * c.hidden], w.norm, c.rms_eps, c.hidden, h.data());
    MatVec(w.lm_head, h.data(), c.vocab_size, c.hidden, logits[b].data(), context_.cpu.threads);
  }
  return logits;
}

absl::Status ReferenceDecoder::RunLayer(uint32_t l, std::span<const Step> batch, float* x,
                                        PagePool& pool) {
  const LlamaWeights& w = *weights_;
  const LlamaConfig& c = w.config;
  const KvLayout& layout = pool.layout();
  const uint32_t n = static_cast<uint32_t>(batch.size());
  const uint32_t tpb = layout.tokens_per_block;
  const uint32_t hidden = c.hidden;
  const uint32_t qdim = c.num_q_heads * c.head_dim;
  const uint32_t kvdim = c.num_kv_heads * c.head_dim;
  const int threads = context_.cpu.threads;
  // Scratch reused from call to call (layer-major prefill calls this per token and layer).
  Scratch& sc = scratch_;
  sc.h.resize(hidden);
  sc.q.resize(uint64_t{n} * qdim);
  sc.k.resize(kvdim);
  sc.v.resize(kvdim);
  sc.attn.resize(uint64_t{n} * qdim);
  sc.o.resize(hidden);
  sc.gate.resize(c.intermediate);
  sc.up.resize(c.intermediate);
  std::vector<float>&h = sc.h, &q = sc.q, &k = sc.k, &v = sc.v, &attn = sc.attn, &o = sc.o,
  &gate = sc.gate, &up = sc.up;
  // The attention page table of the batch (CSR).
  std::vector<uint32_t>&indptr = sc.indptr, &indices = sc.indices, &lens = sc.lens;
  indptr.assign(1, 0);
  indices.clear();
  lens.clear();
  for (const Step& s : batch) {
    const uint32_t pages = s.position / tpb + 1;
    indices.insert(indices.end(), s.page_table.begin(), s.page_table.begin() + pages);
    indptr.push_back(static_cast<uint32_t>(indices.size()));
    lens.push_back(s.position + 1);
  }
  const uint64_t row_bytes = uint64_t{kvdim} * DTypeBytes(layout.dtype);
  const LlamaLayerWeights& L = w.layers[l];
  for (uint32_t b = 0; b < n; ++b) {
    const Step& s = batch[b];
    RmsNorm(&x[uint64_t{b} * hidden], L.input_norm, c.rms_eps, hidden, h.data());
    float* qb = &q[uint64_t{b} * qdim];
    MatVec(L.wq, h.data(), qdim, hidden, qb, threads);
    MatVec(L.wk, h.data(), kvdim, hidden, k.data(), threads);
    MatVec(L.wv, h.data(), kvdim, hidden, v.data(), threads);
    for (uint32_t head = 0; head < c.num_q_heads; ++head) {
      Rope(qb + uint64_t{head} * c.head_dim, c.head_dim, s.position, inv_freq_);
    }
    for (uint32_t head = 0; head < c.num_kv_heads; ++head) {
      Rope(k.data() + uint64_t{head} * c.head_dim, c.head_dim, s.position, inv_freq_);
    }
    uint8_t* layer = pool.PageData(s.page_table[s.position / tpb]) + l * layout.LayerBytes();
    const uint64_t slot = s.position % tpb;
    if (!layout.quantized()) {
      kernels::StoreRow(k.data(), kvdim, layout.dtype, layer + slot * row_bytes);
      kernels::StoreRow(v.data(), kvdim, layout.dtype, layer + (tpb + slot) * row_bytes);
      continue;
    }
    // Quantized pages: each head with the pool's fixed scale for this layer, K and V; the
    // page carries those scales after the layer's elements (every row writes the same).
    const float* scales = pool.kv_scales().data() + uint64_t{l} * 2 * c.num_kv_heads;
    const uint64_t head_bytes = uint64_t{c.head_dim} * DTypeBytes(layout.dtype);
    for (uint32_t head = 0; head < c.num_kv_heads; ++head) {
      kernels::StoreKvRow(k.data() + uint64_t{head} * c.head_dim, c.head_dim, layout.dtype,
                          scales[head], layer + slot * row_bytes + head * head_bytes);
      kernels::StoreKvRow(v.data() + uint64_t{head} * c.head_dim, c.head_dim, layout.dtype,
                          scales[c.num_kv_heads + head],
                          layer + (tpb + slot) * row_bytes + head * head_bytes);
    }
    std::memcpy(layer + 2 * tpb * row_bytes, scales, 2 * c.num_kv_heads * sizeof(float));
  }
  const kernels::DecodeAttentionArgs args{
      .q = q.data(),
      .q_dtype = DType::kFp32,
      .out = attn.data(),
      .out_dtype = DType::kFp32,
      .num_seqs = n,
      .num_q_heads = c.num_q_heads,
      .layer = l,
      .softmax_scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim)),
      .page_indptr = indptr.data(),
      .page_indices = indices.data(),
      .seq_lens = lens.data()};
  if (absl::Status st = kernels::PagedDecodeAttention(context_, pool.KernelView(), args);
      !st.ok()) {
    return st;
  }
  for (uint32_t b = 0; b < n; ++b) {
    float* xb = &x[uint64_t{b} * hidden];
    MatVec(L.wo, &attn[uint64_t{b} * qdim], hidden, qdim, o.data(), threads);
    for (uint32_t i = 0; i < hidden; ++i) xb[i] += o[i];
    RmsNorm(xb, L.post_norm, c.rms_eps, hidden, h.data());
    MatVec(L.gate, h.data(), c.intermediate, hidden, gate.data(), threads);
    MatVec(L.up, h.data(), c.intermediate, hidden, up.data(), threads);
    for (uint32_t i = 0; i < c.intermediate; ++i) {
      gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];  // SiLU(gate) * up
    }
    MatVec(L.down, gate.data(), hidden, c.intermediate, o.data(), threads);
    for (uint32_t i = 0; i < hidden; ++i) xb[i] += o[i];
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> ReferenceDecoder::PrefillLayerMajor(
    std::span<const uint32_t> tokens, uint32_t first_position, std::span<const uint32_t> page_table,
    PagePool& pool, const std::function<absl::Status(uint32_t layer)>& before_layer) {
  if (tokens.empty()) return absl::InvalidArgumentError("prefill of no tokens");
  const LlamaConfig& c = weights_->config;
  std::vector<Step> steps;
  for (size_t i = 0; i < tokens.size(); ++i) {
    steps.push_back({tokens[i], first_position + static_cast<uint32_t>(i), page_table});
  }
  if (absl::Status st =
          CheckBatch(config(), steps, pool, kernels::Backend::kCpu, "the reference decoder");
      !st.ok())
    return st;
  const uint32_t n = static_cast<uint32_t>(steps.size());
  std::vector<float> x(uint64_t{n} * c.hidden);
  for (uint32_t i = 0; i < n; ++i) {
    std::copy_n(&weights_->embed[uint64_t{steps[i].token} * c.hidden], c.hidden,
                &x[uint64_t{i} * c.hidden]);
  }
  for (uint32_t l = 0; l < c.num_layers; ++l) {
    if (absl::Status st = before_layer(l); !st.ok()) return st;
    // Token by token, in order: each one attends to the K/V of the ones before it at this
    // layer, exactly as when the tokens run one after another through all layers.
    for (uint32_t i = 0; i < n; ++i) {
      if (absl::Status st = RunLayer(l, {&steps[i], 1}, &x[uint64_t{i} * c.hidden], pool);
          !st.ok()) {
        return st;
      }
    }
  }
  return std::move(Logits(&x[uint64_t{n - 1} * c.hidden], 1)[0]);
}

absl::StatusOr<std::vector<float>> ReferenceDecoder::Prefill(std::span<const uint32_t> tokens,
                                                             uint32_t first_position,
                                                             std::span<const uint32_t> page_table,
                                                             PagePool& pool) {
  if (tokens.empty()) return absl::InvalidArgumentError("prefill of no tokens");
  std::vector<float> last;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const Step step{tokens[i], first_position + static_cast<uint32_t>(i), page_table};
    absl::StatusOr<std::vector<std::vector<float>>> logits = Run({&step, 1}, pool);
    if (!logits.ok()) return logits.status();
    last = std::move((*logits)[0]);
  }
  return last;
}

}  // namespace kvtier::worker
