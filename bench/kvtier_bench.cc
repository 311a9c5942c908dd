// kvtier-bench: the benchmarks of kvtier, one subcommand each (the table at the bottom of
// this file; `kvtier-bench --help` lists them, `kvtier-bench SUBCOMMAND --help` shows one
// with its flags). Every figure is printed as JSON next to a reference measured in the same
// run (docs/benchmarks.md).
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "bench/attention_bench.h"
#include "bench/copy_bench.h"
#include "bench/datapath_bench.h"
#include "bench/fetch_bench.h"
#include "bench/cluster_bench.h"
#include "bench/grpc_stream.h"
#include "bench/lookup_bench.h"
#include "bench/policy_cost_bench.h"
#include "bench/replay.h"
#include "bench/trace.h"
#include "bench/capacity_bench.h"
#include "bench/noisy_neighbor_bench.h"
#include "bench/soak_bench.h"
#include "bench/kvquant_bench.h"
#include "bench/ttft_bench.h"
#include "kernels/dispatch.h"

ABSL_FLAG(std::string, trace, "", "replay: Mooncake-format JSONL trace.");
ABSL_FLAG(uint64_t, capacity_blocks, 0, "replay: T1 capacity in blocks.");
ABSL_FLAG(double, capacity_fraction, 0,
          "replay: T1 capacity as a fraction of the trace's unique blocks (instead of "
          "--capacity_blocks; rounded down as trace_oracle.py does).");
ABSL_FLAG(uint64_t, ssd_capacity_blocks, 0, "replay: T2 capacity in blocks (0: no T2).");
ABSL_FLAG(double, ssd_capacity_fraction, 0, "replay: T2 capacity as a fraction of unique blocks.");
ABSL_FLAG(std::string, ssd_dir, "",
          "replay: T2 directory (default: a fresh temporary directory, removed afterwards).");
ABSL_FLAG(std::string, policy, "adaptive",
          "replay: T1 eviction policy (adaptive, lru; adaptive:-INGREDIENT,... turns "
          "ingredients off for an ablation, docs/policy.md).");
ABSL_FLAG(std::string, ssd_policy, "slru", "replay: T2 eviction policy (slru, lru, adaptive).");
ABSL_FLAG(std::string, t2_admission, "predict",
          "replay: which T1 victims T2 takes (predict, reuse, score, all).");
ABSL_FLAG(double, t2_admit_min_score, 0.05,
          "replay: T2 admission score/reuse threshold for blocks without shown reuse.");
ABSL_FLAG(double, t2_admit_min_return, 0.04,
          "replay: T2 admission predict threshold for blocks without shown reuse.");
ABSL_FLAG(bool, t2_keep_promoted_copy, false, "replay: promoted T2 blocks keep their T2 copy.");
ABSL_FLAG(uint32_t, t2_promote_after_reads, 8,
          "replay: a T2 block moves to T1 on its Nth read from T2 (0: never).");
ABSL_FLAG(bool, output_tokens, true,
          "replay: each Put reports its request's output_length from the trace (false: as a "
          "client that does not know it).");
ABSL_FLAG(int, t2_read_threads, 8, "replay: T2 reader threads.");
ABSL_FLAG(int, t2_write_threads, 4, "replay: T2 writer threads.");
ABSL_FLAG(bool, t2_sync, false,
          "replay: T2 I/O as before the I/O threads (one reader, one writer, every write done "
          "before the next request): the reference for the speed-up.");
ABSL_FLAG(std::string, mode, "engine",
          "replay: engine (BlockStore in process) or grpc (a running kvtier-store; start it "
          "with --t1_min_slot_bytes=4096 --t1_bytes=<blocks x 4096>).");
ABSL_FLAG(std::string, target, "127.0.0.1:50051",
          "replay --mode=grpc: the store (HOST:PORT), or a cluster of shards "
          "(HOST:PORT,HOST:PORT or dns:///NAME:PORT).");
ABSL_FLAG(uint32_t, replication, 1, "replay --mode=grpc with a cluster: copies of each block.");
ABSL_FLAG(std::string, tenant, "replay", "replay --mode=grpc: x-kvtier-tenant to send.");
ABSL_FLAG(std::string, shards, "1,2,4", "cluster: shard counts to compare (1 always runs).");
ABSL_FLAG(uint32_t, placement_span, 128,
          "cluster: consecutive blocks of a prompt placed on the same shards.");
