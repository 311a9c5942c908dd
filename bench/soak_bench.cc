#include "bench/soak_bench.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/child_process.h"
#include "client/cache_store_client.h"

namespace kvtier::bench {
namespace {

// 4 layers x 8 KV heads x 128 dims, bf16, 16 tokens: 256 KiB blocks.
KvLayout SoakLayout() {
  return KvLayout{.model_id = "soak", .num_layers = 4, .num_kv_heads = 8, .head_dim = 128,
                  .dtype = DType::kBf16, .tokens_per_block = 16};
}

constexpr uint32_t kTenants = 4;
constexpr uint32_t kPrompts = 4096;  // per tenant

// Prompt p: a shared system prefix (one of 8), then blocks of its own; 2-12 blocks.
std::vector<uint32_t> PromptTokens(uint32_t p) {
  const uint32_t blocks = 2 + p % 11;
  std::vector<uint32_t> t(blocks * 16);
  for (uint32_t i = 0; i < t.size(); ++i) {
    t[i] = i < 32 ? (p % 8) * 1000 + i : p * 7919 + i;
  }
  return t;
}

enum Method { kLookup, kFetch, kRelease, kPut, kDelete, kWatch, kMethods };
const char* kMethodNames[kMethods] = {"Lookup", "Fetch", "Release", "Put", "Delete", "WatchEvents"};

struct Record {
  std::mutex mu;
  std::vector<double> ms[kMethods];
  std::map<std::string, uint64_t> errors[kMethods];
};

void Observe(Record& r, Method m, double ms, const absl::Status& s) {
  std::lock_guard<std::mutex> lock(r.mu);
  r.ms[m].push_back(ms);
  if (!s.ok()) ++r.errors[m][absl::StatusCodeToString(s.code())];
}

template <typename F>
auto Timed(Record& r, Method m, F call) {
  const auto start = std::chrono::steady_clock::now();
  auto result = call();
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  if constexpr (std::is_same_v<decltype(result), absl::Status>) {
    Observe(r, m, ms, result);
  } else {
    Observe(r, m, ms, result.status());
  }
  return result;
}

// The n-th prompt only client c uses: 3 blocks shared with nobody, so deleting it races
// with no other client's Lookup or Fetch.
std::vector<uint32_t> PrivateTokens(uint32_t c, uint32_t n) {
  std::vector<uint32_t> t(3 * 16);
  for (uint32_t i = 0; i < t.size(); ++i) t[i] = 0x40000000u + (c << 20) + (n % 16384) * 48 + i;
  return t;
}

struct ProcSample {
  double t = 0;
  uint64_t rss = 0;
  uint64_t fds = 0;
  uint64_t threads = 0;
};

ProcSample Sample(pid_t pid, double t) {
  ProcSample s{.t = t};
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) s.rss = std::stoull(line.substr(6)) * 1024;
    if (line.rfind("Threads:", 0) == 0) s.threads = std::stoull(line.substr(8));
  }
  if (DIR* d = opendir(absl::StrCat("/proc/", pid, "/fd").c_str())) {
    while (readdir(d) != nullptr) ++s.fds;
    closedir(d);
    s.fds -= 2;  // . and ..
  }
  return s;
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

}  // namespace

