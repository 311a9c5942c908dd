// The real kvtier-store binary: started as an operator would, talked to over gRPC, its
// /metrics scraped over HTTP, and stopped with SIGTERM while streams are open.
#include "tests/services/store_process.h"

#include <gmock/gmock.h>
#include <google/protobuf/dynamic_message.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/numbers.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/cache_store_client.h"
#include "tests/services/test_prompts.h"

namespace kvtier {
namespace {

using ::kvtier::testing::HttpGet;
using ::kvtier::testing::StoreProcess;
using ::kvtier::testing::Tokens;

// Value of one sample in a Prometheus text exposition, e.g. Sample(text,
// "kvtier_put_blocks_total{result=\"stored\"}"); -1 when absent.
double Sample(const std::string& exposition, const std::string& series) {
  size_t pos = 0;
  while ((pos = exposition.find(series + " ", pos)) != std::string::npos) {
    if (pos == 0 || exposition[pos - 1] == '\n') {
      const size_t start = pos + series.size() + 1;
      double v;
      if (absl::SimpleAtod(exposition.substr(start, exposition.find('\n', start) - start), &v)) {
        return v;
      }
    }
    pos += series.size();
  }
  return -1;
}

TEST(StoreProcessTest, MetricsEndpointCountsWhatHappened) {
  auto store = StoreProcess::Start({"--t1_bytes=67108864"});
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_GT((*store)->metrics_port(), 0);
  absl::StatusOr<std::string> before = HttpGet((*store)->metrics_port(), "/metrics");
  ASSERT_TRUE(before.ok()) << before.status();
  // A store without credentials trusts the tenant header, and says so.
  EXPECT_NE((*store)->Log().find("INSECURE: no --auth_token_file and no --tls_client_ca_file"),
            std::string::npos)
      << (*store)->Log();
  EXPECT_EQ(Sample(*before, "kvtier_lookups_total"), 0);
  EXPECT_EQ(Sample(*before, "kvtier_tier_capacity_bytes{tier=\"t1\"}"), 64 << 20);
  // In its smallest slots (256 bytes); blocks of every size up to 16 MiB share the tier.
  EXPECT_EQ(Sample(*before, "kvtier_tier_capacity_blocks{tier=\"t1\"}"), (64 << 20) / 256);
  EXPECT_EQ(Sample(*before, "kvtier_tier_slabs{tier=\"t1\"}"), 4);

  CacheStoreClient client({.target = (*store)->target(), .tenant = "m"});
  const KvLayout layout = Llama3_8BLayout();
  const uint64_t bb = layout.BlockBytes();
  std::vector<uint32_t> tokens = Tokens(3 * 16 + 3, 3);
  std::vector<uint8_t> payload(3 * bb, 0x5a);
  // Blocks 0-1 stored by a Put that does not report its output length, block 2 by one that
  // does (a hint for T2 admission), then block 0 again.
  ASSERT_TRUE(client.Put(layout, tokens, 0, std::span(payload).first(2 * bb)).ok());
  ASSERT_TRUE(client.Put(layout, tokens, 2, std::span(payload).subspan(2 * bb),
                         PutParams{.output_tokens = 40}).ok());
  ASSERT_TRUE(client.Put(layout, tokens, 0, std::span(payload).first(bb)).ok());  // existing
  std::vector<uint32_t> other = Tokens(2 * 16, 3);
  other[20] = 999;  // shares block 0 only
  absl::StatusOr<LookupReply> l = client.Lookup(layout, other);
  ASSERT_TRUE(l.ok());
  ASSERT_EQ(l->matched_blocks, 1u);
  std::vector<uint8_t> got(bb);
  std::vector<std::span<uint8_t>> out = {std::span(got)};
  ASSERT_TRUE(client.Fetch({.lease_id = l->lease_id}, out).ok());
  ASSERT_TRUE(client.Release(l->lease_id).ok());

  absl::StatusOr<std::string> after = HttpGet((*store)->metrics_port(), "/metrics");
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(Sample(*after, "kvtier_lookups_total"), 1);
  EXPECT_EQ(Sample(*after, "kvtier_lookup_requested_blocks_total"), 2);
  EXPECT_EQ(Sample(*after, "kvtier_lookup_hit_blocks_total"), 1);
  EXPECT_EQ(Sample(*after, "kvtier_lookup_requested_tokens_total"), 32);
  EXPECT_EQ(Sample(*after, "kvtier_lookup_hit_tokens_total"), 16);
  EXPECT_EQ(Sample(*after, "kvtier_put_blocks_total{result=\"stored\"}"), 3);
  EXPECT_EQ(Sample(*after, "kvtier_put_blocks_total{result=\"existing\"}"), 1);
  EXPECT_EQ(Sample(*after, "kvtier_put_output_reported_blocks_total"), 1);
  EXPECT_EQ(Sample(*after, "kvtier_put_bytes_total"), 4.0 * bb);
  EXPECT_EQ(Sample(*after, "kvtier_fetched_blocks_total"), 1);
  EXPECT_EQ(Sample(*after, "kvtier_fetched_bytes_total"), bb);
  EXPECT_EQ(Sample(*after, "kvtier_tier_blocks{tier=\"t1\"}"), 3);
  EXPECT_EQ(Sample(*after, "kvtier_tier_used_bytes{tier=\"t1\"}"), 3.0 * bb);
  EXPECT_EQ(Sample(*after, "kvtier_active_leases"), 0);
  EXPECT_EQ(Sample(*after, "kvtier_evictions_total{tier=\"t1\"}"), 0);
  EXPECT_EQ(Sample(*after, "kvtier_t1_bonus_weight"), 0);  // LRU until shown otherwise
  EXPECT_EQ(Sample(*after, "kvtier_rpcs_total{code=\"OK\",method=\"Put\"}"), 3);
  EXPECT_EQ(Sample(*after, "kvtier_rpc_duration_seconds_count{method=\"Lookup\"}"), 1);
  EXPECT_EQ(Sample(*after, "kvtier_rpc_duration_seconds_count{method=\"Fetch\"}"), 1);

  // A failed call is counted under its code.
  EXPECT_FALSE(client.Release(12345).ok());
  absl::StatusOr<std::string> last = HttpGet((*store)->metrics_port(), "/metrics");
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(Sample(*last, "kvtier_rpcs_total{code=\"NOT_FOUND\",method=\"Release\"}"), 1);
}

// TLS: a store given a certificate serves only TLS clients that trust it; a half-configured
// store refuses to start and says why.
TEST(StoreProcessTest, ServesOverTlsWhenGivenACertificate) {
  const std::string dir = ::testing::TempDir() + "/kvtier_tls";
  std::filesystem::create_directories(dir);
  const std::string cert = dir + "/cert.pem", key = dir + "/key.pem";
  const std::string make_cert =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -addext "
      "subjectAltName=IP:127.0.0.1,DNS:localhost -keyout " +
      key + " -out " + cert + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(make_cert.c_str()), 0) << "openssl could not make a certificate";
  auto store = StoreProcess::Start(
      {"--t1_bytes=4194304", "--tls_cert_file=" + cert, "--tls_key_file=" + key});
  ASSERT_TRUE(store.ok()) << store.status();
  std::ifstream in(cert);
  std::stringstream pem;
  pem << in.rdbuf();
  ClientOptions tls{.target = (*store)->target(), .timeout = absl::Seconds(5)};
  tls.tls = true;
  tls.tls_root_certs = pem.str();
  CacheStoreClient secure(tls);
  EXPECT_TRUE(secure.Stats().ok());
  CacheStoreClient plain({.target = (*store)->target(), .timeout = absl::Seconds(2)});
  EXPECT_FALSE(plain.Stats().ok());