ABSL_FLAG(uint64_t, limit_requests, 0, "replay: replay only the first N requests (0: all).");
ABSL_FLAG(uint32_t, concurrency, 1,
          "replay: requests in flight at once, taken in trace order (engine mode; 1: one after "
          "another).");
ABSL_FLAG(std::string, batches, "1,16", "attention: batch sizes (comma-separated).");
ABSL_FLAG(std::string, contexts, "1024,4096", "attention: context lengths in tokens.");
ABSL_FLAG(int32_t, threads, 0, "attention, copy: CPU threads (0: all cores).");
ABSL_FLAG(int32_t, iterations, 3,
          "attention, copy, fetch, lookup: runs per measurement (CPU: the best is reported; GPU: "
          "the mean "
          "after one warm-up).");
ABSL_FLAG(std::string, backend, "auto",
          "attention, copy, ttft: auto (cuda when a GPU is present), cpu or cuda.");
ABSL_FLAG(std::string, prefixes, "1024,8192",
          "ttft: cached prefix lengths in tokens (multiples of 16; comma-separated).");
ABSL_FLAG(uint32_t, question_tokens, 16, "ttft: tokens after the cached prefix.");
ABSL_FLAG(double, guarantee_fraction, 0.05,
          "noisy: tenant b's T1 guarantee as a fraction of the trace's unique blocks.");
ABSL_FLAG(double, store_multiple, 4, "noisy: the shared store's size in b's guarantees.");
ABSL_FLAG(uint32_t, scan_requests, 4, "noisy: tenant a's scan prompts before each b request.");
ABSL_FLAG(uint32_t, scan_blocks, 32, "noisy: blocks of each scan prompt (all new).");
ABSL_FLAG(bool, limit_at_guarantee, false,
          "noisy: b's T1 limit equals its guarantee (a cache of exactly G in the shared store).");
ABSL_FLAG(std::string, neighbour_trace, "",
          "noisy: tenant a replays this Mooncake-format trace instead of the scan "
          "(--scan_requests of its requests before each b request; it stops at its end).");
ABSL_FLAG(double, min_ratio, 0,
          "noisy: exit 1 when b's hit rate with quotas is below this times its hit rate alone "
          "(0: never).");
ABSL_FLAG(uint32_t, soak_clients, 32, "soak: concurrent clients.");
ABSL_FLAG(double, soak_seconds, 600, "soak: how long the load runs.");
ABSL_FLAG(uint64_t, soak_t1_bytes, uint64_t{256} << 20, "soak: the store's T1 bytes.");
ABSL_FLAG(uint64_t, soak_t2_bytes, uint64_t{1} << 30, "soak: the store's T2 bytes.");
ABSL_FLAG(uint64_t, max_overhead_bytes, uint64_t{512} << 20,
          "soak: the store's RSS may exceed T1 by at most this.");
ABSL_FLAG(uint64_t, tier_bytes, uint64_t{1} << 30, "capacity: the tier's size in bytes.");
ABSL_FLAG(uint32_t, prompts, 300, "kvquant: prompts.");
ABSL_FLAG(uint32_t, prompt_tokens, 64, "kvquant: tokens per prompt.");
ABSL_FLAG(uint32_t, generate, 64, "kvquant: greedy tokens generated after each prompt.");
ABSL_FLAG(std::string, quant_model, "small",
          "kvquant: model dimensions, tiny (2 layers, hidden 128) or small (4 layers, hidden "
          "512); seeded weights.");
ABSL_FLAG(std::string, model, "tiny", "ttft: model dimensions, tiny or llama-3-8b.");
ABSL_FLAG(uint32_t, policy_blocks, 2048, "policy_cost: the tier's size in blocks.");
ABSL_FLAG(uint64_t, policy_references, 2'000'000, "policy_cost: references in the stream.");
ABSL_FLAG(double, hot_share, 0.7,
          "policy_cost: share of references to a hot set of 2 x policy_blocks keys (the rest "
          "are new keys).");
ABSL_FLAG(uint32_t, pages, 128, "copy: 2 MiB pages (Llama-3-8B blocks) to restore.");
ABSL_FLAG(uint32_t, blocks, 256, "fetch: blocks (Llama-3-8B layout) to fetch.");
ABSL_FLAG(uint32_t, tokens_per_block, 16, "fetch: tokens per block (16: 2 MiB blocks).");
ABSL_FLAG(std::string, order, "layer-major", "fetch: layer-major (a restore) or block-major.");
ABSL_FLAG(bool, same_node, false,
          "fetch, ttft: move the blocks through the same-node data plane (an attached "
          "shared-memory region) instead of the socket.");
