#include "bench/grpc_stream.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include <cstring>
#include <iostream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/cache_store_client.h"
#include "client/raw_stream_call.h"
#include "services/store_server.h"

namespace kvtier::bench {
namespace {

constexpr uint64_t kMessageBytes = 1 << 20;
constexpr char kGet[] = "/kvtier.bench.ByteStream/Get";
constexpr char kPut[] = "/kvtier.bench.ByteStream/Put";

const std::vector<uint8_t>& Source() {
  static const auto* bytes = new std::vector<uint8_t>(kMessageBytes, 0x5a);
  return *bytes;
}

grpc::ByteBuffer U64Message(uint64_t v) {
  grpc::Slice slice(&v, sizeof(v));
  return grpc::ByteBuffer(&slice, 1);
}

// The 8 bytes of a size message, wherever the transport cut them (0 if fewer arrived).
uint64_t U64Of(const grpc::ByteBuffer& message) {
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (message.Dump(&slices).ok()) {
    for (const grpc::Slice& s : slices)
      bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  uint64_t v = 0;
  if (bytes.size() >= sizeof(v)) std::memcpy(&v, bytes.data(), sizeof(v));
  return v;
}

// Get: read the size, then stream it. Put: count until the client is done, then answer.
class Reactor final : public grpc::ServerGenericBidiReactor {
 public:
  explicit Reactor(bool get) : get_(get) { StartRead(&in_); }

  void OnReadDone(bool ok) override {
    if (get_) {
      if (!ok) return Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no size"));
      remaining_ = U64Of(in_);
      return WriteNext();
    }
    if (ok) {
      received_ += in_.Length();
      in_.Clear();
      return StartRead(&in_);
    }
    out_ = U64Message(received_);
    remaining_ = 0;
    StartWrite(&out_);
  }
  void OnWriteDone(bool ok) override {
    if (!ok) return Finish(grpc::Status(grpc::StatusCode::CANCELLED, "broken"));
    if (!get_) return Finish(grpc::Status::OK);
    WriteNext();
  }
  void OnDone() override { delete this; }

 private:
  void WriteNext() {
    if (remaining_ == 0) return Finish(grpc::Status::OK);
    const uint64_t n = std::min(remaining_, kMessageBytes);
    grpc::Slice slice(Source().data(), n, grpc::Slice::STATIC_SLICE);
    out_ = grpc::ByteBuffer(&slice, 1);
    remaining_ -= n;
    StartWrite(&out_);
  }

  const bool get_;
  grpc::ByteBuffer in_, out_;
  uint64_t remaining_ = 0;
  uint64_t received_ = 0;
};

class Service final : public grpc::CallbackGenericService {
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override {
    return new Reactor(ctx->method() == kGet);
  }
};

}  // namespace

int RunByteStreamServer() {
  Service service;
  StoreServerOptions options;  // kvtier-store's transport settings
  options.listen = "127.0.0.1:0";
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(), &port);
  ConfigureServerBuilder(builder, options);
  builder.RegisterCallbackGenericService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::cerr << "cannot serve the byte stream\n";
    return 1;
  }
  std::cout << "byte stream serving on 127.0.0.1 (port " << port << ")" << std::endl;
  server->Wait();
  return 0;
}

ByteStreamClient::ByteStreamClient(const std::string& target) {
  ClientOptions o;  // kvtier clients' channel settings, on a connection of its own
  o.target = target;
  o.own_connection = true;
  stub_ = std::make_unique<grpc::GenericStub>(MakeStoreChannel(o));
}

absl::StatusOr<uint64_t> ByteStreamClient::Get(uint64_t bytes) {
  grpc::ClientContext ctx;
  RawStreamCall call(*stub_, ctx, kGet);
  uint64_t received = 0;
  if (call.Write(U64Message(bytes)) && call.WritesDone()) {
    grpc::ByteBuffer message;
    while (call.Read(&message)) received += message.Length();
  }
  grpc::Status status = call.Finish();
  if (!status.ok()) return absl::UnavailableError(status.error_message());
  return received;
}

absl::Status ByteStreamClient::Put(const uint8_t* data, uint64_t bytes) {
  grpc::ClientContext ctx;
  RawStreamCall call(*stub_, ctx, kPut);
  bool ok = true;
  for (uint64_t off = 0; ok && off < bytes; off += kMessageBytes) {
    grpc::Slice slice(data + off, std::min(kMessageBytes, bytes - off), grpc::Slice::STATIC_SLICE);
    ok = call.Write(grpc::ByteBuffer(&slice, 1));
  }
  grpc::ByteBuffer reply;
  ok = ok && call.WritesDone() && call.Read(&reply);
  grpc::Status status = call.Finish();
  if (!status.ok()) return absl::UnavailableError(status.error_message());
  if (!ok || U64Of(reply) != bytes) {
    return absl::DataLossError(absl::StrCat("the byte stream lost bytes: ", ok ? "" : "no reply, ",
                                            U64Of(reply), " of ", bytes, " arrived"));
  }
  return absl::OkStatus();
}

}  // namespace kvtier::bench