  auto [code, log] =
      StoreProcess::RunToExit({"--listen=127.0.0.1:0", "--metrics_listen=", "--t1_bytes=4194304",
                               "--t1_lock=none", "--tls_cert_file=" + cert});
  EXPECT_EQ(code, 2);
  EXPECT_NE(log.find("TLS needs both --tls_cert_file and --tls_key_file"), std::string::npos)
      << log;
}

// --listen=unix:///PATH: clients on the node reach the store through a Unix socket (a
// stale socket file left at the path is replaced); the socket goes when the store stops.
TEST(StoreProcessTest, ServesOnAUnixSocket) {
  const std::string dir = ::testing::TempDir() + "/kvtier_unix";
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/store.sock";
  std::filesystem::remove(path);
  {  // the socket of a store that died, left behind
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ::close(fd);
    ASSERT_TRUE(std::filesystem::exists(path));
  }
  absl::StatusOr<std::unique_ptr<bench::ChildProcess>> store = bench::ChildProcess::Start(
      KVTIER_STORE_BINARY,
      {"--listen=unix://" + path, "--metrics_listen=", "--t1_bytes=8388608", "--t1_lock=none"});
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->AwaitLog(std::regex("serving on unix://"), absl::Seconds(20)).ok())
      << (*store)->Log();
  {
    CacheStoreClient client({.target = "unix://" + path, .timeout = absl::Seconds(5)});
    const KvLayout layout = Llama3_8BLayout();
    std::vector<uint32_t> tokens = Tokens(16, 5);
    std::vector<uint8_t> payload(layout.BlockBytes(), 0x42);
    absl::StatusOr<PutReply> put = client.Put(layout, tokens, 0, payload);
    ASSERT_TRUE(put.ok()) << put.status();
    std::vector<uint8_t> got(layout.BlockBytes());
    std::vector<std::span<uint8_t>> out = {std::span(got)};
    ASSERT_TRUE(client.Fetch({.keys = put->keys}, out).ok());
    EXPECT_EQ(got, payload);
  }  // (a client still connected over a Unix socket holds the store's exit ~5 s in gRPC)
  (*store)->Signal(SIGTERM);
  EXPECT_EQ((*store)->Wait(absl::Seconds(20)), 0) << (*store)->Log();
  EXPECT_FALSE(std::filesystem::exists(path)) << "the socket outlived the store";
}

