#include "bench/datapath_bench.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <regex>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/child_process.h"
#include "bench/grpc_stream.h"
#include "bench/redis_reference.h"
#include "client/cache_store_client.h"
#include "client/shared_memory_region.h"

namespace kvtier::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Runs `clients` threads, each calling request(client) until `seconds` have passed;
// request returns the bytes it moved. GB/s over the wall time of all of them.
absl::StatusOr<double> RunClients(
    uint32_t clients, double seconds,
    const std::function<absl::StatusOr<uint64_t>(uint32_t)>& request) {
  std::atomic<uint64_t> bytes{0};
  std::vector<absl::Status> errors(clients);
  const Clock::time_point start = Clock::now();
  std::vector<std::thread> threads;
  for (uint32_t c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      while (Since(start) < seconds) {
        absl::StatusOr<uint64_t> n = request(c);
        if (!n.ok()) {
          errors[c] = n.status();
          return;
        }
        bytes += *n;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const double wall = Since(start);
  for (const absl::Status& e : errors) {
    if (!e.ok()) return e;
  }
  return bytes / wall / 1e9;
}

std::vector<uint8_t> Pattern(uint64_t bytes, uint32_t seed) {
  std::vector<uint8_t> v(bytes);
  uint64_t x = 0x9e3779b97f4a7c15ull * (seed + 1);
  for (size_t i = 0; i + 8 <= v.size(); i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(&v[i], &x, 8);
  }
  return v;
}

// The best of ten memcpys of `bytes` (buffers touched first).
double MemcpyGbs(uint64_t bytes) {
  std::vector<uint8_t> src = Pattern(bytes, 1), dst(bytes, 0);
  double best = 1e30;
  for (int i = 0; i < 10; ++i) {
    const Clock::time_point start = Clock::now();
    std::memcpy(dst.data(), src.data(), bytes);
    best = std::min(best, Since(start));
  }
  return bytes / best / 1e9;
}

// One plain TCP stream over loopback: 1 GiB in `chunk`-byte writes, read as it comes.
absl::StatusOr<double> LoopbackTcpGbs(uint64_t chunk) {
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listener, 1) != 0 || getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len)) {
    close(listener);
    return absl::InternalError("cannot listen on loopback");
  }
  const uint64_t total = uint64_t{1} << 30;
  std::thread sender([&] {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return close(fd);
    const std::vector<uint8_t> data = Pattern(chunk, 2);
    for (uint64_t sent = 0; sent < total;) {
      const ssize_t n = send(fd, data.data(), std::min<uint64_t>(chunk, total - sent), 0);
      if (n <= 0) break;
      sent += static_cast<uint64_t>(n);
    }
    return close(fd);
  });
  const int fd = accept(listener, nullptr, nullptr);
  std::vector<uint8_t> buffer(chunk);
  uint64_t received = 0;
  const Clock::time_point start = Clock::now();
  while (received < total) {
    const ssize_t n = recv(fd, buffer.data(), buffer.size(), 0);
    if (n <= 0) break;
    received += static_cast<uint64_t>(n);
  }
  const double seconds = Since(start);
  sender.join();
  close(fd);
  close(listener);
  if (received != total) return absl::InternalError("the loopback stream broke");
  return received / seconds / 1e9;
}

// One figure, with its ratios to the references given (those measured: non-zero).
std::string Line(const std::string& path, uint32_t clients, double gbs,
                 const std::vector<std::pair<std::string, double>>& ratios = {}) {
  std::string line = absl::StrFormat(
      "{\"bench\": \"datapath\", \"path\": \"%s\", \"clients\": %d, \"gb_per_s\": %.3f", path,
      clients, gbs);
  for (const auto& [name, reference] : ratios) {
    if (reference > 0) absl::StrAppendFormat(&line, ", \"%s\": %.2f", name, gbs / reference);
  }
  return line + "}";
}

// One client of the store per measured client, on its own connection.
std::vector<std::unique_ptr<CacheStoreClient>> Clients(uint32_t n, const ClientOptions& base) {
  std::vector<std::unique_ptr<CacheStoreClient>> clients;
  for (uint32_t i = 0; i < n; ++i) {
    ClientOptions o = base;
    o.own_connection = true;
    clients.push_back(std::make_unique<CacheStoreClient>(o));
  }
  return clients;
}