absl::StatusOr<SoakResult> RunSoakBench(const SoakOptions& o) {
  if (o.clients == 0 || o.seconds <= 0) {
    return absl::InvalidArgumentError("--clients and --seconds must be positive");
  }
  std::string t2_dir = o.t2_dir;
  const bool own_dir = t2_dir.empty();
  if (own_dir) {
    t2_dir = std::filesystem::temp_directory_path() / absl::StrCat("kvtier-soak-", getpid());
  }
  std::filesystem::create_directories(t2_dir);
  struct Cleanup {
    std::string dir;
    bool own;
    ~Cleanup() {
      if (own) std::filesystem::remove_all(dir);
    }
  } cleanup{t2_dir, own_dir};

  const KvLayout layout = SoakLayout();
  // Each tenant may hold half of T1: limits are exercised, and no tenant takes it all.
  absl::StatusOr<std::unique_ptr<ServerProcess>> store = ServerProcess::Start(
      o.store_binary.empty() ? SiblingBinary("kvtier-store") : o.store_binary,
      {"--t1_lock=none", absl::StrCat("--t1_bytes=", o.t1_bytes),
       absl::StrCat("--t2_dir=", t2_dir), absl::StrCat("--t2_bytes=", o.t2_bytes),
       absl::StrCat("--tenant_t1_limit_bytes=", o.t1_bytes / 2), "--max_threads=256"});
  if (!store.ok()) return store.status();
  const pid_t pid = (*store)->process().pid();

  Record record;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> fetched_bytes{0}, put_blocks{0}, events{0};
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };

  std::vector<std::thread> threads;
  for (uint32_t c = 0; c < o.clients; ++c) {
    threads.emplace_back([&, c] {
      const std::string tenant = absl::StrCat("tenant-", c % kTenants);
      CacheStoreClient client({.target = (*store)->target(), .timeout = absl::Seconds(30),
                               .tenant = tenant});
      std::mt19937_64 rng(c + 1);
      // Skewed: a few prompts come back often, most rarely.
      std::discrete_distribution<uint32_t> tier_pick({70, 25, 5});
      std::vector<uint8_t> buffer;
      uint32_t private_prompts = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        const uint32_t band = tier_pick(rng);
        const uint32_t p = band == 0   ? rng() % 64
                           : band == 1 ? 64 + rng() % 1024
                                       : 1088 + rng() % (kPrompts - 1088);
        const std::vector<uint32_t> tokens = PromptTokens(p);
        const uint32_t blocks = static_cast<uint32_t>(tokens.size() / 16);
        absl::StatusOr<LookupReply> found =
            Timed(record, kLookup, [&] { return client.Lookup(layout, tokens); });
        if (!found.ok()) continue;
        if (found->matched_blocks > 0) {
          buffer.resize(uint64_t{found->matched_blocks} * layout.BlockBytes());
          std::vector<std::span<uint8_t>> out;
          for (uint32_t b = 0; b < found->matched_blocks; ++b) {
            out.push_back(std::span(buffer).subspan(uint64_t{b} * layout.BlockBytes(),
                                                    layout.BlockBytes()));
          }
          absl::StatusOr<FetchReply> got = Timed(
              record, kFetch, [&] { return client.Fetch({.lease_id = found->lease_id}, out); });
          if (got.ok()) fetched_bytes += got->bytes;
        }
        if (found->lease_id != 0) {
          (void)Timed(record, kRelease, [&] { return client.Release(found->lease_id); });
        }
        if (found->matched_blocks < blocks) {
          const uint32_t n = blocks - found->matched_blocks;
          std::vector<uint8_t> payload(uint64_t{n} * layout.BlockBytes(),
                                       static_cast<uint8_t>(p));
          absl::StatusOr<PutReply> put = Timed(record, kPut, [&] {
            return client.Put(layout, tokens, found->matched_blocks, payload);
          });
          if (put.ok()) put_blocks += put->stored_blocks;
        }
        // Now and then a prompt of this client's own, stored and then deleted (as an engine
        // drops a finished conversation). Its blocks may have been evicted meanwhile: those
        // are skipped, not NOT_FOUND.
        if (rng() % 10 == 0) {
          const std::vector<uint32_t> own = PrivateTokens(c, private_prompts++);
          std::vector<uint8_t> payload(own.size() / 16 * layout.BlockBytes(),
                                       static_cast<uint8_t>(c));
          absl::StatusOr<PutReply> put =
              Timed(record, kPut, [&] { return client.Put(layout, own, 0, payload); });
          if (put.ok()) {
            put_blocks += put->stored_blocks;
            (void)Timed(record, kDelete, [&] { return client.DeleteHeld(put->keys); });
          }
        }
      }
    });
  }
  for (uint32_t w = 0; w < std::max<uint32_t>(1, o.clients / 8); ++w) {
    threads.emplace_back([&, w] {
      CacheStoreClient client({.target = (*store)->target(), .timeout = absl::Seconds(30),
                               .tenant = absl::StrCat("tenant-", w % kTenants)});
      while (!stop.load(std::memory_order_relaxed)) {
        (void)Timed(record, kWatch, [&] {
          return client.WatchEvents(
              [&](const v1::WatchEventsResponse& m) {
                events += m.events_size();
                return !stop.load(std::memory_order_relaxed);
              },
              absl::Seconds(5));
        });
      }
    });
  }

  std::vector<ProcSample> samples;
  while (elapsed() < o.seconds) {
    samples.push_back(Sample(pid, elapsed()));
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  stop = true;
  for (std::thread& t : threads) t.join();
  samples.push_back(Sample(pid, elapsed()));
  const double seconds = elapsed();

  SoakResult result;
  for (int m = 0; m < kMethods; ++m) {
    std::string errors;
    for (const auto& [code, n] : record.errors[m]) {
      absl::StrAppend(&errors, errors.empty() ? "" : ", ", "\"", code, "\": ", n);
      if (code != "RESOURCE_EXHAUSTED") {
        result.violations.push_back(absl::StrCat(kMethodNames[m], ": ", n, " ", code));
      }
    }
    result.lines.push_back(absl::StrFormat(
        "{\"bench\": \"soak\", \"method\": \"%s\", \"calls\": %d, \"per_second\": %.1f, "
        "\"p50_ms\": %.3f, \"p99_ms\": %.3f, \"errors\": {%s}}",
        kMethodNames[m], record.ms[m].size(), record.ms[m].size() / seconds,
        Percentile(record.ms[m], 0.5), Percentile(record.ms[m], 0.99), errors));
  }
  // After the first minute (or the first sixth of a short run) the store has reached its
  // working set: from then on fds and threads may not grow.
  const double settle = std::min(60.0, o.seconds / 6);
  ProcSample first_settled{}, max{};
  bool have_settled = false;
  for (const ProcSample& s : samples) {
    if (!have_settled && s.t >= settle) {
      first_settled = s;
      have_settled = true;
    }
    max.rss = std::max(max.rss, s.rss);
    max.fds = std::max(max.fds, s.fds);
    max.threads = std::max(max.threads, s.threads);
  }
  if (!have_settled) first_settled = samples.back();
  const ProcSample& last = samples.back();
  const uint64_t max_settled_fds = [&] {
    uint64_t m = 0;
    for (const ProcSample& s : samples) if (s.t >= settle) m = std::max(m, s.fds);
    return m;
  }();
  const uint64_t max_settled_threads = [&] {
    uint64_t m = 0;
    for (const ProcSample& s : samples) if (s.t >= settle) m = std::max(m, s.threads);
    return m;
  }();
  result.lines.push_back(absl::StrFormat(
      "{\"bench\": \"soak\", \"process\": \"kvtier-store\", \"clients\": %d, \"seconds\": %.0f, "
      "\"samples\": %d, \"t1_bytes\": %d, \"rss_first_bytes\": %d, \"rss_last_bytes\": %d, "
      "\"rss_max_bytes\": %d, \"rss_max_over_t1_bytes\": %d, \"fds_settled\": %d, "
      "\"fds_max_after_settling\": %d, \"fds_last\": %d, \"threads_settled\": %d, "
      "\"threads_max_after_settling\": %d, \"threads_last\": %d, \"fetched_gb\": %.2f, "
      "\"stored_blocks\": %d, \"watch_events\": %d}",
      o.clients, seconds, samples.size(), o.t1_bytes, samples.front().rss, last.rss, max.rss,
      max.rss > o.t1_bytes ? max.rss - o.t1_bytes : 0, first_settled.fds, max_settled_fds,
      last.fds, first_settled.threads, max_settled_threads, last.threads,
      fetched_bytes.load() / 1e9, put_blocks.load(), events.load()));
  if (max.rss > o.t1_bytes + o.max_overhead_bytes) {
    result.violations.push_back(absl::StrCat("RSS reached ", max.rss, " bytes, above T1 ",
                                             o.t1_bytes, " + ", o.max_overhead_bytes));
  }
  // Connections of the clients are up by then; a few fds and threads of slack for gRPC's
  // own pools.
  if (max_settled_fds > first_settled.fds + 16) {
    result.violations.push_back(absl::StrCat("open fds grew from ", first_settled.fds, " to ",
                                             max_settled_fds));
  }
  if (max_settled_threads > first_settled.threads + 16) {
    result.violations.push_back(absl::StrCat("threads grew from ", first_settled.threads, " to ",
                                             max_settled_threads));
  }
  if (put_blocks.load() == 0 || fetched_bytes.load() == 0) {
    result.violations.push_back("no block was stored or fetched: the load did not run");
  }
  return result;
}

}  // namespace kvtier::bench