ABSL_FLAG(std::string, tokens, "8192,32768,131072",
          "lookup: prompt lengths in tokens (comma-separated).");
ABSL_FLAG(std::string, store_binary, "",
          "lookup, datapath: the kvtier-store binary to start (default: the one built beside "
          "this program).");
ABSL_FLAG(uint64_t, value_bytes, 2 << 20,
          "datapath: bytes per value (Redis) and per block (kvtier; a multiple of 131072).");
ABSL_FLAG(std::string, clients, "1,4,16", "datapath: client counts (comma-separated).");
ABSL_FLAG(double, seconds, 2, "datapath: seconds each measurement runs.");
ABSL_FLAG(uint32_t, blocks_per_call, 256,
          "datapath: blocks per same-node Fetch or Put (a restore's worth).");
ABSL_FLAG(std::string, redis_server, "redis-server", "datapath: the redis-server to start.");
ABSL_FLAG(std::string, redis_benchmark, "redis-benchmark", "datapath: its benchmark client.");
ABSL_FLAG(std::string, parts, "references,redis,grpc,socket,same_node",
          "datapath: what to run (comma-separated); ratios to a reference left out are omitted.");
ABSL_FLAG(uint64_t, fragment_bytes, 65536,
          "copy: bytes per fragment (65536: one layer of one page); must divide 2 MiB.");

namespace kvtier::bench {
namespace {

uint64_t FromFraction(double fraction, uint64_t unique) {
  return std::max<uint64_t>(1, static_cast<uint64_t>(static_cast<double>(unique) * fraction));
}

int Fail(const absl::Status& s) {
  std::cerr << "kvtier-bench: " << s.message() << "\n";
  return 1;
}

int RunReplay() {
  const std::string path = absl::GetFlag(FLAGS_trace);
  if (path.empty()) return Fail(absl::InvalidArgumentError("replay needs --trace FILE"));
  absl::StatusOr<std::vector<TraceRequest>> trace = LoadTrace(path);
  if (!trace.ok()) return Fail(trace.status());
  if (!absl::GetFlag(FLAGS_output_tokens)) {
    for (TraceRequest& r : *trace) r.output_length = 0;
  }
  const uint64_t unique = UniqueBlocks(*trace);

  uint64_t capacity = absl::GetFlag(FLAGS_capacity_blocks);
  if (absl::GetFlag(FLAGS_capacity_fraction) > 0) {
    capacity = FromFraction(absl::GetFlag(FLAGS_capacity_fraction), unique);
  }
  uint64_t ssd_capacity = absl::GetFlag(FLAGS_ssd_capacity_blocks);
  if (absl::GetFlag(FLAGS_ssd_capacity_fraction) > 0) {
    ssd_capacity = FromFraction(absl::GetFlag(FLAGS_ssd_capacity_fraction), unique);
  }

  const std::string mode = absl::GetFlag(FLAGS_mode);
  std::unique_ptr<ReplayBackend> backend;
  std::string temp_dir;
  if (mode == "engine") {
    if (capacity == 0) {
      return Fail(absl::InvalidArgumentError(
          "replay --mode=engine needs --capacity_blocks or --capacity_fraction"));
    }
    std::string ssd_dir = absl::GetFlag(FLAGS_ssd_dir);
    if (ssd_capacity > 0 && ssd_dir.empty()) {
      std::string pattern =
          (std::filesystem::temp_directory_path() / "kvtier-replay-XXXXXX").string();
      if (mkdtemp(pattern.data()) == nullptr) {
        return Fail(absl::InternalError("cannot create a temporary T2 directory"));
      }
      ssd_dir = temp_dir = pattern;
    }
    absl::StatusOr<std::unique_ptr<ReplayBackend>> b =
        MakeEngineBackend({.capacity_blocks = capacity,
                           .ssd_capacity_blocks = ssd_capacity,
                           .ssd_dir = ssd_dir,
                           .policy = absl::GetFlag(FLAGS_policy),
                           .ssd_policy = absl::GetFlag(FLAGS_ssd_policy),
                           .t2_admit_min_score = absl::GetFlag(FLAGS_t2_admit_min_score),
                           .t2_admission = absl::GetFlag(FLAGS_t2_admission),
                           .t2_admit_min_return = absl::GetFlag(FLAGS_t2_admit_min_return),
                           .t2_keep_promoted_copy = absl::GetFlag(FLAGS_t2_keep_promoted_copy),
                           .t2_promote_after_reads = absl::GetFlag(FLAGS_t2_promote_after_reads),
                           .t2_read_threads = absl::GetFlag(FLAGS_t2_read_threads),
                           .t2_write_threads = absl::GetFlag(FLAGS_t2_write_threads),
                           .t2_sync = absl::GetFlag(FLAGS_t2_sync)});
    if (!b.ok()) return Fail(b.status());
    backend = *std::move(b);
  } else if (mode == "grpc") {
    absl::StatusOr<std::unique_ptr<ReplayBackend>> b = MakeGrpcBackend(
        {.target = absl::GetFlag(FLAGS_target),
         .tenant = absl::GetFlag(FLAGS_tenant),
         .replication = absl::GetFlag(FLAGS_replication)});
    if (!b.ok()) return Fail(b.status());
    backend = *std::move(b);
    // The server's capacities are the ones measured; a different request is an error
    // rather than a silently different experiment.
    absl::StatusOr<ReplayBackend::Counters> server = backend->Stats();
    if (!server.ok()) return Fail(server.status());
    if (capacity != 0 && capacity != server->capacity_blocks) {
      return Fail(absl::FailedPreconditionError(absl::StrCat(
          "the store at ", absl::GetFlag(FLAGS_target), " holds ", server->capacity_blocks,
          " T1 blocks but ", capacity, " were asked; start it with --t1_min_slot_bytes=",
          kReplaySlotBytes, " --t1_bytes=", capacity * kReplaySlotBytes)));
    }
  } else {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("unknown --mode \"", mode, "\"; use engine or grpc")));
  }