// Metric family names in the exposition (from "# TYPE" lines) starting with kvtier_.
std::set<std::string> ExposedKvtierMetrics(const std::string& exposition) {
  std::set<std::string> names;
  std::regex type_re(R"(# TYPE (kvtier_\w+) )");
  for (auto it = std::sregex_iterator(exposition.begin(), exposition.end(), type_re);
       it != std::sregex_iterator(); ++it) {
    names.insert((*it)[1]);
  }
  return names;
}

TEST(StoreProcessTest, DocsListExactlyTheExposedMetrics) {
  std::ifstream in(KVTIER_SOURCE_DIR "/docs/metrics.md");
  ASSERT_TRUE(in) << "docs/metrics.md is missing";
  std::stringstream doc;
  doc << in.rdbuf();
  std::set<std::string> documented;
  const std::string text = doc.str();
  std::regex row_re(R"(\n\| `(kvtier_\w+)` \|)");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), row_re);
       it != std::sregex_iterator(); ++it) {
    const std::string name = (*it)[1];
    if (name.rfind("kvtier_worker_", 0) != 0) documented.insert(name);  // worker_process_test
  }
  // With T2, so that the T2 families are exposed too.
  const std::string t2_dir = ::testing::TempDir() + "/kvtier_metrics_t2";
  std::filesystem::remove_all(t2_dir);
  auto store =
      StoreProcess::Start({"--t1_bytes=8388608", "--t2_dir=" + t2_dir, "--t2_bytes=8388608"});
  ASSERT_TRUE(store.ok()) << store.status();
  // An error code child appears on first use; make one so that every family has a sample.
  CacheStoreClient client({.target = (*store)->target()});
  (void)client.Release(1);
  // Per-tenant series appear with a tenant's first Lookup.
  const std::vector<uint32_t> tokens(32, 7);
  ASSERT_TRUE(client.Lookup(Llama3_8BLayout(), tokens).ok());
  // Per-layout series appear with a layout's first block.
  const KvLayout small{.model_id = "m", .num_layers = 1, .num_kv_heads = 1, .head_dim = 64,
                       .dtype = DType::kBf16, .tokens_per_block = 16};
  ASSERT_TRUE(client.Put(small, tokens, 0, std::vector<uint8_t>(2 * small.BlockBytes(), 1)).ok());
  absl::StatusOr<std::string> exposition = HttpGet((*store)->metrics_port(), "/metrics");
  ASSERT_TRUE(exposition.ok());
  EXPECT_EQ(ExposedKvtierMetrics(*exposition), documented);
}

