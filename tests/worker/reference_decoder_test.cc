// The reference decoder against a textbook Llama forward pass written here (dense K/V,
// double precision), its determinism, batching, restored-vs-recomputed K/V, and weights
// loaded from a safetensors file.
#include "worker/reference_decoder.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "kernels/numeric.h"

namespace kvtier::worker {
namespace {

std::shared_ptr<const LlamaWeights> Weights(uint64_t seed = 7, LlamaConfig c = TinyLlamaConfig()) {
  absl::StatusOr<LlamaWeights> w = LlamaWeights::FromSeed(c, seed);
  EXPECT_TRUE(w.ok()) << w.status();
  return std::make_shared<const LlamaWeights>(*std::move(w));
}

std::unique_ptr<PagePool> Pool(const LlamaConfig& c, uint32_t pages = 64) {
  return *PagePool::Create(c.Layout(), pages, kernels::Backend::kCpu);
}

std::vector<uint32_t> Prompt(uint32_t n, uint32_t salt, uint32_t vocab) {
  std::vector<uint32_t> p(n);
  for (uint32_t i = 0; i < n; ++i) p[i] = (i * 37 + salt * 11 + 3) % vocab;
  return p;
}

std::vector<uint32_t> Pages(PagePool& pool, uint32_t n) {
  std::vector<uint32_t> pages;
  for (uint32_t i = 0; i < n; ++i) pages.push_back(*pool.Allocate());
  return pages;
}

// Textbook Llama: logits after the last token of `tokens`, K/V kept densely per layer and
// rounded to bf16 as the pages hold them.
std::vector<double> Textbook(const LlamaWeights& w, const std::vector<uint32_t>& tokens) {
  const LlamaConfig& c = w.config;
  const uint32_t H = c.hidden, D = c.head_dim, Q = c.num_q_heads, KV = c.num_kv_heads;
  auto matvec = [](const std::vector<float>& m, const std::vector<double>& x, uint32_t rows) {
    std::vector<double> y(rows, 0.0);
    const size_t cols = x.size();
    for (uint32_t r = 0; r < rows; ++r) {
      for (size_t j = 0; j < cols; ++j) y[r] += double{m[r * cols + j]} * x[j];
    }
    return y;
  };
  auto rms = [&](const std::vector<double>& x, const std::vector<float>& g) {
    double s = 0;
    for (double v : x) s += v * v;
    const double inv = 1.0 / std::sqrt(s / x.size() + c.rms_eps);
    std::vector<double> y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * inv * g[i];
    return y;
  };
  auto rope = [&](double* v, uint32_t pos) {
    for (uint32_t i = 0; i < D / 2; ++i) {
      const double f = std::pow(double{c.rope_theta}, -2.0 * i / D);
      const double a = v[i], b = v[i + D / 2];
      v[i] = a * std::cos(pos * f) - b * std::sin(pos * f);
      v[i + D / 2] = b * std::cos(pos * f) + a * std::sin(pos * f);
    }
  };
  auto bf16 = [](double v) {
    return double{kernels::Bf16ToFloat(kernels::FloatToBf16(static_cast<float>(v)))};
  };
  std::vector<std::vector<std::vector<double>>> kcache(c.num_layers), vcache(c.num_layers);
  std::vector<double> x;
  for (uint32_t pos = 0; pos < tokens.size(); ++pos) {
    x.assign(w.embed.begin() + uint64_t{tokens[pos]} * H,
             w.embed.begin() + uint64_t{tokens[pos] + 1} * H);
    for (uint32_t l = 0; l < c.num_layers; ++l) {
      const LlamaLayerWeights& L = w.layers[l];
      const std::vector<double> h = rms(x, L.input_norm);
      std::vector<double> q = matvec(L.wq, h, Q * D), k = matvec(L.wk, h, KV * D),
                          v = matvec(L.wv, h, KV * D);
      for (uint32_t hd = 0; hd < Q; ++hd) rope(&q[hd * D], pos);
      for (uint32_t hd = 0; hd < KV; ++hd) rope(&k[hd * D], pos);
      for (double& e : k) e = bf16(e);
      for (double& e : v) e = bf16(e);
      kcache[l].push_back(k);
      vcache[l].push_back(v);
      std::vector<double> attn(Q * D, 0.0);
      for (uint32_t hd = 0; hd < Q; ++hd) {
        const uint32_t g = hd / (Q / KV);
        std::vector<double> scores(pos + 1);
        double m = -INFINITY;
        for (uint32_t t = 0; t <= pos; ++t) {
          double s = 0;
          for (uint32_t d = 0; d < D; ++d) s += q[hd * D + d] * kcache[l][t][g * D + d];
          scores[t] = s / std::sqrt(static_cast<double>(D));
          m = std::max(m, scores[t]);
        }
        double sum = 0;
        for (double& s : scores) sum += (s = std::exp(s - m));
        for (uint32_t t = 0; t <= pos; ++t) {
          for (uint32_t d = 0; d < D; ++d)
            attn[hd * D + d] += scores[t] / sum * vcache[l][t][g * D + d];
        }
      }
      const std::vector<double> o = matvec(L.wo, attn, H);
      for (uint32_t i = 0; i < H; ++i) x[i] += o[i];
      const std::vector<double> h2 = rms(x, L.post_norm);
      std::vector<double> gate = matvec(L.gate, h2, c.intermediate),
                          up = matvec(L.up, h2, c.intermediate);
      for (uint32_t i = 0; i < c.intermediate; ++i)
        gate[i] = gate[i] / (1 + std::exp(-gate[i])) * up[i];
      const std::vector<double> down = matvec(L.down, gate, H);
      for (uint32_t i = 0; i < H; ++i) x[i] += down[i];
    }
  }
  return matvec(w.lm_head, rms(x, w.norm), c.vocab_size);
}

TEST(ReferenceDecoderTest, MatchesATextbookLlama) {
  auto w = Weights();
  auto pool = Pool(w->config);
  ReferenceDecoder decoder(w, {});
  const std::vector<uint32_t> prompt = Prompt(37, 1, w->config.vocab_size);  // 3 pages
  const std::vector<uint32_t> pages = Pages(*pool, 3);
  absl::StatusOr<std::vector<float>> logits = decoder.Prefill(prompt, 0, pages, *pool);
  ASSERT_TRUE(logits.ok()) << logits.status();
  const std::vector<double> want = Textbook(*w, prompt);
  double worst = 0, spread = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    worst = std::max(worst, std::fabs((*logits)[i] - want[i]));
    spread = std::max(spread, std::fabs(want[i]));
  }
  EXPECT_GT(spread, 0.1) << "logits should not be trivially small";
  EXPECT_LT(worst, 2e-3) << "largest logit " << spread;
}

TEST(ReferenceDecoderTest, RepeatableAndIndependentOfBatching) {
  auto w = Weights();
  const uint32_t vocab = w->config.vocab_size;
  const std::vector<uint32_t> a = Prompt(20, 2, vocab), b = Prompt(9, 3, vocab);
  // Alone, twice.
  std::vector<float> alone_a, alone_b;
  for (int round = 0; round < 2; ++round) {
    auto pool = Pool(w->config);
    ReferenceDecoder decoder(w, {});
    std::vector<uint32_t> pa = Pages(*pool, 2), pb = Pages(*pool, 1);
    std::vector<float> la = *decoder.Prefill(a, 0, pa, *pool);
    std::vector<float> lb = *decoder.Prefill(b, 0, pb, *pool);
    if (round == 0) {
      alone_a = la;
      alone_b = lb;
    } else {
      EXPECT_EQ(la, alone_a);
      EXPECT_EQ(lb, alone_b);
    }
  }
  // Batched: the shared prefix of steps runs both sequences in one attention call.
  auto pool = Pool(w->config);
  ReferenceDecoder decoder(w, {});
  std::vector<uint32_t> pa = Pages(*pool, 2), pb = Pages(*pool, 1);
  std::vector<float> la, lb;
  for (uint32_t pos = 0; pos < a.size(); ++pos) {
    std::vector<ReferenceDecoder::Step> steps{{a[pos], pos, pa}};
    if (pos < b.size()) steps.push_back({b[pos], pos, pb});
    auto logits = decoder.Run(steps, *pool);
    ASSERT_TRUE(logits.ok());
    la = (*logits)[0];
    if (pos < b.size()) lb = (*logits)[1];
  }
  EXPECT_EQ(la, alone_a);
  EXPECT_EQ(lb, alone_b);
}

TEST(ReferenceDecoderTest, RestoredPagesDecodeExactlyLikeRecomputedOnes) {
  auto w = Weights();
  const std::vector<uint32_t> prompt = Prompt(50, 4, w->config.vocab_size);
  auto source = Pool(w->config);
  ReferenceDecoder decoder(w, {});
  const std::vector<uint32_t> sp = Pages(*source, 4);
  const std::vector<float> want = *decoder.Prefill(prompt, 0, sp, *source);
  // Copy the three full blocks' bytes (as a restore does) into a fresh pool, at other page
  // numbers, and compute only the tail.
  auto target = Pool(w->config);
  (void)Pages(*target, 5);  // the restored blocks land elsewhere
  const std::vector<uint32_t> tp = Pages(*target, 4);
  for (int b = 0; b < 3; ++b) {
    std::memcpy(target->PageData(tp[b]), source->PageData(sp[b]), source->page_bytes());
  }
  const std::vector<uint32_t> tail(prompt.begin() + 48, prompt.end());
  const std::vector<float> got = *decoder.Prefill(tail, 48, tp, *target);
  EXPECT_EQ(got, want);
}

TEST(ReferenceDecoderTest, LayerMajorPrefillIsBitForBitTheSame) {
  auto w = Weights();
  const std::vector<uint32_t> prompt = Prompt(45, 9, w->config.vocab_size);
  ReferenceDecoder decoder(w, {});
  auto a = Pool(w->config);
  const std::vector<uint32_t> pa = Pages(*a, 3);
  const std::vector<float> want = *decoder.Prefill(prompt, 0, pa, *a);
  // The first 32 tokens token by token, the last 13 layer by layer on top of them.
  auto b = Pool(w->config);
  const std::vector<uint32_t> pb = Pages(*b, 3);
  ASSERT_TRUE(decoder.Prefill(std::span(prompt).first(32), 0, pb, *b).ok());
  std::vector<uint32_t> layers_seen;
  absl::StatusOr<std::vector<float>> got =
      decoder.PrefillLayerMajor(std::span(prompt).subspan(32), 32, pb, *b, [&](uint32_t l) {
        layers_seen.push_back(l);
        return absl::OkStatus();
      });
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, want);
  EXPECT_EQ(layers_seen, (std::vector<uint32_t>{0, 1}));
  for (int p = 0; p < 2; ++p) {  // the full pages (page 2's unused slots hold garbage)
    EXPECT_EQ(std::memcmp(a->PageData(pa[p]), b->PageData(pb[p]), a->page_bytes()), 0)
        << "page " << p;
  }
  // An error before a layer ends the prefill with it.
  absl::Status stop = decoder
                          .PrefillLayerMajor(std::span(prompt).subspan(32), 32, pb, *b,
                                             [](uint32_t l) {
                                               return l == 1 ? absl::DataLossError("layer 1 lost")
                                                             : absl::OkStatus();
                                             })
                          .status();
  EXPECT_EQ(stop.code(), absl::StatusCode::kDataLoss);
}