  absl::StatusOr<ReplayResult> result =
      Replay(*trace, *backend, absl::GetFlag(FLAGS_limit_requests),
             absl::GetFlag(FLAGS_concurrency));
  backend.reset();
  if (!temp_dir.empty()) std::filesystem::remove_all(temp_dir);
  if (!result.ok()) return Fail(result.status());
  result->trace = std::filesystem::path(path).filename().string();
  result->mode = mode;
  result->unique_blocks = unique;
  std::cout << result->ToJson() << std::endl;
  return 0;
}

absl::StatusOr<std::vector<uint32_t>> ParseList(const std::string& flag, const std::string& text) {
  std::vector<uint32_t> out;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    uint32_t v = 0;
    if (!absl::SimpleAtoi(part, &v) || v == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--", flag, " takes positive integers separated by commas, got \"", text, "\""));
    }
    out.push_back(v);
  }
  return out;
}

absl::StatusOr<kernels::Backend> BackendFlag() {
  kernels::KernelContext context;
  if (absl::Status s = kernels::ContextFromName(absl::GetFlag(FLAGS_backend), &context); !s.ok()) {
    return s;
  }
  return context.backend;
}

int RunTtft() {
  absl::StatusOr<std::vector<uint32_t>> prefixes =
      ParseList("prefixes", absl::GetFlag(FLAGS_prefixes));
  if (!prefixes.ok()) return Fail(prefixes.status());
  absl::StatusOr<kernels::Backend> backend = BackendFlag();
  if (!backend.ok()) return Fail(backend.status());
  absl::StatusOr<std::vector<std::string>> lines =
      RunTtftBench({.prefixes = *prefixes,
                    .question_tokens = absl::GetFlag(FLAGS_question_tokens),
                    .model = absl::GetFlag(FLAGS_model),
                    .threads = absl::GetFlag(FLAGS_threads),
                    .backend = *backend,
                    .same_node = absl::GetFlag(FLAGS_same_node)});
  if (!lines.ok()) return Fail(lines.status());
  for (const std::string& line : *lines) std::cout << line << std::endl;
  return 0;
}

int RunCapacity() {
  absl::StatusOr<std::vector<std::string>> lines =
      RunCapacityBench(absl::GetFlag(FLAGS_tier_bytes));
  if (!lines.ok()) return Fail(lines.status());
  for (const std::string& line : *lines) std::cout << line << std::endl;
  return 0;
}

