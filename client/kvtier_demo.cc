// kvtier-demo: a short conversation against a running kvtier-store, as an inference
// engine would drive it: for each request, look up the cached prefix, fetch it (layer-major,
// as a layer-pipelined restore would), "prefill" the rest and put its full blocks.
//
// There is no model here yet (the decode worker comes later): the K/V of a block is
// stand-in bytes derived from its key, which is exactly what lets the demo check that
// every fetched byte is the byte that was stored. Exits non-zero on any mismatch.
#include <cstdio>
#include <cstring>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "client/cache_store_client.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "Store address, HOST:PORT.");
ABSL_FLAG(std::string, tenant, "demo", "Tenant to act for.");

namespace kvtier {
namespace {

// Stand-in K/V for one block: a pure function of the block's key.
void FillBlock(const BlockKey& key, std::span<uint8_t> out) {
  uint64_t x;
  std::memcpy(&x, key.bytes.data(), sizeof(x));
  for (size_t i = 0; i + 8 <= out.size(); i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(out.data() + i, &x, 8);
  }
}

std::vector<uint32_t> Span(uint32_t start, uint32_t n) {
  std::vector<uint32_t> t(n);
  for (uint32_t i = 0; i < n; ++i) t[i] = start + i;
  return t;
}

std::vector<uint32_t> Concat(std::initializer_list<std::vector<uint32_t>> parts) {
  std::vector<uint32_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

struct Totals {
  uint64_t blocks = 0, hit_blocks = 0, fetched = 0, put = 0;
};

bool Serve(CacheStoreClient& client, const KvLayout& layout, const char* name,
           const std::vector<uint32_t>& prompt, Totals& totals) {
  const absl::Time start = absl::Now();
  absl::StatusOr<LookupReply> lookup = client.Lookup(layout, prompt);
  if (!lookup.ok()) {
    std::fprintf(stderr, "lookup failed: %s\n", lookup.status().ToString().c_str());
    return false;
  }
  const uint64_t bb = layout.BlockBytes();
  const uint32_t hit = lookup->matched_blocks;
  const uint32_t total = lookup->total_blocks;
  std::vector<uint8_t> kv(uint64_t{total} * bb);  // the request's K/V, block after block
  uint64_t fetched = 0;
  if (hit > 0) {
    std::vector<std::span<uint8_t>> out;
    for (uint32_t b = 0; b < hit; ++b) out.push_back(std::span(kv).subspan(b * bb, bb));
    absl::StatusOr<FetchReply> f =
        client.Fetch({.lease_id = lookup->lease_id}, out, {.order = v1::FETCH_ORDER_LAYER_MAJOR});
    (void)client.Release(lookup->lease_id);
    if (!f.ok()) {
      std::fprintf(stderr, "fetch failed: %s\n", f.status().ToString().c_str());
      return false;
    }
    fetched = f->bytes;
    std::vector<uint8_t> expected(bb);
    for (uint32_t b = 0; b < hit; ++b) {
      FillBlock(lookup->keys[b], expected);
      if (std::memcmp(expected.data(), kv.data() + b * bb, bb) != 0) {
        std::fprintf(stderr, "block %u came back different from what was stored\n", b);
        return false;
      }
    }
  }
  uint64_t put = 0;
  if (hit < total) {
    // "Prefill" the missed blocks; their keys are the chain the store derives.
    const std::vector<BlockKey> keys =
        ChainBlockKeys(NamespaceKey(absl::GetFlag(FLAGS_tenant), layout.Fingerprint(), ""), prompt,
                       layout.tokens_per_block);
    for (uint32_t b = hit; b < total; ++b) FillBlock(keys[b], std::span(kv).subspan(b * bb, bb));
    absl::StatusOr<PutReply> r = client.Put(layout, prompt, hit, std::span(kv).subspan(hit * bb));
    if (!r.ok()) {
      std::fprintf(stderr, "put failed: %s\n", r.status().ToString().c_str());
      return false;
    }
    put = (total - hit) * bb;
  }
  std::printf("%-28s %6zu %7u %9u %9u %10.1f %10.1f %8.1f\n", name, prompt.size(), total, hit,
              hit * layout.tokens_per_block, fetched / 1048576.0, put / 1048576.0,
              absl::ToDoubleMilliseconds(absl::Now() - start));
  totals.blocks += total;
  totals.hit_blocks += hit;
  totals.fetched += fetched;
  totals.put += put;
  return true;
}

int Run() {
  ClientOptions options{.target = absl::GetFlag(FLAGS_target),
                        .timeout = absl::Seconds(30),
                        .tenant = absl::GetFlag(FLAGS_tenant)};
  CacheStoreClient client(options);
  const KvLayout layout = Llama3_8BLayout();
  std::printf("kvtier demo against %s, tenant \"%s\", layout %s (%.1f MiB per block)\n\n",
              options.target.c_str(), options.tenant.c_str(), layout.DebugString().c_str(),
              layout.BlockBytes() / 1048576.0);

  const std::vector<uint32_t> system = Span(1000, 256);  // shared system prompt
  const std::vector<uint32_t> q1 = Span(50000, 100);     // user 1, turn 1
  const std::vector<uint32_t> a1 = Span(60000, 60);      // model's answer
  const std::vector<uint32_t> q1b = Span(70000, 40);     // user 1, turn 2
  const std::vector<uint32_t> q2 = Span(80000, 75);      // user 2

  std::printf("%-28s %6s %7s %9s %9s %10s %10s %8s\n", "request", "tokens", "blocks", "hit_blks",
              "hit_toks", "fetch_MiB", "put_MiB", "ms");
  Totals totals;
  bool ok =
      Serve(client, layout, "user1 turn1 (cold)", Concat({system, q1}), totals) &&
      Serve(client, layout, "user2 (shares system)", Concat({system, q2}), totals) &&
      Serve(client, layout, "user1 turn2 (multi-turn)", Concat({system, q1, a1, q1b}), totals) &&
      Serve(client, layout, "user1 turn2 (repeat)", Concat({system, q1, a1, q1b}), totals);
  if (!ok) return 1;

  absl::StatusOr<v1::StatsResponse> stats = client.Stats();
  if (!stats.ok()) {
    std::fprintf(stderr, "stats failed: %s\n", stats.status().ToString().c_str());
    return 1;
  }
  const v1::TierStats& t1 = stats->tiers(0);
  std::printf(
      "\nsummary: %lu of %lu prompt blocks served from the cache (%.0f%%), "
      "%.1f MiB fetched, %.1f MiB stored, every fetched byte verified\n",
      totals.hit_blocks, totals.blocks, 100.0 * totals.hit_blocks / totals.blocks,
      totals.fetched / 1048576.0, totals.put / 1048576.0);
  std::printf(
      "store:   %lu blocks (%.1f of %.1f MiB) in T1 [%s], %lu lookups, %lu puts stored, "
      "%lu evictions, %lu checksum failures\n",
      t1.used_blocks(), t1.used_bytes() / 1048576.0, t1.capacity_bytes() / 1048576.0,
      t1.locked() ? "locked" : "unlocked", stats->lookups(), stats->put_stored_blocks(),
      stats->evicted_blocks(), stats->checksum_failures());
  return 0;
}

}  // namespace
}  // namespace kvtier

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return kvtier::Run();
}
