#include "bench/fetch_bench.h"

#include <chrono>
#include <cstring>
#include <random>

#include "absl/strings/str_format.h"
#include "bench/local_store.h"
#include "client/cache_store_client.h"

namespace kvtier::bench {
namespace {

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

absl::StatusOr<std::string> RunFetchBench(const FetchBenchOptions& o) {
  if (o.blocks == 0 || o.iterations <= 0) {
    return absl::InvalidArgumentError("--blocks and --iterations must be positive");
  }
  const KvLayout layout = Llama3_8BLayout(DType::kBf16, o.tokens_per_block);
  if (absl::Status s = layout.Validate(); !s.ok()) return s;
  const uint64_t block_bytes = layout.BlockBytes();
  const uint64_t total = block_bytes * o.blocks;
  absl::StatusOr<std::unique_ptr<LocalStore>> store =
      LocalStore::Start(block_bytes, o.blocks, o.same_node);
  if (!store.ok()) return store.status();
  ClientOptions co = (*store)->client_options();
  co.timeout = absl::Minutes(5);
  CacheStoreClient client(co);

  std::vector<uint32_t> tokens(uint64_t{o.blocks} * o.tokens_per_block);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<uint32_t>(i * 2654435761u);
  std::vector<uint8_t> payload(total);
  std::mt19937_64 rng(1);
  for (size_t i = 0; i + 8 <= payload.size(); i += 8) {
    const uint64_t r = rng();
    std::memcpy(&payload[i], &r, 8);
  }
  absl::StatusOr<PutReply> put = client.Put(layout, tokens, 0, payload);
  if (!put.ok()) return put.status();
  if (put->keys.size() != o.blocks) return absl::InternalError("the store kept fewer blocks");

  std::vector<uint8_t> heap;
  std::unique_ptr<SharedMemoryRegion> region;
  uint8_t* out = nullptr;
  if (!o.same_node) {
    heap.resize(total);
    out = heap.data();
  } else {
    absl::StatusOr<std::unique_ptr<SharedMemoryRegion>> r = SharedMemoryRegion::Create(total);
    if (!r.ok()) return r.status();
    region = *std::move(r);
    out = region->data();
  }
  std::vector<std::span<uint8_t>> spans;
  for (uint32_t b = 0; b < o.blocks; ++b) spans.emplace_back(out + b * block_bytes, block_bytes);
  FetchTarget target{.keys = put->keys};
  // The reference: the same bytes copied between two private buffers (both touched first),
  // whatever memory the fetch lands in.
  std::vector<uint8_t> reference(total, 0);
  double best_fetch = 1e30, best_copy = 1e30;
  for (int i = 0; i < o.iterations; ++i) {
    std::memset(out, 0, total);
    auto start = std::chrono::steady_clock::now();
    absl::StatusOr<FetchReply> reply = client.Fetch(
        target, spans,
        {.order = o.layer_major ? v1::FETCH_ORDER_LAYER_MAJOR : v1::FETCH_ORDER_BLOCK_MAJOR,
         .shm = region.get()});
    if (!reply.ok()) return reply.status();
    best_fetch = std::min(best_fetch, Seconds(start));
    if (std::memcmp(out, payload.data(), total) != 0) {
      return absl::DataLossError("the fetched bytes differ from the stored ones");
    }
    start = std::chrono::steady_clock::now();
    std::memcpy(reference.data(), payload.data(), total);
    best_copy = std::min(best_copy, Seconds(start));
  }
  const double fetch_gbs = total / best_fetch / 1e9, copy_gbs = total / best_copy / 1e9;
  return absl::StrFormat(
      "{\"bench\": \"fetch\", \"delivery\": \"%s\", \"order\": \"%s\", \"blocks\": %d, "
      "\"block_bytes\": %d, "
      "\"layer_bytes\": %d, \"fetch_s\": %.4f, \"fetch_gb_per_s\": %.3f, "
      "\"memcpy_gb_per_s\": %.3f, \"fetch_vs_memcpy\": %.3f}",
      o.same_node ? "same-node" : "socket", o.layer_major ? "layer-major" : "block-major", o.blocks,
      block_bytes, layout.LayerBytes(), best_fetch, fetch_gbs, copy_gbs, fetch_gbs / copy_gbs);
}

}  // namespace kvtier::bench
