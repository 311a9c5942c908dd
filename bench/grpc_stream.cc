#include "bench/grpc_stream.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include <array>
#include <atomic>
#include <cstring>
#include <iostream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cache_store/checksum.h"
#include "client/cache_store_client.h"
#include "client/raw_stream_call.h"
#include "services/store_server.h"

namespace kvtier::bench {
namespace {

constexpr uint64_t kMessageBytes = 1 << 20;
constexpr char kGet[] = "/kvtier.bench.ByteStream/Get";
constexpr char kPut[] = "/kvtier.bench.ByteStream/Put";
constexpr char kPutKept[] = "/kvtier.bench.ByteStream/PutKept";
constexpr char kGetVerified[] = "/kvtier.bench.ByteStream/GetVerified";
// The layers of PutKept and GetVerified (a Llama-3-8B layer of K and V), and their server's
// memory: slots of kSlotBytes, taken in turn by calls (a slot may be shared by concurrent
// calls: PutKept's bytes are never read back, GetVerified's are constant; only the cost of
// touching them counts), as many as kvtier-bench datapath's store holds blocks to fetch.
constexpr uint64_t kLayerBytes = 64 << 10;
constexpr uint64_t kSlotBytes = 16 << 20;
constexpr uint64_t kSlots = 16;

uint8_t* NextSlot() {
  static auto* arena = new std::vector<uint8_t>(kSlots * kSlotBytes, 0x5a);
  static std::atomic<uint64_t> next{0};
  return arena->data() + (next.fetch_add(1) % kSlots) * kSlotBytes;
}

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
// PutKept: as Put, and each message's bytes are also copied into a slot of this process's
// memory (cache-bypassing stores) and hashed by layer as they land, as kvtier's Put does.
// GetVerified: as Get, from a slot of this process's memory, each message's layers hashed
// just before it is written, as kvtier's Fetch verifies T1.
class Reactor final : public grpc::ServerGenericBidiReactor {
 public:
  Reactor(bool get, bool keep, bool verify) : get_(get), keep_(keep), verify_(verify) {
    if (keep_ || verify_) slot_ = NextSlot();
    if (keep_) {
      hasher_ = std::make_unique<LayerHasher>(kLayerBytes, sums_);
    }
    StartRead(&in_);
  }

  void OnReadDone(bool ok) override {
    if (get_) {
      if (!ok) return Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no size"));
      remaining_ = U64Of(in_);
      return WriteNext();
    }
    if (ok) {
      if (keep_) Keep();
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
    const uint8_t* from = Source().data();
    if (verify_) {
      from = slot_ + sent_ % (kSlotBytes - kMessageBytes);
      for (uint64_t off = 0; off < n; off += kLayerBytes) {
        checksum_ ^= RangeChecksum(from + off, std::min(kLayerBytes, n - off));
      }
      sent_ += n;
    }
    grpc::Slice slice(from, n, grpc::Slice::STATIC_SLICE);
    out_ = grpc::ByteBuffer(&slice, 1);
    remaining_ -= n;
    StartWrite(&out_);
  }

  void Keep() {
    std::vector<grpc::Slice> slices;
    if (!in_.Dump(&slices).ok()) return;
    constexpr uint64_t kBlockBytes = kLayerBytes * std::tuple_size_v<decltype(sums_)>;
    for (const grpc::Slice& s : slices) {
      for (size_t done = 0; done < s.size();) {
        if (kept_ % kBlockBytes == 0 && kept_ > 0) {
          hasher_ = std::make_unique<LayerHasher>(kLayerBytes, sums_);  // the next block
        }
        const uint64_t at = kept_ % kSlotBytes;
        const size_t piece = std::min<uint64_t>(
            {s.size() - done, uint64_t{64} << 10, kSlotBytes - at, kBlockBytes - kept_ % kBlockBytes});
        hasher_->Update(s.begin() + done, piece);
        StreamingCopy(slot_ + at, s.begin() + done, piece);
        done += piece;
        kept_ += piece;
      }
    }
  }

  const bool get_;
  const bool keep_;
  const bool verify_;
  uint64_t sent_ = 0;
  uint64_t checksum_ = 0;
  uint8_t* slot_ = nullptr;
  uint64_t kept_ = 0;
  std::array<uint64_t, 32> sums_{};
  std::unique_ptr<LayerHasher> hasher_;
  grpc::ByteBuffer in_, out_;
  uint64_t remaining_ = 0;
  uint64_t received_ = 0;
};

class Service final : public grpc::CallbackGenericService {
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override {
    const std::string& m = ctx->method();
    return new Reactor(m == kGet || m == kGetVerified, m == kPutKept, m == kGetVerified);
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

absl::StatusOr<uint64_t> ByteStreamClient::Get(uint64_t bytes, uint8_t* verify_into) {
  grpc::ClientContext ctx;
  RawStreamCall call(*stub_, ctx, verify_into != nullptr ? kGetVerified : kGet);
  uint64_t received = 0;
  std::vector<uint64_t> sums(bytes / kLayerBytes + 1);
  LayerHasher hasher(kLayerBytes, sums);
  if (call.Write(U64Message(bytes)) && call.WritesDone()) {
    grpc::ByteBuffer message;
    std::vector<grpc::Slice> slices;
    while (call.Read(&message)) {
      if (verify_into != nullptr && message.Dump(&slices).ok()) {
        // kvtier's client: copy into the caller's buffer, hash each layer where it landed.
        for (const grpc::Slice& s : slices) {
          const uint64_t n = std::min<uint64_t>(s.size(), bytes - std::min(bytes, received));
          std::memcpy(verify_into + received, s.begin(), n);
          hasher.Update(verify_into + received, n);
          received += s.size();
        }
        continue;
      }
      received += message.Length();
    }
  }
  grpc::Status status = call.Finish();
  if (!status.ok()) return absl::UnavailableError(status.error_message());
  return received;
}

absl::Status ByteStreamClient::Put(const uint8_t* data, uint64_t bytes, bool keep) {
  grpc::ClientContext ctx;
  if (keep) {
    // The client's share of kvtier's integrity work: one hash pass over what it sends.
    std::vector<uint64_t> sums(bytes / kLayerBytes + 1);
    ComputeLayerChecksums(data, kLayerBytes, std::span(sums).first(bytes / kLayerBytes));
  }
  RawStreamCall call(*stub_, ctx, keep ? kPutKept : kPut);
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
