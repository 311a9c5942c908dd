#include "bench/lookup_bench.h"

#include <algorithm>
#include <chrono>
#include <regex>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/child_process.h"
#include "client/cache_store_client.h"

namespace kvtier::bench {
namespace {

constexpr uint32_t kTokensPerBlock = 16;

KvLayout BenchLayout() {
  return KvLayout{.model_id = "lookup-bench",
                  .num_layers = 1,
                  .num_kv_heads = 1,
                  .head_dim = 64,
                  .dtype = DType::kFp16,
                  .tokens_per_block = kTokensPerBlock};  // 4 KiB blocks
}

// (sum, count) of the store's Lookup duration histogram.
absl::StatusOr<std::pair<double, double>> LookupTimer(int metrics_port) {
  absl::StatusOr<std::string> body = HttpGet(metrics_port, "/metrics");
  if (!body.ok()) return body.status();
  auto value = [&](const std::string& series) -> absl::StatusOr<double> {
    const std::regex re(series + R"(\{[^}]*method="Lookup"[^}]*\} ([0-9.eE+-]+))");
    std::smatch m;
    double v = 0;
    if (!std::regex_search(*body, m, re) || !absl::SimpleAtod(m[1].str(), &v)) {
      return absl::NotFoundError(absl::StrCat("no ", series, " for Lookup in /metrics"));
    }
    return v;
  };
  absl::StatusOr<double> sum = value("kvtier_rpc_duration_seconds_sum");
  if (!sum.ok()) return sum.status();
  absl::StatusOr<double> count = value("kvtier_rpc_duration_seconds_count");
  if (!count.ok()) return count.status();
  return std::make_pair(*sum, *count);
}

std::vector<uint32_t> Prompt(uint32_t n, uint32_t seed) {
  std::vector<uint32_t> p(n);
  // Token ids of a 128k vocabulary (Llama-3), as a real prompt carries them.
  for (uint32_t i = 0; i < n; ++i) p[i] = ((i * 2654435761u) ^ (seed * 40503u)) % 128256;
  return p;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> RunLookupBench(const LookupBenchOptions& o) {
  if (o.prompt_tokens.empty() || o.iterations <= 0) {
    return absl::InvalidArgumentError("--tokens needs at least one length and --iterations > 0");
  }
  const uint32_t longest = *std::max_element(o.prompt_tokens.begin(), o.prompt_tokens.end());
  const KvLayout layout = BenchLayout();
  const uint64_t blocks = longest / kTokensPerBlock;
  if (blocks == 0) return absl::InvalidArgumentError("prompts must hold at least one block");
  absl::StatusOr<std::unique_ptr<ServerProcess>> store = ServerProcess::Start(
      o.store_binary.empty() ? SiblingBinary("kvtier-store") : o.store_binary,
      {"--t1_lock=none", absl::StrCat("--t1_min_slot_bytes=", layout.BlockBytes()),
       absl::StrCat("--t1_bytes=", (blocks + 16) * layout.BlockBytes()),
       absl::StrCat("--max_prompt_tokens=", std::max<uint32_t>(longest, 1 << 21))});
  if (!store.ok()) return store.status();
  CacheStoreClient client({.target = (*store)->target(), .timeout = absl::Minutes(2)});

  const std::vector<uint32_t> cached = Prompt(longest, 1);
  std::vector<uint8_t> payload(blocks * layout.BlockBytes());
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<uint8_t>(i * 131 + 7);
  absl::StatusOr<PutReply> put = client.Put(layout, cached, 0, payload);
  if (!put.ok()) return put.status();

  std::vector<std::string> lines;
  for (uint32_t tokens : o.prompt_tokens) {
    for (const bool hit : {true, false}) {
      const std::vector<uint32_t> prompt =
          hit ? std::vector<uint32_t>(cached.begin(), cached.begin() + tokens) : Prompt(tokens, 2);
      absl::StatusOr<std::pair<double, double>> before = LookupTimer((*store)->metrics_port());
      if (!before.ok()) return before.status();
      std::vector<double> round_trips;
      for (int i = 0; i < o.iterations; ++i) {
        const auto start = std::chrono::steady_clock::now();
        absl::StatusOr<LookupReply> reply = client.Lookup(layout, prompt);
        round_trips.push_back(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
        if (!reply.ok()) return reply.status();
        const uint32_t expected = hit ? tokens / kTokensPerBlock : 0;
        if (reply->matched_blocks != expected) {
          return absl::InternalError(absl::StrCat("the lookup matched ", reply->matched_blocks,
                                                  " blocks, expected ", expected));
        }
        if (reply->lease_id != 0) {
          if (absl::Status s = client.Release(reply->lease_id); !s.ok()) return s;
        }
      }
      absl::StatusOr<std::pair<double, double>> after = LookupTimer((*store)->metrics_port());
      if (!after.ok()) return after.status();
      const double calls = after->second - before->second;
      if (calls != o.iterations) {
        return absl::InternalError(
            absl::StrCat("the store counted ", calls, " lookups, not ", o.iterations));
      }
      std::sort(round_trips.begin(), round_trips.end());
      lines.push_back(absl::StrFormat(
          "{\"bench\": \"lookup\", \"prompt_tokens\": %d, \"blocks\": %d, \"cached\": %s, "
          "\"calls\": %d, \"server_ms\": %.3f, \"round_trip_ms_p50\": %.3f, "
          "\"round_trip_ms_best\": %.3f}",
          tokens, tokens / kTokensPerBlock, hit ? "true" : "false", o.iterations,
          (after->first - before->first) / calls * 1e3, round_trips[round_trips.size() / 2] * 1e3,
          round_trips.front() * 1e3));
    }
  }
  return lines;
}

}  // namespace kvtier::bench