int RunNoisy() {
  const std::string path = absl::GetFlag(FLAGS_trace);
  if (path.empty()) return Fail(absl::InvalidArgumentError("noisy needs --trace"));
  absl::StatusOr<std::vector<TraceRequest>> trace = LoadTrace(path);
  if (!trace.ok()) return Fail(trace.status());
  std::vector<TraceRequest> neighbour;
  if (const std::string n = absl::GetFlag(FLAGS_neighbour_trace); !n.empty()) {
    absl::StatusOr<std::vector<TraceRequest>> t = LoadTrace(n);
    if (!t.ok()) return Fail(t.status());
    neighbour = *std::move(t);
  }
  absl::StatusOr<NoisyNeighborResult> r = RunNoisyNeighborBench(
      *trace, std::filesystem::path(path).filename().string(),
      {.guarantee_fraction = absl::GetFlag(FLAGS_guarantee_fraction),
       .store_multiple = absl::GetFlag(FLAGS_store_multiple),
       .scan_requests = absl::GetFlag(FLAGS_scan_requests),
       .scan_blocks = absl::GetFlag(FLAGS_scan_blocks),
       .policy = absl::GetFlag(FLAGS_policy),
       .limit = absl::GetFlag(FLAGS_limit_requests),
       .limit_at_guarantee = absl::GetFlag(FLAGS_limit_at_guarantee),
       .neighbour = std::move(neighbour)});
  if (!r.ok()) return Fail(r.status());
  for (const std::string& line : r->lines) std::cout << line << std::endl;
  const double min_ratio = absl::GetFlag(FLAGS_min_ratio);
  if (min_ratio > 0 && r->with_quota < min_ratio * r->alone) {
    std::cerr << "b's hit rate with quotas " << r->with_quota << " is below " << min_ratio
              << " x its hit rate alone " << r->alone << std::endl;
    return 1;
  }
  return 0;
}

int RunSoak() {
  absl::StatusOr<SoakResult> r = RunSoakBench({.clients = absl::GetFlag(FLAGS_soak_clients),
                                               .seconds = absl::GetFlag(FLAGS_soak_seconds),
                                               .t1_bytes = absl::GetFlag(FLAGS_soak_t1_bytes),
                                               .t2_bytes = absl::GetFlag(FLAGS_soak_t2_bytes),
                                               .max_overhead_bytes =
                                                   absl::GetFlag(FLAGS_max_overhead_bytes),
                                               .store_binary = absl::GetFlag(FLAGS_store_binary)});
  if (!r.ok()) return Fail(r.status());
  for (const std::string& line : r->lines) std::cout << line << std::endl;
  for (const std::string& v : r->violations) std::cerr << "soak: " << v << std::endl;
  return r->violations.empty() ? 0 : 1;
}

int RunKvQuant() {
  absl::StatusOr<std::vector<std::string>> lines =
      RunKvQuantBench({.prompts = absl::GetFlag(FLAGS_prompts),
                       .prompt_tokens = absl::GetFlag(FLAGS_prompt_tokens),
                       .generate = absl::GetFlag(FLAGS_generate),
                       .model = absl::GetFlag(FLAGS_quant_model),
                       .threads = absl::GetFlag(FLAGS_threads)});
  if (!lines.ok()) return Fail(lines.status());
  for (const std::string& line : *lines) std::cout << line << std::endl;
  return 0;
}

int RunFetch() {
  const std::string order = absl::GetFlag(FLAGS_order);
  if (order != "layer-major" && order != "block-major") {
    return Fail(absl::InvalidArgumentError("--order must be layer-major or block-major"));
  }
  absl::StatusOr<std::string> line =
      RunFetchBench({.blocks = absl::GetFlag(FLAGS_blocks),
                     .tokens_per_block = absl::GetFlag(FLAGS_tokens_per_block),
                     .layer_major = order == "layer-major",
                     .same_node = absl::GetFlag(FLAGS_same_node),
                     .iterations = absl::GetFlag(FLAGS_iterations)});
  if (!line.ok()) return Fail(line.status());
  std::cout << *line << std::endl;
  return 0;
}

int RunCopy() {
  absl::StatusOr<kernels::Backend> backend = BackendFlag();
  if (!backend.ok()) return Fail(backend.status());
  absl::StatusOr<std::vector<std::string>> lines =
      RunCopyBench({.backend = *backend,
                    .pages = absl::GetFlag(FLAGS_pages),
                    .fragment_bytes = absl::GetFlag(FLAGS_fragment_bytes),
                    .threads = absl::GetFlag(FLAGS_threads),
                    .iterations = absl::GetFlag(FLAGS_iterations)});
  if (!lines.ok()) return Fail(lines.status());
  for (const std::string& line : *lines) std::cout << line << std::endl;
  return 0;
}