TEST(StoreProcessTest, SigtermWhileStreamingDrainsAndExitsZero) {
  auto store = StoreProcess::Start({"--t1_bytes=67108864", "--drain_timeout=5s"});
  ASSERT_TRUE(store.ok()) << store.status();
  CacheStoreClient client({.target = (*store)->target(), .timeout = absl::Seconds(30)});
  const KvLayout layout = Llama3_8BLayout();
  const uint64_t bb = layout.BlockBytes();
  std::vector<uint32_t> tokens = Tokens(16 * 16, 3);
  std::vector<uint8_t> payload(16 * bb, 0x11);
  absl::StatusOr<PutReply> put = client.Put(layout, tokens, 0, payload);
  ASSERT_TRUE(put.ok()) << put.status();

  // A watcher that would otherwise stream forever.
  absl::Notification watching;
  absl::Status watch_status;
  std::thread watcher([&] {
    watch_status = client.WatchEvents(
        [&](const v1::WatchEventsResponse&) {
          if (!watching.HasBeenNotified()) watching.Notify();
          return true;
        },
        absl::InfiniteDuration());
  });
  // If an assertion bails out, the store is killed so that the watcher's stream ends.
  absl::Cleanup join_watcher = [&] {
    if (!watcher.joinable()) return;
    (*store)->Signal(SIGKILL);
    watcher.join();
  };
  ASSERT_TRUE(watching.WaitForNotificationWithTimeout(absl::Seconds(10)));

  // Fetches in a loop with small chunks, so one is in flight when the signal lands. The
  // loop ends only with a failed fetch: once the store has gone, the next one fails (no
  // store), so the last fetch is never one that happened to complete just before the exit.
  std::atomic<bool> give_up{false};  // only if the test bails out early
  std::atomic<int> complete_fetches{0};
  std::atomic<int> wrong_bytes{0};
  std::atomic<bool> fetcher_stopped{false};
  absl::Status last_fetch;
  std::thread fetcher([&] {
    std::vector<uint8_t> got(16 * bb);
    std::vector<std::span<uint8_t>> out;
    for (int b = 0; b < 16; ++b) out.push_back(std::span(got).subspan(b * bb, bb));
    while (!give_up) {
      absl::StatusOr<FetchReply> f =
          client.Fetch({.keys = put->keys}, out, {.max_chunk_bytes = 64 << 10});
      if (!f.ok()) {
        last_fetch = f.status();
        break;
      }
      if (got != payload) ++wrong_bytes;
      ++complete_fetches;
    }
    fetcher_stopped = true;
  });
  absl::Cleanup join_fetcher = [&] {
    if (!fetcher.joinable()) return;
    give_up = true;
    fetcher.join();
  };
  const absl::Time give_up_at = absl::Now() + absl::Seconds(60);
  while (complete_fetches < 2 && !fetcher_stopped && absl::Now() < give_up_at) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_GE(complete_fetches.load(), 2)
      << "two fetches did not complete before the signal (the fetcher "
      << (fetcher_stopped ? "failed: " + last_fetch.ToString() : std::string("stalled"))
      << ")\n"
      << (*store)->Log();
  const absl::Time signalled = absl::Now();
  (*store)->Signal(SIGTERM);
  std::optional<int> code = (*store)->Wait(absl::Seconds(20));
  ASSERT_TRUE(code.has_value()) << "kvtier-store did not exit after SIGTERM\n" << (*store)->Log();
  EXPECT_EQ(*code, 0) << (*store)->Log();
  EXPECT_LT(absl::Now() - signalled, absl::Seconds(10)) << (*store)->Log();
  fetcher.join();
  watcher.join();
  // Whatever was in flight either completed with the right bytes or failed cleanly.
  EXPECT_EQ(wrong_bytes.load(), 0);
  EXPECT_FALSE(last_fetch.ok());
  EXPECT_EQ(watch_status.code(), absl::StatusCode::kUnavailable) << watch_status;
  EXPECT_NE((*store)->Log().find("kvtier-store stopped"), std::string::npos);
}