// Token ids of a prompt no other request uses (the first block's key differs).
std::vector<uint32_t> UniquePrompt(uint32_t tokens, uint32_t client, uint64_t n) {
  std::vector<uint32_t> p(tokens);
  for (uint32_t i = 0; i < tokens; ++i) {
    p[i] = static_cast<uint32_t>((n * 1000003 + uint64_t{client} * 7919 + i) % 128256);
  }
  // The request's number and client in the first token ids (a block has at least one).
  const uint64_t id = (n << 8) | (client & 0xff);
  p[0] = static_cast<uint32_t>(id);
  if (tokens > 1) p[1] = static_cast<uint32_t>(id >> 32);
  return p;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> RunDatapathBench(const DatapathBenchOptions& o) {
  const KvLayout layout = Llama3_8BLayout(DType::kBf16, 16);
  const uint64_t per_token = layout.BlockBytes() / 16;
  if (o.value_bytes == 0 || o.value_bytes % per_token != 0 || o.clients.empty() ||
      o.blocks_per_call == 0 || o.seconds <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--value_bytes must be a positive multiple of ", per_token,
        " (one Llama-3-8B bf16 token of K/V), with clients, blocks_per_call and seconds set"));
  }
  const KvLayout value_layout =
      Llama3_8BLayout(DType::kBf16, static_cast<uint32_t>(o.value_bytes / per_token));
  const uint64_t vb = value_layout.BlockBytes();
  const uint32_t tpb = value_layout.tokens_per_block;
  const uint32_t call_blocks = o.blocks_per_call;
  const uint64_t call_bytes = call_blocks * vb;
  std::vector<std::string> lines;

  // References without a server: memcpy of what one same-node call moves, and TCP.
  double memcpy_gbs = 0;
  if (o.run_references) {
    memcpy_gbs = MemcpyGbs(call_bytes);
    lines.push_back(Line("memcpy", 1, memcpy_gbs));
    absl::StatusOr<double> tcp = LoopbackTcpGbs(vb);
    if (!tcp.ok()) return tcp.status();
    lines.push_back(Line("tcp_loopback", 1, *tcp));
  }

  // Redis.
  std::map<uint32_t, RedisThroughput> redis;
  if (o.run_redis) {
    absl::StatusOr<std::unique_ptr<RedisReference>> server = RedisReference::Start(o.redis_server);
    if (!server.ok()) return server.status();
    for (uint32_t c : o.clients) {
      const uint64_t requests = std::max<uint64_t>(uint64_t{16} * c, o.seconds * 1.5e9 / vb);
      absl::StatusOr<RedisThroughput> t = (*server)->Measure(o.redis_benchmark, vb, c, requests);
      if (!t.ok()) return t.status();
      redis[c] = *t;
      lines.push_back(Line("redis_get", c, t->get_gb_per_s));
      lines.push_back(Line("redis_set", c, t->set_gb_per_s));
    }
  }

  // The bare gRPC byte stream.
  std::map<uint32_t, double> bare_get, bare_get_verified, bare_put, bare_put_kept;
  if (o.run_grpc) {
    absl::StatusOr<std::unique_ptr<ChildProcess>> server =
        ChildProcess::Start(o.self_binary, {"byte-stream-server"});
    if (!server.ok()) return server.status();
    absl::StatusOr<std::vector<std::string>> serving =
        (*server)->AwaitLog(std::regex(R"(serving on .*\(port (\d+)\))"), absl::Seconds(20));
    if (!serving.ok()) return serving.status();
    const std::string target = "127.0.0.1:" + (*serving)[1];
    for (uint32_t c : o.clients) {
      // A value of its own per client, as kvtier's Put clients and redis-benchmark's have
      // (one shared value would stay in the cache and flatter the reference).
      std::vector<std::vector<uint8_t>> values;
      for (uint32_t i = 0; i < c; ++i) values.push_back(Pattern(vb, 10 + i));
      std::vector<std::unique_ptr<ByteStreamClient>> clients;
      for (uint32_t i = 0; i < c; ++i)
        clients.push_back(std::make_unique<ByteStreamClient>(target));
      absl::StatusOr<double> get =
          RunClients(c, o.seconds, [&](uint32_t i) { return clients[i]->Get(vb); });
      if (!get.ok()) return get.status();
      std::vector<std::vector<uint8_t>> into(c, std::vector<uint8_t>(vb));
      absl::StatusOr<double> verified = RunClients(
          c, o.seconds, [&](uint32_t i) { return clients[i]->Get(vb, into[i].data()); });
      if (!verified.ok()) return verified.status();
      absl::StatusOr<double> put =
          RunClients(c, o.seconds, [&](uint32_t i) -> absl::StatusOr<uint64_t> {
            if (absl::Status s = clients[i]->Put(values[i].data(), vb); !s.ok()) return s;
            return vb;
          });
      if (!put.ok()) return put.status();
      absl::StatusOr<double> kept =
          RunClients(c, o.seconds, [&](uint32_t i) -> absl::StatusOr<uint64_t> {
            if (absl::Status s = clients[i]->Put(values[i].data(), vb, /*keep=*/true); !s.ok()) {
              return s;
            }
            return vb;
          });
      if (!kept.ok()) return kept.status();
      bare_get[c] = *get;
      bare_get_verified[c] = *verified;
      bare_put[c] = *put;
      bare_put_kept[c] = *kept;
      lines.push_back(Line("grpc_bare_get", c, *get, {{"vs_redis_get", redis[c].get_gb_per_s}}));
      lines.push_back(Line("grpc_bare_get_verified", c, *verified,
                           {{"vs_redis_get", redis[c].get_gb_per_s}, {"vs_grpc_bare_get", *get}}));
      lines.push_back(Line("grpc_bare_put", c, *put, {{"vs_redis_set", redis[c].set_gb_per_s}}));
      lines.push_back(Line("grpc_bare_put_kept", c, *kept,
                           {{"vs_redis_set", redis[c].set_gb_per_s}, {"vs_grpc_bare_put", *put}}));
    }
  }
  if (!o.run_socket && !o.run_same_node) return lines;

  // kvtier-store, a process of its own, with the same-node plane on.
  char dir[] = "/tmp/kvtier-datapath-XXXXXX";
  if (mkdtemp(dir) == nullptr) return absl::InternalError("cannot create a temporary directory");
  absl::Cleanup cleanup = [&] { std::filesystem::remove_all(dir); };
  const std::string socket = std::string(dir) + "/shm.sock";
  const uint32_t fetch_set = std::max<uint32_t>(128, call_blocks);
  absl::StatusOr<std::unique_ptr<ServerProcess>> store = ServerProcess::Start(
      o.store_binary.empty() ? SiblingBinary("kvtier-store") : o.store_binary,
      {"--t1_lock=none", absl::StrCat("--t1_min_slot_bytes=", vb),
       absl::StrCat("--t1_bytes=", uint64_t{fetch_set + 2 * call_blocks + 64} * vb),
       "--shm_socket=" + socket});
  if (!store.ok()) return store.status();
  ClientOptions base;
  base.target = (*store)->target();
  base.timeout = absl::Minutes(1);
  base.shm_socket = socket;
  CacheStoreClient setup(base);

  // The blocks every Fetch reads: one prompt of fetch_set blocks.
  std::vector<uint32_t> prompt(uint64_t{fetch_set} * tpb);
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<uint32_t>(i % 128256);
  const std::vector<uint8_t> payload = Pattern(uint64_t{fetch_set} * vb, 4);
  absl::StatusOr<PutReply> stored = setup.Put(value_layout, prompt, 0, payload);
  if (!stored.ok()) return stored.status();
  const std::vector<BlockKey> keys = stored->keys;

  // Socket: one block per request, like one value per Redis GET / SET.
  for (uint32_t c : o.run_socket ? o.clients : std::vector<uint32_t>{}) {
    std::vector<std::unique_ptr<CacheStoreClient>> clients = Clients(c, base);
    std::vector<std::vector<uint8_t>> buffers(c, std::vector<uint8_t>(vb));
    std::vector<uint64_t> next(c, 0);
    absl::StatusOr<double> gbs =
        RunClients(c, o.seconds, [&](uint32_t i) -> absl::StatusOr<uint64_t> {
          const BlockKey& key = keys[(uint64_t{i} * 31 + next[i]++) % keys.size()];
          std::vector<std::span<uint8_t>> out = {std::span(buffers[i])};
          absl::StatusOr<FetchReply> r = clients[i]->Fetch({.keys = {key}}, out);
          if (!r.ok()) return r.status();
          return r->bytes;
        });
    if (!gbs.ok()) return gbs.status();
    lines.push_back(
        Line("kvtier_fetch_socket", c, *gbs,
             {{"vs_redis_get", redis[c].get_gb_per_s},
              {"vs_grpc_bare_get", bare_get[c]},
              {"vs_grpc_bare_get_verified", bare_get_verified[c]}}));
  }

  // Same-node Fetch: a restore's worth of blocks per call, and one block per call. The
  // memcpy reference is measured again here and the faster figure kept, so that a slow
  // moment of the machine at the start cannot flatter the ratios.
  if (o.run_same_node && o.run_references) {
    const double again = MemcpyGbs(call_bytes);
    if (again > memcpy_gbs) {
      memcpy_gbs = again;
      lines.push_back(Line("memcpy", 1, memcpy_gbs));
    }
  }
  if (o.run_same_node) {
    absl::StatusOr<std::unique_ptr<SharedMemoryRegion>> region =
        SharedMemoryRegion::Create(call_bytes);
    if (!region.ok()) return region.status();
    CacheStoreClient client(base);
    for (uint32_t blocks : {call_blocks, 1u}) {
      std::vector<std::span<uint8_t>> out;
      for (uint32_t b = 0; b < blocks; ++b) out.emplace_back((*region)->data() + b * vb, vb);
      uint64_t first = 0;
      absl::StatusOr<double> gbs =
          RunClients(1, o.seconds, [&](uint32_t) -> absl::StatusOr<uint64_t> {
            std::vector<BlockKey> some;
            for (uint32_t b = 0; b < blocks; ++b) some.push_back(keys[(first + b) % keys.size()]);
            first += blocks;
            absl::StatusOr<FetchReply> r = client.Fetch(
                {.keys = some}, out, {.order = v1::FETCH_ORDER_LAYER_MAJOR, .shm = region->get()});
            if (!r.ok()) return r.status();
            return r->bytes;
          });
      if (!gbs.ok()) return gbs.status();
      lines.push_back(Line(absl::StrCat("kvtier_fetch_same_node_", blocks, "_blocks_per_call"), 1,
                           *gbs, {{"vs_memcpy", memcpy_gbs}}));
    }
  }

  // Puts: every request stores new blocks (the store evicts old ones to make room).
  for (uint32_t c : o.run_socket ? o.clients : std::vector<uint32_t>{}) {
    std::vector<std::unique_ptr<CacheStoreClient>> clients = Clients(c, base);
    std::vector<std::vector<uint8_t>> values;
    for (uint32_t i = 0; i < c; ++i) values.push_back(Pattern(vb, 10 + i));
    std::vector<uint64_t> count(c, 0);
    absl::StatusOr<double> gbs =
        RunClients(c, o.seconds, [&](uint32_t i) -> absl::StatusOr<uint64_t> {
          absl::StatusOr<PutReply> r =
              clients[i]->Put(value_layout, UniquePrompt(tpb, i, count[i]++), 0, values[i]);
          if (!r.ok()) return r.status();
          return vb;
        });
    if (!gbs.ok()) return gbs.status();
    lines.push_back(
        Line("kvtier_put_socket", c, *gbs,
             {{"vs_redis_set", redis[c].set_gb_per_s},
              {"vs_grpc_bare_put", bare_put[c]},
              {"vs_grpc_bare_put_kept", bare_put_kept[c]}}));
  }
  if (o.run_same_node) {
    absl::StatusOr<std::unique_ptr<SharedMemoryRegion>> region =
        SharedMemoryRegion::Create(call_bytes);
    if (!region.ok()) return region.status();
    const std::vector<uint8_t> bytes = Pattern(call_bytes, 20);
    std::memcpy((*region)->data(), bytes.data(), call_bytes);
    CacheStoreClient client(base);
    for (uint32_t blocks : {call_blocks, 1u}) {
      std::vector<std::span<const uint8_t>> in;
      for (uint32_t b = 0; b < blocks; ++b) in.emplace_back((*region)->data() + b * vb, vb);
      uint64_t n = 0;
      absl::StatusOr<double> gbs =
          RunClients(1, o.seconds, [&](uint32_t) -> absl::StatusOr<uint64_t> {
            std::vector<uint32_t> tokens;
            for (uint32_t b = 0; b < blocks; ++b) {
              const std::vector<uint32_t> one = UniquePrompt(tpb, 99, n * blocks + b);
              tokens.insert(tokens.end(), one.begin(), one.end());
            }
            ++n;
            absl::StatusOr<PutReply> r =
                client.PutBlocks(value_layout, tokens, 0, in, PutParams{.shm = region->get()});
            if (!r.ok()) return r.status();
            return uint64_t{blocks} * vb;
          });
      if (!gbs.ok()) return gbs.status();
      lines.push_back(Line(absl::StrCat("kvtier_put_same_node_", blocks, "_blocks_per_call"), 1,
                           *gbs, {{"vs_memcpy", memcpy_gbs}}));
    }
  }
  return lines;
}

}  // namespace kvtier::bench
