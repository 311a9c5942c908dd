#include "worker/cuda_decoder.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "kernels/cpu_parallel.h"
#include "kernels/decoder_ops.h"
#include "kernels/numeric.h"

namespace kvtier::worker {
namespace {

constexpr uint64_t kAlign = 256;

uint64_t AlignUp(uint64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// Places tensors one after another in the device arena and uploads them.
class ArenaWriter {
 public:
  ArenaWriter(uint8_t* base, uint64_t capacity) : base_(base), capacity_(capacity) {}

  // The concatenation of `parts` (fp32 on the host) as bf16.
  absl::StatusOr<const uint16_t*> Bf16(std::initializer_list<const std::vector<float>*> parts) {
    uint64_t count = 0;
    for (const std::vector<float>* p : parts) count += p->size();
    staging_.resize(count);
    uint64_t at = 0;
    for (const std::vector<float>* p : parts) {
      const float* src = p->data();
      uint16_t* dst = staging_.data() + at;
      const size_t n = p->size(), piece = 1 << 20;
      kernels::ParallelFor((n + piece - 1) / piece, 0, [&](size_t i) {
        for (size_t e = i * piece; e < std::min(n, (i + 1) * piece); ++e) {
          dst[e] = kernels::FloatToBf16(src[e]);
        }
      });
      at += n;
    }
    absl::StatusOr<void*> placed = Place(staging_.data(), count * sizeof(uint16_t));
    if (!placed.ok()) return placed.status();
    return static_cast<const uint16_t*>(*placed);
  }

  absl::StatusOr<const float*> Fp32(const std::vector<float>& v) {
    absl::StatusOr<void*> placed = Place(v.data(), v.size() * sizeof(float));
    if (!placed.ok()) return placed.status();
    return static_cast<const float*>(*placed);
  }

  // The arena bytes the weights of `c` take.
  static uint64_t Bytes(const LlamaConfig& c) {
    const uint64_t h = c.hidden, qdim = uint64_t{c.num_q_heads} * c.head_dim,
                   kvdim = uint64_t{c.num_kv_heads} * c.head_dim;
    const uint64_t layer = AlignUp((qdim + 2 * kvdim) * h * 2) + AlignUp(h * qdim * 2) +
                           AlignUp(2 * uint64_t{c.intermediate} * h * 2) +
                           AlignUp(h * c.intermediate * 2) + 2 * AlignUp(h * 4);
    return c.num_layers * layer + 2 * AlignUp(uint64_t{c.vocab_size} * h * 2) + AlignUp(h * 4);
  }

 private:
  absl::StatusOr<void*> Place(const void* src, uint64_t bytes) {
    if (AlignUp(bytes) > capacity_ - offset_) {  // Bytes() and Upload() disagree
      return absl::InternalError("the CUDA decoder's weights overflow their arena");
    }
    void* dst = base_ + offset_;
    if (absl::Status s = kernels::CudaCopy(dst, src, bytes); !s.ok()) return s;
    offset_ += AlignUp(bytes);
    return dst;
  }

  uint8_t* base_;
  const uint64_t capacity_;
  uint64_t offset_ = 0;
  std::vector<uint16_t> staging_;
};

template <typename T>
absl::Status Assign(absl::StatusOr<T> value, T& out) {
  if (!value.ok()) return value.status();
  out = *value;
  return absl::OkStatus();
}

absl::Status Grow(kernels::CudaBuffer& buffer, uint64_t bytes, kernels::CudaBuffer::Kind kind) {
  if (buffer.size() >= bytes) return absl::OkStatus();
  buffer = kernels::CudaBuffer();  // free first: the old contents are scratch
  absl::StatusOr<kernels::CudaBuffer> b = kernels::CudaBuffer::Allocate(bytes, kind);
  if (!b.ok()) return b.status();
  buffer = *std::move(b);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<CudaDecoder>> CudaDecoder::Create(
    std::shared_ptr<const LlamaWeights> weights) {
  if (weights == nullptr) return absl::InvalidArgumentError("no model weights");
  const LlamaConfig& c = weights->config;
  if (absl::Status s = c.Validate(); !s.ok()) return s;
  if (c.hidden % 32 != 0 || c.intermediate % 32 != 0 || (c.num_q_heads * c.head_dim) % 32 != 0) {
    return absl::InvalidArgumentError(
        "the CUDA decoder needs hidden, intermediate and q_heads·head_dim to be multiples of 32");
  }
  auto decoder = std::unique_ptr<CudaDecoder>(new CudaDecoder(std::move(weights)));
  absl::StatusOr<kernels::CudaStream> stream = kernels::CudaStream::Create();
  if (!stream.ok()) return stream.status();
  decoder->stream_ = *std::move(stream);
  decoder->workspace_ = std::make_unique<kernels::CudaWorkspace>();
  decoder->context_.backend = kernels::Backend::kCuda;
  decoder->context_.cuda = {.stream = decoder->stream_.get(),
                            .workspace = decoder->workspace_.get(),
                            .split_tokens = kSplitTokens};
  if (absl::Status s = decoder->Upload(); !s.ok()) return s;
  return decoder;
}

CudaDecoder::CudaDecoder(std::shared_ptr<const LlamaWeights> weights)
    : weights_(std::move(weights)) {}

CudaDecoder::~CudaDecoder() {
  if (stream_.get() != nullptr) (void)kernels::CudaSynchronize(stream_.get());
}

absl::Status CudaDecoder::Upload() {
  const LlamaWeights& w = *weights_;
  absl::StatusOr<kernels::CudaBuffer> arena =
      kernels::CudaBuffer::Allocate(ArenaWriter::Bytes(w.config));
  if (!arena.ok()) return arena.status();
  arena_ = *std::move(arena);
  ArenaWriter writer(static_cast<uint8_t*>(arena_.data()), arena_.size());
  absl::Status s = Assign(writer.Bf16({&w.embed}), embed_);
  if (s.ok()) s = Assign(writer.Bf16({&w.lm_head}), lm_head_);
  if (s.ok()) s = Assign(writer.Fp32(w.norm), norm_);
  layers_.resize(w.layers.size());
  for (size_t l = 0; l < w.layers.size() && s.ok(); ++l) {
    const LlamaLayerWeights& in = w.layers[l];
    LayerWeights& out = layers_[l];
    s = Assign(writer.Bf16({&in.wq, &in.wk, &in.wv}), out.wqkv);
    if (s.ok()) s = Assign(writer.Bf16({&in.wo}), out.wo);
    if (s.ok()) s = Assign(writer.Bf16({&in.gate, &in.up}), out.gate_up);
    if (s.ok()) s = Assign(writer.Bf16({&in.down}), out.down);
    if (s.ok()) s = Assign(writer.Fp32(in.input_norm), out.input_norm);
    if (s.ok()) s = Assign(writer.Fp32(in.post_norm), out.post_norm);
  }
  if (!s.ok()) return s;
  const LlamaConfig& c = w.config;
  const uint64_t chunk = kChunkRows, qdim = uint64_t{c.num_q_heads} * c.head_dim,
                 kvdim = uint64_t{c.num_kv_heads} * c.head_dim;
  using Kind = kernels::CudaBuffer::Kind;
  for (auto [buffer, bytes, kind] :
       {std::tuple{&h_, chunk * c.hidden * 2, Kind::kDevice},
        std::tuple{&qkv_, chunk * (qdim + 2 * kvdim) * 4, Kind::kDevice},
        std::tuple{&q_, chunk * qdim * 4, Kind::kDevice},
        std::tuple{&attn_, chunk * qdim * 2, Kind::kDevice},
        std::tuple{&gate_up_, chunk * 2 * c.intermediate * 4, Kind::kDevice},
        std::tuple{&act_, chunk * c.intermediate * 2, Kind::kDevice},
        std::tuple{&logits_dev_, uint64_t{kLogitRows} * c.vocab_size * 4, Kind::kDevice},
        std::tuple{&logits_host_, uint64_t{kLogitRows} * c.vocab_size * 4, Kind::kPinnedHost}}) {
    if (absl::Status g = Grow(*buffer, bytes, kind); !g.ok()) return g;
  }
  return absl::OkStatus();
}

absl::Status CudaDecoder::EnsureRows(uint32_t rows) {
  if (rows <= row_capacity_) return absl::OkStatus();
  const uint32_t capacity = std::max(rows, 2 * row_capacity_);
  using Kind = kernels::CudaBuffer::Kind;
  absl::Status s = Grow(x_, uint64_t{capacity} * config().hidden * 4, Kind::kDevice);
  if (s.ok()) s = Grow(control_dev_, uint64_t{capacity} * 3 * 4, Kind::kDevice);
  if (s.ok()) s = Grow(control_host_, uint64_t{capacity} * 3 * 4, Kind::kPinnedHost);
  if (s.ok()) row_capacity_ = capacity;
  return s;
}

absl::Status CudaDecoder::QueueLayer(uint32_t l, uint32_t first, uint32_t count,
                                     const ChunkTable& table, PagePool& pool) {
  const LlamaConfig& c = config();
  const LayerWeights& L = layers_[l];
  const kernels::CudaOptions& o = context_.cuda;
  const uint32_t qdim = c.num_q_heads * c.head_dim, kvdim = c.num_kv_heads * c.head_dim;
  float* x = static_cast<float*>(x_.data()) + uint64_t{first} * c.hidden;
  auto* h = static_cast<uint16_t*>(h_.data());
  auto* qkv = static_cast<float*>(qkv_.data());
  auto* q = static_cast<float*>(q_.data());
  auto* attn = static_cast<uint16_t*>(attn_.data());
  auto* gate_up = static_cast<float*>(gate_up_.data());
  auto* act = static_cast<uint16_t*>(act_.data());
  const auto* control = static_cast<const uint32_t*>(control_dev_.data());
  const uint32_t* positions = control + row_capacity_ + first;
  const uint32_t* page_of_row = control + 2 * uint64_t{row_capacity_} + first;

  absl::Status s = kernels::RmsNormToBf16Cuda(x, L.input_norm, c.rms_eps, count, c.hidden, h, o);
  if (s.ok())
    s = kernels::GemmBf16Cuda(h, L.wqkv, qkv, count, qdim + 2 * kvdim, c.hidden, false, o);
  if (s.ok()) {
    s = kernels::RopeAndStoreKvCuda(pool.KernelView(),
                                    {.qkv = qkv,
                                     .m = count,
                                     .num_q_heads = c.num_q_heads,
                                     .positions = positions,
                                     .page_of_row = page_of_row,
                                     .layer = l,
                                     .rope_theta = c.rope_theta,
                                     .q_out = q,
                                     .kv_scales = pool.device_kv_scales()},
                                    o);
  }
  if (s.ok()) {
    const kernels::DecodeAttentionArgs args{
        .q = q,
        .q_dtype = DType::kFp32,
        .out = attn,
        .out_dtype = DType::kBf16,
        .num_seqs = count,
        .num_q_heads = c.num_q_heads,
        .layer = l,
        .softmax_scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim)),
        .page_indptr = table.indptr.data(),
        .page_indices = table.indices.data(),
        .seq_lens = table.lens.data()};
    s = kernels::PagedDecodeAttention(context_, pool.KernelView(), args);
  }
  if (s.ok()) s = kernels::GemmBf16Cuda(attn, L.wo, x, count, c.hidden, qdim, true, o);
  if (s.ok()) s = kernels::RmsNormToBf16Cuda(x, L.post_norm, c.rms_eps, count, c.hidden, h, o);
  if (s.ok()) {
    s = kernels::GemmBf16Cuda(h, L.gate_up, gate_up, count, 2 * c.intermediate, c.hidden, false, o);
  }
  if (s.ok()) s = kernels::SiluMulToBf16Cuda(gate_up, count, c.intermediate, act, o);
  if (s.ok()) s = kernels::GemmBf16Cuda(act, L.down, x, count, c.hidden, c.intermediate, true, o);
  return s;
}

absl::Status CudaDecoder::QueueLogits(uint32_t first, uint32_t count,
                                      std::vector<std::vector<float>>& out) {
  const LlamaConfig& c = config();
  const kernels::CudaOptions& o = context_.cuda;
  auto* h = static_cast<uint16_t*>(h_.data());
  auto* logits = static_cast<float*>(logits_dev_.data());
  for (uint32_t r = first; r < first + count; r += kLogitRows) {
    const uint32_t n = std::min(kLogitRows, first + count - r);
    const float* x = static_cast<const float*>(x_.data()) + uint64_t{r} * c.hidden;
    absl::Status s = kernels::RmsNormToBf16Cuda(x, norm_, c.rms_eps, n, c.hidden, h, o);
    if (s.ok()) s = kernels::GemmBf16Cuda(h, lm_head_, logits, n, c.vocab_size, c.hidden, false, o);
    if (s.ok()) {
      s = kernels::CudaCopyAsync(logits_host_.data(), logits,
                                 uint64_t{n} * c.vocab_size * sizeof(float), o.stream);
    }
    if (s.ok()) s = kernels::CudaSynchronize(o.stream);
    if (!s.ok()) return s;
    const auto* host = static_cast<const float*>(logits_host_.data());
    for (uint32_t i = 0; i < n; ++i) {
      out.emplace_back(host + uint64_t{i} * c.vocab_size, host + uint64_t{i + 1} * c.vocab_size);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::vector<float>>> CudaDecoder::Forward(
    std::span<const Step> rows, PagePool& pool, uint32_t first_logit_row,
    const std::function<absl::Status(uint32_t layer)>* before_layer) {
  if (absl::Status s =
          CheckBatch(config(), rows, pool, kernels::Backend::kCuda, "the CUDA decoder");
      !s.ok()) {
    return s;
  }
  const LlamaConfig& c = config();
  const uint32_t n = static_cast<uint32_t>(rows.size());
  const uint32_t tpb = pool.layout().tokens_per_block;
  if (absl::Status s = EnsureRows(n); !s.ok()) return s;
  // Control arrays: tokens, positions, the page of each row's position.
  auto* control = static_cast<uint32_t*>(control_host_.data());
  for (uint32_t i = 0; i < n; ++i) {
    control[i] = rows[i].token;
    control[row_capacity_ + i] = rows[i].position;
    control[2 * uint64_t{row_capacity_} + i] = rows[i].page_table[rows[i].position / tpb];
  }
  // The attention page table of each chunk, the same at every layer.
  std::vector<ChunkTable> tables((n + kChunkRows - 1) / kChunkRows);
  for (uint32_t i = 0; i < n; ++i) {
    ChunkTable& t = tables[i / kChunkRows];
    if (t.indptr.empty()) t.indptr.push_back(0);
    const Step& s = rows[i];
    t.indices.insert(t.indices.end(), s.page_table.begin(),
                     s.page_table.begin() + s.position / tpb + 1);
    t.indptr.push_back(static_cast<uint32_t>(t.indices.size()));
    t.lens.push_back(s.position + 1);
  }
  const kernels::CudaOptions& o = context_.cuda;
  auto run = [&]() -> absl::StatusOr<std::vector<std::vector<float>>> {
    absl::Status s = kernels::CudaCopyAsync(control_dev_.data(), control_host_.data(),
                                            uint64_t{row_capacity_} * 3 * 4, o.stream);
    if (s.ok()) {
      s = kernels::EmbedCuda(embed_, c.vocab_size, c.hidden,
                             static_cast<const uint32_t*>(control_dev_.data()), n,
                             static_cast<float*>(x_.data()), o);
    }
    for (uint32_t l = 0; l < c.num_layers && s.ok(); ++l) {
      if (before_layer != nullptr) s = (*before_layer)(l);
      for (uint32_t first = 0; first < n && s.ok(); first += kChunkRows) {
        s = QueueLayer(l, first, std::min(kChunkRows, n - first), tables[first / kChunkRows], pool);
      }
    }
    std::vector<std::vector<float>> logits;
    if (s.ok()) s = QueueLogits(first_logit_row, n - first_logit_row, logits);
    if (!s.ok()) return s;
    return logits;
  };
  absl::StatusOr<std::vector<std::vector<float>>> logits = run();
  // Whatever happened, nothing may still be running on the pages when the call returns.
  absl::Status drained = kernels::CudaSynchronize(o.stream);
  if (logits.ok() && !drained.ok()) return drained;
  return logits;
}

absl::StatusOr<std::vector<std::vector<float>>> CudaDecoder::Run(std::span<const Step> batch,
                                                                 PagePool& pool) {
  if (batch.empty()) return std::vector<std::vector<float>>{};
  return Forward(batch, pool, 0, nullptr);
}

absl::StatusOr<std::vector<float>> CudaDecoder::PrefillLayerMajor(
    std::span<const uint32_t> tokens, uint32_t first_position, std::span<const uint32_t> page_table,
    PagePool& pool, const std::function<absl::Status(uint32_t layer)>& before_layer) {
  if (tokens.empty()) return absl::InvalidArgumentError("prefill of no tokens");
  std::vector<Step> rows;
  rows.reserve(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    rows.push_back({tokens[i], first_position + static_cast<uint32_t>(i), page_table});
  }
  absl::StatusOr<std::vector<std::vector<float>>> logits = Forward(
      rows, pool, static_cast<uint32_t>(rows.size() - 1), before_layer ? &before_layer : nullptr);
  if (!logits.ok()) return logits.status();
  return std::move(logits->back());
}

absl::StatusOr<std::vector<float>> CudaDecoder::Prefill(std::span<const uint32_t> tokens,
                                                        uint32_t first_position,
                                                        std::span<const uint32_t> page_table,
                                                        PagePool& pool) {
  return PrefillLayerMajor(tokens, first_position, page_table, pool, nullptr);
}

}  // namespace kvtier::worker