// Calls grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo with list_services,
// as grpcurl would, using the message types libgrpc++_reflection registers in the
// generated descriptor pool (Debian ships no headers for them).
absl::StatusOr<std::vector<std::string>> ListServicesByReflection(const std::string& target) {
  // Referencing the plugin keeps libgrpc++_reflection (and so its descriptors) loaded
  // under --as-needed; it only affects servers built in this process, of which there are none.
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  const auto* req_type =
      pool->FindMessageTypeByName("grpc.reflection.v1alpha.ServerReflectionRequest");
  const auto* resp_type =
      pool->FindMessageTypeByName("grpc.reflection.v1alpha.ServerReflectionResponse");
  if (req_type == nullptr || resp_type == nullptr) {
    return absl::InternalError("reflection messages are not in the descriptor pool");
  }
  google::protobuf::DynamicMessageFactory factory(pool);
  std::unique_ptr<google::protobuf::Message> request(factory.GetPrototype(req_type)->New());
  request->GetReflection()->SetString(request.get(), req_type->FindFieldByName("list_services"),
                                      "");
  std::string wire;
  request->SerializeToString(&wire);
  grpc::Slice slice(wire);
  grpc::ByteBuffer out(&slice, 1);

  grpc::GenericStub stub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto call =
      stub.PrepareCall(&ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  void* tag;
  bool ok;
  auto step = [&](int expected) {
    return cq.Next(&tag, &ok) && ok && tag == (void*)(intptr_t)expected;
  };
  call->StartCall((void*)1);
  if (!step(1)) return absl::UnavailableError("reflection call did not start");
  call->Write(out, (void*)2);
  if (!step(2)) return absl::UnavailableError("reflection write failed");
  grpc::ByteBuffer in;
  call->Read(&in, (void*)3);
  if (!step(3)) return absl::UnavailableError("reflection read failed");
  call->WritesDone((void*)4);
  step(4);
  grpc::Status status;
  call->Finish(&status, (void*)5);
  step(5);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }

  std::vector<grpc::Slice> slices;
  (void)in.Dump(&slices);
  std::string bytes;
  for (const grpc::Slice& s : slices)
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  std::unique_ptr<google::protobuf::Message> response(factory.GetPrototype(resp_type)->New());
  if (!response->ParseFromString(bytes)) return absl::InternalError("bad reflection response");
  const auto* list_field = resp_type->FindFieldByName("list_services_response");
  const google::protobuf::Message& list =
      response->GetReflection()->GetMessage(*response, list_field);
  const auto* service_field = list.GetDescriptor()->FindFieldByName("service");
  std::vector<std::string> names;
  for (int i = 0; i < list.GetReflection()->FieldSize(list, service_field); ++i) {
    const google::protobuf::Message& svc =
        list.GetReflection()->GetRepeatedMessage(list, service_field, i);
    names.push_back(
        svc.GetReflection()->GetString(svc, svc.GetDescriptor()->FindFieldByName("name")));
  }
  return names;
}

TEST(StoreProcessTest, HealthAndReflectionAnswerLikeForAnyGrpcTool) {
  auto store = StoreProcess::Start({"--t1_bytes=8388608"});
  ASSERT_TRUE(store.ok()) << store.status();
  CacheStoreClient client({.target = (*store)->target()});
  absl::StatusOr<bool> healthy = client.Healthy();
  ASSERT_TRUE(healthy.ok()) << healthy.status();
  EXPECT_TRUE(*healthy);
  absl::StatusOr<std::vector<std::string>> services = ListServicesByReflection((*store)->target());
  ASSERT_TRUE(services.ok()) << services.status().ToString();
  EXPECT_THAT(*services,
              ::testing::IsSupersetOf({"kvtier.v1.CacheStore", "grpc.health.v1.Health"}));
}