TEST(ReferenceDecoderTest, LoadsWeightsFromSafetensors) {
  auto seeded = Weights(11);
  const std::string path =
      (std::filesystem::temp_directory_path() / ("llama." + std::to_string(::getpid()) + ".st"))
          .string();
  ASSERT_TRUE(WriteSafetensors(path, seeded->ToTensors()).ok());
  absl::StatusOr<LlamaWeights> loaded = LlamaWeights::FromSafetensors(seeded->config, path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const std::vector<uint32_t> prompt = Prompt(18, 5, seeded->config.vocab_size);
  auto run = [&](std::shared_ptr<const LlamaWeights> w) {
    auto pool = Pool(w->config);
    ReferenceDecoder decoder(w, {});
    return *decoder.Prefill(prompt, 0, Pages(*pool, 2), *pool);
  };
  EXPECT_EQ(run(std::make_shared<const LlamaWeights>(*std::move(loaded))), run(seeded));

  // Tied embeddings: no lm_head in the file.
  std::vector<NamedTensor> tensors = seeded->ToTensors();
  tensors.pop_back();
  ASSERT_EQ(tensors.back().name, "model.norm.weight");
  ASSERT_TRUE(WriteSafetensors(path, tensors).ok());
  absl::StatusOr<LlamaWeights> tied = LlamaWeights::FromSafetensors(seeded->config, path);
  ASSERT_TRUE(tied.ok());
  EXPECT_EQ(tied->lm_head, seeded->embed);

  // A file for another shape names the tensor that does not fit.
  LlamaConfig bigger = seeded->config;
  bigger.intermediate = 512;
  absl::Status s = LlamaWeights::FromSafetensors(bigger, path).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("model.layers.0.mlp.gate_proj.weight"), std::string::npos) << s;
  std::remove(path.c_str());
}

TEST(ReferenceDecoderTest, BadInputIsRejected) {
  auto w = Weights();
  auto pool = Pool(w->config);
  ReferenceDecoder decoder(w, {});
  const std::vector<uint32_t> one_page = Pages(*pool, 1);
  const std::vector<uint32_t> bad_token{w->config.vocab_size};
  EXPECT_EQ(decoder.Prefill(bad_token, 0, one_page, *pool).status().code(),
            absl::StatusCode::kInvalidArgument);
  const std::vector<uint32_t> ok_token{1};
  EXPECT_EQ(decoder.Prefill(ok_token, 16, one_page, *pool).status().code(),
            absl::StatusCode::kInvalidArgument);  // position past the pages
  LlamaConfig bad = w->config;
  bad.head_dim = 96;
  EXPECT_NE(LlamaWeights::FromSeed(bad, 1).status().message().find("head_dim"), std::string::npos);
}

}  // namespace
}  // namespace kvtier::worker
