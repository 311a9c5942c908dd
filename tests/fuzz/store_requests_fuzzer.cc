// Every CacheStore request's validation path, end to end: a real store, service and gRPC
// server in this process, called over loopback with arbitrary requests. The input's first
// byte picks the method (Lookup, Put, Fetch incl. its same-node target, Pin, Unpin, Delete,
// Release); the rest is that request's protobuf encoding (for Put: the header, followed by
// one data message of the bytes that did not parse). Any status is fine; a crash, a
// sanitizer report, a hang or a store that stops answering is a bug. The store holds a few
// blocks of tenant "fuzz" (the seeds name them) so that the valid paths run too.
#include <grpc/grpc.h>
#include <grpcpp/create_channel.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "cache_store/block_store.h"
#include "cache_store/log.h"
#include "kvtier/v1/cache_store.grpc.pb.h"
#include "services/store_metrics.h"
#include "services/store_server.h"
#include "services/tenant_auth.h"

namespace {

using namespace kvtier;

struct Fixture {
  std::unique_ptr<BlockStore> store;
  std::unique_ptr<TenantAuthenticator> auth;
  std::unique_ptr<StoreMetrics> metrics;
  std::unique_ptr<StoreServer> server;
  std::unique_ptr<v1::CacheStore::Stub> stub;
};

Fixture* fixture = nullptr;

// The layout and prompt the seeds use: 2 layers x 1 head x 16 dims fp16, 4 tokens a block.
v1::KvLayout SeedLayout() {
  v1::KvLayout l;
  l.set_model_id("fuzz");
  l.set_num_layers(2);
  l.set_num_kv_heads(1);
  l.set_head_dim(16);
  l.set_dtype(v1::DTYPE_FP16);
  l.set_tokens_per_block(4);
  return l;
}

void Start() {
  fixture = new Fixture;
  BlockStoreOptions options;
  options.t1 = {.capacity_bytes = 1 << 20, .min_slot_bytes = 256,
                .lock_mode = MemoryLockMode::kNone};
  options.max_prompt_tokens = 1 << 14;
  fixture->store = *BlockStore::Create(options);
  fixture->auth = TenantAuthenticator::Insecure();
  fixture->metrics = std::make_unique<StoreMetrics>(fixture->store.get());
  StoreServerOptions server_options;
  server_options.listen = "127.0.0.1:0";
  server_options.max_message_bytes = 1 << 20;
  server_options.max_threads = 8;
  server_options.shm_attach.path =
      std::filesystem::temp_directory_path() / ("kvtier-fuzz-" + std::to_string(getpid()));
  static std::string socket_path;
  socket_path = server_options.shm_attach.path;
  std::atexit([] { std::filesystem::remove(socket_path); });
  absl::StatusOr<std::unique_ptr<StoreServer>> server = StoreServer::Start(
      fixture->store.get(), fixture->auth.get(), fixture->metrics.get(), server_options);
  KVTIER_CHECK(server.ok()) << server.status();
  fixture->server = *std::move(server);
  fixture->stub = v1::CacheStore::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(fixture->server->port()), grpc::InsecureChannelCredentials()));
  // Two blocks of the seed prompt (tokens 0..7).
  grpc::ClientContext ctx;
  ctx.AddMetadata(kTenantMetadataKey, "fuzz");
  v1::PutResponse response;
  auto writer = fixture->stub->Put(&ctx, &response);
  v1::PutRequest header;
  *header.mutable_header()->mutable_layout() = SeedLayout();
  for (uint32_t t = 0; t < 8; ++t) header.mutable_header()->add_token_ids(t);
  header.mutable_header()->set_num_blocks(2);
  writer->Write(header);
  v1::PutRequest data;
  data.set_data(std::string(2 * 2 * 2 * 4 * 16 * 2, 'k'));
  writer->Write(data);
  writer->WritesDone();
  const grpc::Status s = writer->Finish();
  KVTIER_CHECK(s.ok()) << s.error_message();
}

template <typename Request>
bool Parse(const uint8_t* data, size_t size, Request* r) {
  return r->ParseFromArray(data, static_cast<int>(size));
}

void Prepare(grpc::ClientContext& ctx) {
  ctx.AddMetadata(kTenantMetadataKey, "fuzz");
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  grpc_init();
  Start();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > (64 << 10)) return 0;
  v1::CacheStore::Stub& stub = *fixture->stub;
  const uint8_t* body = data + 1;
  const size_t n = size - 1;
  grpc::ClientContext ctx;
  Prepare(ctx);
  switch (data[0] % 7) {
    case 0: {
      v1::LookupRequest r;
      if (!Parse(body, n, &r)) return 0;
      v1::LookupResponse out;
      if (stub.Lookup(&ctx, r, &out).ok() && out.lease_id() != 0) {
        grpc::ClientContext release_ctx;
        Prepare(release_ctx);
        v1::ReleaseRequest release;
        release.set_lease_id(out.lease_id());
        v1::ReleaseResponse ignored;
        (void)stub.Release(&release_ctx, release, &ignored);
      }
      break;
    }
    case 1: {
      // The header is the longest prefix that parses; the rest travels as data.
      v1::PutRequest header;
      size_t cut = n;
      while (cut > 0 && !header.mutable_header()->ParseFromArray(body, static_cast<int>(cut))) {
        cut = cut > 64 ? cut - cut / 4 : cut - 1;
      }
      v1::PutResponse out;
      auto writer = stub.Put(&ctx, &out);
      writer->Write(header);
      if (cut < n) {
        v1::PutRequest payload;
        payload.set_data(std::string(reinterpret_cast<const char*>(body + cut), n - cut));
        writer->Write(payload);
      }
      writer->WritesDone();
      (void)writer->Finish();
      break;
    }
    case 2: {
      v1::FetchRequest r;
      if (!Parse(body, n, &r)) return 0;
      auto reader = stub.Fetch(&ctx, r);
      v1::FetchResponse chunk;
      while (reader->Read(&chunk)) {
      }
      (void)reader->Finish();
      break;
    }
    case 3: {
      v1::PinRequest r;
      if (!Parse(body, n, &r)) return 0;
      v1::PinResponse out;
      (void)stub.Pin(&ctx, r, &out);
      break;
    }
    case 4: {
      v1::UnpinRequest r;
      if (!Parse(body, n, &r)) return 0;
      v1::UnpinResponse out;
      (void)stub.Unpin(&ctx, r, &out);
      break;
    }
    case 5: {
      v1::DeleteRequest r;
      if (!Parse(body, n, &r)) return 0;
      v1::DeleteResponse out;
      (void)stub.Delete(&ctx, r, &out);
      break;
    }
    case 6: {
      v1::ReleaseRequest r;
      if (!Parse(body, n, &r)) return 0;
      v1::ReleaseResponse out;
      (void)stub.Release(&ctx, r, &out);
      break;
    }
  }
  // The store still answers, and its accounts are sane.
  const BlockStoreStats stats = fixture->store->Stats();
  KVTIER_CHECK(stats.t1_used_bytes <= stats.t1_capacity_bytes) << "T1 over capacity";
  return 0;
}