// Quotas as an operator configures them: a quota file, two tenants, each tenant's Stats
// showing its own usage and quota, and /metrics showing every tenant's.
TEST(StoreProcessTest, TenantQuotaFileLimitsOneTenantAndShowsUsage) {
  const KvLayout layout = Llama3_8BLayout();
  const uint64_t bb = layout.BlockBytes();  // 2 MiB
  const std::string quota_file = ::testing::TempDir() + "/kvtier_quota_process";
  std::ofstream(quota_file) << "# a is kept to 3 blocks; b may not lose its first 2\n"
                            << "a t1_limit=" << 3 * bb << "\n"
                            << "b t1_guarantee=" << 2 * bb << "\n";
  auto store = StoreProcess::Start({"--t1_bytes=" + std::to_string(16 * bb),
                                    "--tenant_quota_file=" + quota_file});
  ASSERT_TRUE(store.ok()) << store.status();
  CacheStoreClient a({.target = (*store)->target(), .tenant = "a"});
  CacheStoreClient b({.target = (*store)->target(), .tenant = "b"});
  const std::vector<uint8_t> payload(bb, 0x33);
  for (uint32_t seed = 0; seed < 8; ++seed) {
    ASSERT_TRUE(a.Put(layout, Tokens(16, 100 + seed), 0, payload).ok());
  }
  ASSERT_TRUE(b.Put(layout, Tokens(16, 7), 0, payload).ok());
  absl::StatusOr<v1::StatsResponse> sa = a.Stats();
  ASSERT_TRUE(sa.ok()) << sa.status();
  EXPECT_TRUE(sa->quotas_enabled());
  EXPECT_EQ(sa->tenants_holding(), 2u);
  EXPECT_EQ(sa->tenant().tenant(), "a");
  EXPECT_EQ(sa->tenant().t1_blocks(), 3u);
  EXPECT_EQ(sa->tenant().t1_bytes(), 3 * bb);
  EXPECT_EQ(sa->tenant().t1_limit_bytes(), 3 * bb);
  EXPECT_EQ(sa->tenant().t1_limit_evictions(), 5u);
  absl::StatusOr<v1::StatsResponse> sb = b.Stats();
  ASSERT_TRUE(sb.ok());
  EXPECT_EQ(sb->tenant().tenant(), "b");
  EXPECT_EQ(sb->tenant().t1_blocks(), 1u);
  EXPECT_EQ(sb->tenant().t1_guarantee_bytes(), 2 * bb);
  EXPECT_EQ(sb->tenant().t1_limit_bytes(), 0u);

  absl::StatusOr<std::string> m = HttpGet((*store)->metrics_port(), "/metrics");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(Sample(*m, "kvtier_tenant_used_bytes{tenant=\"a\",tier=\"t1\"}"), 3.0 * bb);
  EXPECT_EQ(Sample(*m, "kvtier_tenant_used_bytes{tenant=\"b\",tier=\"t1\"}"), 1.0 * bb);
  EXPECT_EQ(Sample(*m, "kvtier_tenant_limit_bytes{tenant=\"a\",tier=\"t1\"}"), 3.0 * bb);
  EXPECT_EQ(Sample(*m, "kvtier_tenant_guarantee_bytes{tenant=\"b\",tier=\"t1\"}"), 2.0 * bb);
  EXPECT_EQ(Sample(*m, "kvtier_tenant_limit_evictions_total{tenant=\"a\",tier=\"t1\"}"), 5);
  EXPECT_EQ(Sample(*m, "kvtier_tenants_holding"), 2);

  // A malformed quota file stops the store at start, naming the line.
  std::ofstream(quota_file) << "a t1_limit=3 t1_limit=4\n";
  auto [code, log] = StoreProcess::RunToExit({"--tenant_quota_file=" + quota_file, "--t1_lock=none",
                                              "--metrics_listen=", "--t1_bytes=8388608"});
  EXPECT_EQ(code, 2);
  EXPECT_NE(log.find(quota_file + ":1: \"t1_limit\" is given twice"), std::string::npos) << log;
}

TEST(StoreProcessTest, BadFlagsFailAtStartupWithAClearMessage) {
  auto [code, log] = StoreProcess::RunToExit({"--t1_lock=sometimes", "--metrics_listen="});
  EXPECT_EQ(code, 2);
  EXPECT_NE(log.find("--t1_lock=sometimes is not one of"), std::string::npos) << log;
  std::tie(code, log) = StoreProcess::RunToExit(
      {"--t1_bytes=1000", "--t1_lock=none", "--metrics_listen=", "--listen=127.0.0.1:0"});
  EXPECT_EQ(code, 2);
  EXPECT_NE(log.find("makes no slab"), std::string::npos) << log;
  std::tie(code, log) = StoreProcess::RunToExit(
      {"--eviction_policy=random", "--t1_lock=none", "--metrics_listen=", "--t1_bytes=8388608"});
  EXPECT_EQ(code, 2);
  EXPECT_NE(log.find("unknown eviction policy"), std::string::npos) << log;
}

}  // namespace
}  // namespace kvtier
