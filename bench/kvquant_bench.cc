#include "bench/kvquant_bench.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "absl/strings/str_format.h"
#include "cache_store/slab_allocator.h"
#include "worker/decode_engine.h"
#include "worker/llama_weights.h"

namespace kvtier::bench {
namespace {

struct Run {
  std::vector<std::vector<float>> logits;     // per prompt, after its last token
  std::vector<std::vector<uint32_t>> tokens;  // per prompt, generated
  // Teacher-forced along the reference's generation: greedy choices equal to it.
  uint64_t forced_agree = 0, forced_total = 0;
  uint64_t block_bytes = 0;
};

// `reference` (null for the reference run itself): its generations are also fed token by
// token, and each greedy choice compared with the reference's next token.
absl::StatusOr<Run> Generate(const worker::LlamaConfig& config, DType kv_dtype,
                             const std::vector<std::vector<uint32_t>>& prompts,
                             const KvQuantBenchOptions& o, const Run* reference) {
  worker::LlamaConfig c = config;
  c.kv_dtype = kv_dtype;
  absl::StatusOr<worker::LlamaWeights> weights = worker::LlamaWeights::FromSeed(c, o.seed);
  if (!weights.ok()) return weights.status();
  const uint32_t pages = (o.prompt_tokens + o.generate) / c.tokens_per_block + 2;
  worker::DecodeEngineOptions options{.pages = pages};
  options.kernels.cpu.threads = o.threads;
  absl::StatusOr<std::unique_ptr<worker::DecodeEngine>> engine = worker::DecodeEngine::Create(
      std::make_shared<const worker::LlamaWeights>(*std::move(weights)), nullptr, options);
  if (!engine.ok()) return engine.status();
  Run run;
  run.block_bytes = (*engine)->layout().BlockBytes();
  for (const std::vector<uint32_t>& prompt : prompts) {
    absl::StatusOr<worker::DecodeEngine::Opened> opened = (*engine)->Open(prompt);
    if (!opened.ok()) return opened.status();
    run.logits.push_back(opened->logits);
    std::vector<uint32_t> generated = {opened->next_token};
    while (generated.size() < o.generate) {
      const uint64_t id = opened->id;
      absl::StatusOr<std::vector<uint32_t>> next = (*engine)->Step({&id, 1});
      if (!next.ok()) return next.status();
      generated.push_back((*next)[0]);
    }
    run.tokens.push_back(std::move(generated));
    if (absl::Status s = (*engine)->Close(opened->id); !s.ok()) return s;
    if (reference == nullptr) continue;
    const std::vector<uint32_t>& want = reference->tokens[run.tokens.size() - 1];
    absl::StatusOr<worker::DecodeEngine::Opened> forced = (*engine)->Open(prompt);
    if (!forced.ok()) return forced.status();
    uint32_t choice = forced->next_token;
    for (size_t i = 0; i < want.size(); ++i) {
      run.forced_agree += choice == want[i] ? 1 : 0;
      ++run.forced_total;
      if (i + 1 == want.size()) break;
      const uint32_t fed = want[i];
      absl::StatusOr<std::vector<float>> logits = (*engine)->Append(forced->id, {&fed, 1});
      if (!logits.ok()) return logits.status();
      choice = worker::Decoder::Greedy(*logits);
    }
    if (absl::Status s = (*engine)->Close(forced->id); !s.ok()) return s;
  }
  return run;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> RunKvQuantBench(const KvQuantBenchOptions& o) {
  worker::LlamaConfig config = worker::TinyLlamaConfig();
  if (o.model == "small") {
    config.model_id = "kvtier-small-llama";
    config.vocab_size = 2048;
    config.hidden = 512;
    config.num_layers = 4;
    config.num_q_heads = 8;
    config.num_kv_heads = 2;
    config.head_dim = 64;
    config.intermediate = 1024;
  } else if (o.model != "tiny") {
    return absl::InvalidArgumentError("--model must be tiny or small");
  }
  if (o.prompts == 0 || o.prompt_tokens == 0 || o.generate == 0) {
    return absl::InvalidArgumentError("--prompts, --prompt_tokens and --generate must be > 0");
  }
  std::mt19937_64 rng(o.seed);
  std::vector<std::vector<uint32_t>> prompts(o.prompts);
  for (auto& p : prompts) {
    p.resize(o.prompt_tokens);
    for (uint32_t& t : p) t = static_cast<uint32_t>(rng() % config.vocab_size);
  }
  std::vector<std::string> lines;
  absl::StatusOr<Run> reference = Generate(config, DType::kBf16, prompts, o, nullptr);
  if (!reference.ok()) return reference.status();
  for (DType d : {DType::kBf16, DType::kFp8E4M3, DType::kInt8}) {
    absl::StatusOr<Run> run =
        d == DType::kBf16 ? reference : Generate(config, d, prompts, o, &*reference);
    if (!run.ok()) return run.status();
    double max_diff = 0, sum_diff = 0, logit_range = 0;
    uint64_t diffs = 0, agree = 0, total = 0, identical = 0, first = 0;
    for (size_t p = 0; p < prompts.size(); ++p) {
      const std::vector<float>& a = reference->logits[p];
      const std::vector<float>& b = run->logits[p];
      for (size_t i = 0; i < a.size(); ++i) {
        const double diff = std::fabs(double(a[i]) - double(b[i]));
        max_diff = std::max(max_diff, diff);
        sum_diff += diff;
        logit_range = std::max(logit_range, std::fabs(double(a[i])));
        ++diffs;
      }
      const std::vector<uint32_t>& x = reference->tokens[p];
      const std::vector<uint32_t>& y = run->tokens[p];
      first += x[0] == y[0] ? 1 : 0;
      uint64_t same = 0;
      for (size_t i = 0; i < x.size(); ++i) same += x[i] == y[i] ? 1 : 0;
      agree += same;
      total += x.size();
      identical += same == x.size() ? 1 : 0;
    }
    const uint64_t gib = uint64_t{1} << 30;
    // What a 1 GiB store with the default slabs holds of this layout (its size class).
    absl::StatusOr<SlabAllocator> store = SlabAllocator::Create({.capacity_bytes = gib});
    if (!store.ok()) return store.status();
    const uint64_t store_blocks = store->capacity_slots(*store->ClassFor(run->block_bytes));
    lines.push_back(absl::StrFormat(
        "{\"kv_dtype\": \"%s\", \"model\": \"%s\", \"prompts\": %d, \"prompt_tokens\": %d, "
        "\"generate\": %d, \"block_bytes\": %d, \"blocks_per_gib\": %d, "
        "\"store_blocks_per_gib\": %d, "
        "\"restore_bytes_per_prompt\": %d, \"max_abs_logit_diff\": %.6f, "
        "\"mean_abs_logit_diff\": %.6f, \"max_abs_logit\": %.4f, "
        "\"first_token_agreement\": %.4f, \"teacher_forced_agreement\": %.4f, "
        "\"greedy_token_agreement\": %.4f, \"identical_generations\": %.4f}",
        DTypeName(d), o.model, o.prompts, o.prompt_tokens, o.generate, run->block_bytes,
        gib / run->block_bytes, store_blocks, uint64_t{o.prompt_tokens / config.tokens_per_block} * run->block_bytes,
        max_diff, diffs ? sum_diff / double(diffs) : 0.0, logit_range,
        double(first) / double(prompts.size()),
        run->forced_total ? double(run->forced_agree) / double(run->forced_total) : 1.0,
        total ? double(agree) / double(total) : 0.0,
        prompts.empty() ? 0.0 : double(identical) / double(prompts.size())));
  }
  return lines;
}

}  // namespace kvtier::bench
