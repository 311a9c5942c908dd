// The client against servers that misbehave: stalled streams, UNAVAILABLE, nobody home.
// A caller must never wait past its deadline, and only UNAVAILABLE may be retried.
#include <arpa/inet.h>
#include <grpcpp/server_builder.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>

#include "client/cache_store_client.h"

namespace kvtier {
namespace {

// A CacheStore whose Fetch sends its first message and then stalls until cancelled, whose
// Stats fails with UNAVAILABLE `unavailable_stats` times, and whose Lookup always fails
// with INVALID_ARGUMENT.
class MisbehavingStore final : public v1::CacheStore::Service {
 public:
  grpc::Status Fetch(grpc::ServerContext* ctx, const v1::FetchRequest*,
                     grpc::ServerWriter<v1::FetchResponse>* writer) override {
    v1::FetchResponse first;
    v1::FetchedBlock* block = first.add_blocks();
    block->set_size_bytes(1024);
    block->add_layer_checksums(0);  // one layer; never sent
    writer->Write(first);
    while (!ctx->IsCancelled()) absl::SleepFor(absl::Milliseconds(5));
    return grpc::Status::CANCELLED;
  }
  grpc::Status Stats(grpc::ServerContext*, const v1::StatsRequest*,
                     v1::StatsResponse* response) override {
    if (stats_calls++ < unavailable_stats) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "warming up");
    }
    response->set_lookups(42);
    return grpc::Status::OK;
  }
  grpc::Status Lookup(grpc::ServerContext*, const v1::LookupRequest*,
                      v1::LookupResponse*) override {
    ++lookup_calls;
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad");
  }

  std::atomic<int> stats_calls{0};
  std::atomic<int> lookup_calls{0};
  int unavailable_stats = 0;
};

class ClientResilienceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
  }
  void TearDown() override { server_->Shutdown(std::chrono::system_clock::now()); }

  ClientOptions Options(absl::Duration timeout) {
    return ClientOptions{.target = "127.0.0.1:" + std::to_string(port_),
                         .timeout = timeout,
                         .initial_backoff = absl::Milliseconds(10)};
  }

  MisbehavingStore service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TEST_F(ClientResilienceTest, DeadlineEndsAStalledFetchStream) {
  CacheStoreClient client(Options(absl::Milliseconds(500)));
  std::vector<uint8_t> buf(1024);
  std::vector<std::span<uint8_t>> out = {std::span(buf)};
  const absl::Time start = absl::Now();
  absl::StatusOr<FetchReply> f = client.Fetch({.lease_id = 1}, out);
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(f.status().code(), absl::StatusCode::kDeadlineExceeded) << f.status();
  EXPECT_GE(took, absl::Milliseconds(450));
  EXPECT_LT(took, absl::Seconds(3));
}

TEST_F(ClientResilienceTest, UnavailableIsRetriedUntilItSucceeds) {
  service_.unavailable_stats = 2;
  CacheStoreClient client(Options(absl::Seconds(10)));
  absl::StatusOr<v1::StatsResponse> s = client.Stats();
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->lookups(), 42u);
  EXPECT_EQ(service_.stats_calls.load(), 3);
}

TEST_F(ClientResilienceTest, UnavailableRetriesStopAtMaxAttempts) {
  service_.unavailable_stats = 100;
  CacheStoreClient client(Options(absl::Seconds(10)));
  EXPECT_EQ(client.Stats().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(service_.stats_calls.load(), ClientOptions().max_attempts);
}

TEST_F(ClientResilienceTest, OtherErrorsAreNotRetried) {
  CacheStoreClient client(Options(absl::Seconds(10)));
  KvLayout layout{.model_id = "m",
                  .num_layers = 1,
                  .num_kv_heads = 1,
                  .head_dim = 8,
                  .dtype = DType::kFp16,
                  .tokens_per_block = 4};
  std::vector<uint32_t> tokens = {1, 2, 3, 4};
  EXPECT_EQ(client.Lookup(layout, tokens).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(service_.lookup_calls.load(), 1);
}

TEST(ClientNoServerTest, NobodyListeningIsUnavailableWithinTheDeadline) {
  // Bind a port and close it again, so that nothing listens on it.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);
  close(fd);
  CacheStoreClient client(ClientOptions{.target = "127.0.0.1:" + std::to_string(port),
                                        .timeout = absl::Seconds(2),
                                        .initial_backoff = absl::Milliseconds(20)});
  const absl::Time start = absl::Now();
  absl::StatusOr<v1::StatsResponse> s = client.Stats();
  EXPECT_TRUE(s.status().code() == absl::StatusCode::kUnavailable ||
              s.status().code() == absl::StatusCode::kDeadlineExceeded)
      << s.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(4));
}

}  // namespace
}  // namespace kvtier