int RunAttention() {
  absl::StatusOr<kernels::Backend> backend = BackendFlag();
  if (!backend.ok()) return Fail(backend.status());
  absl::StatusOr<std::vector<uint32_t>> batches =
      ParseList("batches", absl::GetFlag(FLAGS_batches));
  if (!batches.ok()) return Fail(batches.status());
  absl::StatusOr<std::vector<uint32_t>> contexts =
      ParseList("contexts", absl::GetFlag(FLAGS_contexts));
  if (!contexts.ok()) return Fail(contexts.status());
  absl::StatusOr<std::vector<std::string>> lines =
      RunAttentionBench({.backend = *backend,
                         .batches = *batches,
                         .contexts = *contexts,
                         .threads = absl::GetFlag(FLAGS_threads),
                         .iterations = absl::GetFlag(FLAGS_iterations)});
  if (!lines.ok()) return Fail(lines.status());
  for (const std::string& line : *lines) std::cout << line << std::endl;
  return 0;
}

int RunLookup() {
  absl::StatusOr<std::vector<uint32_t>> tokens = ParseList("tokens", absl::GetFlag(FLAGS_tokens));
  if (!tokens.ok()) return Fail(tokens.status());
  absl::StatusOr<std::vector<std::string>> lines =
      RunLookupBench({.prompt_tokens = *tokens,
                      .iterations = absl::GetFlag(FLAGS_iterations),
                      .store_binary = absl::GetFlag(FLAGS_store_binary)});
  if (!lines.ok()) return Fail(lines.status());
  for (const std::string& line : *lines) std::cout << line << std::endl;
  return 0;
}

int RunPolicyCost() {
  absl::StatusOr<std::vector<std::string>> lines =
      RunPolicyCostBench({.tier_blocks = absl::GetFlag(FLAGS_policy_blocks),
                          .references = absl::GetFlag(FLAGS_policy_references),
                          .hot_share = absl::GetFlag(FLAGS_hot_share),
                          .iterations = absl::GetFlag(FLAGS_iterations)});
  if (!lines.ok()) return Fail(lines.status());
  for (const std::string& line : *lines) std::cout << line << std::endl;
  return 0;
}

int RunCluster() {
  absl::StatusOr<std::vector<uint32_t>> shards = ParseList("shards", absl::GetFlag(FLAGS_shards));
  if (!shards.ok()) return Fail(shards.status());
  absl::StatusOr<std::vector<std::string>> lines =
      RunClusterBench({.trace = absl::GetFlag(FLAGS_trace),
                       .shards = *shards,
                       .capacity_fraction = absl::GetFlag(FLAGS_capacity_fraction),
                       .replication = absl::GetFlag(FLAGS_replication),
                       .limit_requests = absl::GetFlag(FLAGS_limit_requests),
                       .store_binary = absl::GetFlag(FLAGS_store_binary),
                       .policy = absl::GetFlag(FLAGS_policy),
                       .placement_span = absl::GetFlag(FLAGS_placement_span)});
  if (!lines.ok()) return Fail(lines.status());
  for (const std::string& line : *lines) std::cout << line << std::endl;
  return 0;
}

int RunDatapath() {
  absl::StatusOr<std::vector<uint32_t>> clients =
      ParseList("clients", absl::GetFlag(FLAGS_clients));
  if (!clients.ok()) return Fail(clients.status());
  std::error_code ec;
  const std::string self = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  const std::string parts = absl::GetFlag(FLAGS_parts);
  std::set<std::string> wanted;
  for (absl::string_view p : absl::StrSplit(parts, ',', absl::SkipEmpty()))
    wanted.insert(std::string(p));
  for (const std::string& p : wanted) {
    if (p != "references" && p != "redis" && p != "grpc" && p != "socket" && p != "same_node") {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          "--parts takes references, redis, grpc, socket, same_node; got \"", p, "\"")));
    }
  }
  absl::StatusOr<std::vector<std::string>> lines =
      RunDatapathBench({.value_bytes = absl::GetFlag(FLAGS_value_bytes),
                        .clients = *clients,
                        .seconds = absl::GetFlag(FLAGS_seconds),
                        .blocks_per_call = absl::GetFlag(FLAGS_blocks_per_call),
                        .store_binary = absl::GetFlag(FLAGS_store_binary),
                        .self_binary = self,
                        .redis_server = absl::GetFlag(FLAGS_redis_server),
                        .redis_benchmark = absl::GetFlag(FLAGS_redis_benchmark),
                        .run_references = wanted.contains("references"),
                        .run_redis = wanted.contains("redis"),
                        .run_grpc = wanted.contains("grpc"),
                        .run_socket = wanted.contains("socket"),
                        .run_same_node = wanted.contains("same_node")});
  if (!lines.ok()) return Fail(lines.status());
  for (const std::string& line : *lines) std::cout << line << std::endl;
  return 0;
}

