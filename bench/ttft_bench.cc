#include "bench/ttft_bench.h"

#include <chrono>
#include <cstring>

#include "absl/strings/str_format.h"
#include "bench/local_store.h"
#include "kernels/cuda_memory.h"
#include "worker/decode_engine.h"

namespace kvtier::bench {
namespace {

std::vector<uint32_t> Tokens(uint32_t n, uint32_t salt, uint32_t vocab) {
  std::vector<uint32_t> t(n);
  for (uint32_t i = 0; i < n; ++i) t[i] = (i * 2654435761u + salt * 40503u) % vocab;
  return t;
}

// Seconds per pinned-host→device copy of `bytes` (CUDA events, as kvtier-bench copy times
// its reference).
absl::StatusOr<double> PinnedToDeviceSeconds(uint64_t bytes) {
  absl::StatusOr<kernels::CudaBuffer> host =
      kernels::CudaBuffer::Allocate(bytes, kernels::CudaBuffer::Kind::kPinnedHost);
  if (!host.ok()) return host.status();
  absl::StatusOr<kernels::CudaBuffer> device = kernels::CudaBuffer::Allocate(bytes);
  if (!device.ok()) return device.status();
  std::memset(host->data(), 1, bytes);
  return kernels::CudaTimePerCall(nullptr, 3, [&] {
    return kernels::CudaCopyAsync(device->data(), host->data(), bytes, nullptr);
  });
}

}  // namespace

absl::StatusOr<std::vector<std::string>> RunTtftBench(const TtftBenchOptions& o) {
  worker::LlamaConfig config;
  if (o.model == "tiny") {
    config = worker::TinyLlamaConfig();
  } else if (o.model == "llama-3-8b") {
    config = worker::Llama3_8BConfig();
  } else {
    return absl::InvalidArgumentError("--model must be tiny or llama-3-8b");
  }
  absl::StatusOr<worker::LlamaWeights> w = worker::LlamaWeights::FromSeed(config, 1);
  if (!w.ok()) return w.status();
  auto weights = std::make_shared<const worker::LlamaWeights>(*std::move(w));
  const uint32_t tpb = config.tokens_per_block;
  const uint64_t block_bytes = config.Layout().BlockBytes();
  std::vector<std::string> lines;
  for (uint32_t prefix_len : o.prefixes) {
    if (prefix_len == 0 || prefix_len % tpb != 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("prefix lengths must be positive multiples of %d tokens", tpb));
    }
    const uint32_t pages = (prefix_len + o.question_tokens) / tpb + 2;
    absl::StatusOr<std::unique_ptr<LocalStore>> store =
        LocalStore::Start(block_bytes, pages, o.same_node);
    if (!store.ok()) return store.status();
    ClientOptions co = (*store)->client_options();
    co.timeout = absl::Minutes(5);
    auto client = std::make_shared<CacheStoreClient>(co);
    worker::DecodeEngineOptions eo{.pages = pages};
    eo.kernels.backend = o.backend;
    eo.same_node = o.same_node;
    eo.kernels.cpu.threads = o.threads;
    const std::vector<uint32_t> prefix = Tokens(prefix_len, 1, config.vocab_size);
    std::vector<uint32_t> a = prefix, b = prefix;
    for (uint32_t t : Tokens(o.question_tokens, 2, config.vocab_size)) a.push_back(t);
    for (uint32_t t : Tokens(o.question_tokens, 3, config.vocab_size)) b.push_back(t);

    absl::StatusOr<std::unique_ptr<worker::DecodeEngine>> cold =
        worker::DecodeEngine::Create(weights, client, eo);
    if (!cold.ok()) return cold.status();
    absl::StatusOr<worker::DecodeEngine::Opened> recomputed = (*cold)->Open(a);
    if (!recomputed.ok()) return recomputed.status();
    if (absl::Status s = (*cold)->Close(recomputed->id); !s.ok()) return s;
    (*cold)->FlushOffloads();
    const uint64_t offloaded = (*cold)->stats().offload.blocks;
    cold->reset();

    absl::StatusOr<std::unique_ptr<worker::DecodeEngine>> warm =
        worker::DecodeEngine::Create(weights, client, eo);
    if (!warm.ok()) return warm.status();
    absl::StatusOr<worker::DecodeEngine::Opened> restored = (*warm)->Open(b);
    if (!restored.ok()) return restored.status();
    const worker::DecodeEngine::Stats ws = (*warm)->stats();

    // memcpy of the restored bytes, in the same run.
    std::vector<uint8_t> src(ws.restored_bytes, 1), dst(ws.restored_bytes);
    double best_copy = 1e30;
    for (int i = 0; i < 3; ++i) {
      const auto start = std::chrono::steady_clock::now();
      std::memcpy(dst.data(), src.data(), src.size());
      best_copy =
          std::min(best_copy,
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    const double restore_gbs =
        ws.restore_seconds > 0 ? ws.restored_bytes / ws.restore_seconds / 1e9 : 0;
    const double memcpy_gbs = best_copy > 0 ? ws.restored_bytes / best_copy / 1e9 : 0;
    std::string device = "cpu", h2d;
    if (o.backend == kernels::Backend::kCuda) {
      absl::StatusOr<double> seconds = PinnedToDeviceSeconds(ws.restored_bytes);
      if (!seconds.ok()) return seconds.status();
      device = kernels::CudaDeviceDescription();
      h2d = absl::StrFormat(", \"pinned_h2d_gb_per_s\": %.3f, \"restore_vs_pinned_h2d\": %.3f",
                            ws.restored_bytes / *seconds / 1e9,
                            restore_gbs / (ws.restored_bytes / *seconds / 1e9));
    }
    lines.push_back(absl::StrFormat(
        "{\"bench\": \"ttft\", \"device\": \"%s\", \"delivery\": \"%s\", \"model\": \"%s\", "
        "\"prefix_tokens\": %d, "
        "\"question_tokens\": %d, \"offloaded_blocks\": %d, \"store_tokens\": %d, "
        "\"computed_tokens_restored\": %d, \"ttft_recomputed_s\": %.4f, "
        "\"ttft_restored_s\": %.4f, \"ratio_restored_to_recomputed\": %.4f, "
        "\"restored_bytes\": %d, \"restore_s\": %.4f, \"restore_gb_per_s\": %.3f, "
        "\"memcpy_gb_per_s\": %.3f%s}",
        device, ws.shm_restores > 0 ? "same-node" : "socket", config.model_id, prefix_len,
        o.question_tokens, offloaded, restored->store_tokens, restored->computed_tokens,
        recomputed->seconds, restored->seconds, restored->seconds / recomputed->seconds,
        ws.restored_bytes, ws.restore_seconds, restore_gbs, memcpy_gbs, h2d));
  }
  return lines;
}

}  // namespace kvtier::bench