struct Subcommand {
  const char* name;
  const char* summary;
  std::vector<const char*> flags;
  int (*run)();
};

const std::vector<Subcommand>& Subcommands() {
  static const auto* table = new std::vector<Subcommand>{
      {"replay",
       "replay a Mooncake-format trace against the engine in process or a running "
       "kvtier-store; prints the prefix hit rate (bench/replay.h)",
       {"trace", "capacity_blocks", "capacity_fraction", "ssd_capacity_blocks",
        "ssd_capacity_fraction", "ssd_dir", "policy", "ssd_policy", "t2_admission", "t2_keep_promoted_copy", "t2_promote_after_reads",
        "t2_read_threads", "t2_write_threads", "t2_sync", "t2_admit_min_score", "t2_admit_min_return",
        "output_tokens", "concurrency", "mode",
        "target", "replication", "tenant", "limit_requests"},
       RunReplay},
      {"attention",
       "paged decode attention: K/V GB/s against a plain copy in the same run "
       "(bench/attention_bench.h)",
       {"batches", "contexts", "threads", "iterations", "backend"},
       RunAttention},
      {"copy",
       "the restore copy, staging to scattered pages, against one plain copy of the same bytes "
       "(bench/copy_bench.h)",
       {"pages", "fragment_bytes", "threads", "iterations", "backend"},
       RunCopy},
      {"ttft",
       "time to first token with the prefix restored from a store vs recomputed "
       "(bench/ttft_bench.h)",
       {"prefixes", "question_tokens", "model", "threads", "backend", "same_node"},
       RunTtft},
      {"capacity",
       "blocks of real layouts (Llama-3-8B/70B, fp8/int8, DeepSeek-V3 MLA) a tier of "
       "--tier_bytes holds in its size classes of slabs (bench/capacity_bench.h)",
       {"tier_bytes"},
       RunCapacity},
      {"noisy",
       "tenant isolation: one tenant's trace hit rate while another floods the store with a "
       "scan, alone / with its quota / without (bench/noisy_neighbor_bench.h)",
       {"trace", "guarantee_fraction", "store_multiple", "scan_requests", "scan_blocks",
        "limit_at_guarantee", "neighbour_trace", "policy",
        "limit_requests", "min_ratio"},
       RunNoisy},
      {"soak",
       "a real store with T2 and tenant limits under N clients (put, lookup, fetch, release, "
       "delete, watch) for a bounded time: latency per method, errors by code, RSS/fds/threads "
       "(bench/soak_bench.h)",
       {"soak_clients", "soak_seconds", "soak_t1_bytes", "soak_t2_bytes", "max_overhead_bytes",
        "store_binary"},
       RunSoak},
      {"kvquant",
       "compressed K/V (fp8_e4m3, int8) against bf16 on the reference decoder: logit "
       "differences, greedy agreement, block bytes and blocks per GiB (bench/kvquant_bench.h)",
       {"prompts", "prompt_tokens", "generate", "quant_model", "threads"},
       RunKvQuant},
      {"fetch",
       "the restore's Fetch from an in-process store over loopback gRPC or same-node, against "
       "memcpy (bench/fetch_bench.h)",
       {"blocks", "tokens_per_block", "order", "same_node", "iterations"},
       RunFetch},
      {"datapath",
       "the data plane against its references in one run: memcpy, loopback TCP, Debian's "
       "redis-server GET/SET, a bare gRPC byte stream, then kvtier Fetch and Put over the "
       "socket (1/4/16 clients) and same-node (bench/datapath_bench.h)",
       {"value_bytes", "clients", "seconds", "blocks_per_call", "parts", "store_binary",
        "redis_server", "redis_benchmark"},
       RunDatapath},
      {"cluster",
       "a trace replayed through one store, N shards as one cache and N isolated stores of "
       "the same total capacity: hit rates, requests/s, Lookup p50/p99 (bench/cluster_bench.h)",
       {"trace", "shards", "capacity_fraction", "replication", "placement_span", "policy",
        "limit_requests", "store_binary"},
       RunCluster},
      {"lookup",
       "Lookup of 8k/32k/128k-token prompts on a real kvtier-store: server-side time from the "
       "store's own timer and the client's round trip (bench/lookup_bench.h)",
       {"tokens", "iterations", "store_binary"},
       RunLookup},
      {"policy_cost",
       "a T1 eviction policy's cost per reference on its own (lru, adaptive with a fixed and "
       "with the tuned bonus weight, one synthetic stream): ns per reference and the tuner's "
       "share (bench/policy_cost_bench.h)",
       {"policy_blocks", "policy_references", "hot_share", "iterations"},
       RunPolicyCost},
  };
  return *table;
}

void PrintUsage(std::ostream& out) {
  out << "usage: kvtier-bench SUBCOMMAND [--flag=value ...]\n"
         "       kvtier-bench SUBCOMMAND --help   (the subcommand's flags)\n\nsubcommands:\n";
  for (const Subcommand& c : Subcommands()) {
    out << "  " << c.name << std::string(12 - std::string(c.name).size(), ' ') << c.summary << "\n";
  }
}

void PrintSubcommandHelp(const Subcommand& c) {
  std::cout << "kvtier-bench " << c.name << ": " << c.summary << "\n\nflags:\n";
  for (const char* name : c.flags) {
    const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr) continue;
    std::cout << "  --" << name << " (default: \"" << flag->DefaultValue() << "\")\n      "
              << flag->Help() << "\n";
  }
}

const Subcommand* FindSubcommand(const std::string& name) {
  for (const Subcommand& c : Subcommands()) {
    if (name == c.name) return &c;
  }
  return nullptr;
}

}  // namespace
}  // namespace kvtier::bench

// Accepts --capacity-blocks as well as --capacity_blocks: flag names are spelled with
// underscores in absl, with hyphens in the issue tracker and most shells' habits.
std::vector<std::string> NormaliseFlagNames(int argc, char** argv) {
  std::vector<std::string> out(argv, argv + argc);
  for (size_t i = 1; i < out.size(); ++i) {
    std::string& a = out[i];
    if (a == "--") break;
    if (a.rfind("--", 0) != 0) continue;
    const size_t end = std::min(a.find('='), a.size());
    std::replace(a.begin() + 2, a.begin() + static_cast<std::ptrdiff_t>(end), '-', '_');
  }
  return out;
}

int main(int argc, char** argv) {
  using kvtier::bench::FindSubcommand;
  std::vector<std::string> normalised = NormaliseFlagNames(argc, argv);
  // Help is answered here, before absl parses (whose --help lists every flag of every
  // subcommand and exits 1): on stdout, exit 0.
  const bool help = std::any_of(normalised.begin() + 1, normalised.end(), [](const std::string& a) {
    return a == "--help" || a == "-h" || a == "help" || a == "--helpfull";
  });
  std::string command;
  for (size_t i = 1; i < normalised.size(); ++i) {
    if (normalised[i].rfind('-', 0) != 0 && normalised[i] != "help") {
      command = normalised[i];
      break;
    }
  }
  if (help || argc == 1) {
    if (const auto* c = FindSubcommand(command); c != nullptr) {
      kvtier::bench::PrintSubcommandHelp(*c);
    } else {
      kvtier::bench::PrintUsage(std::cout);
    }
    return argc == 1 ? 2 : 0;
  }
  std::vector<char*> normalised_argv;
  normalised_argv.reserve(normalised.size());
  for (std::string& a : normalised) normalised_argv.push_back(a.data());
  argc = static_cast<int>(normalised_argv.size());
  argv = normalised_argv.data();
  absl::SetProgramUsageMessage("kvtier-bench SUBCOMMAND [--flag=value ...]; kvtier-bench --help");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  // Not listed: the server half of datapath's bare gRPC byte stream, run as a child.
  if (args.size() == 2 && std::string(args[1]) == "byte-stream-server") {
    return kvtier::bench::RunByteStreamServer();
  }
  const auto* c = args.size() == 2 ? FindSubcommand(args[1]) : nullptr;
  if (c == nullptr) {
    if (args.size() == 2) std::cerr << "kvtier-bench: unknown subcommand \"" << args[1] << "\"\n";
    kvtier::bench::PrintUsage(std::cerr);
    return 2;
  }
  return c->run();
}
