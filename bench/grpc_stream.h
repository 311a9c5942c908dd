// A bare gRPC byte stream: the ceiling gRPC itself puts on the data plane, measured beside
// kvtier's own Fetch and Put (kvtier-bench datapath). The server answers
//   /kvtier.bench.ByteStream/Get  request: 8 bytes N  ->  N bytes, in messages of up to
//                                  1 MiB referencing one static buffer (no copy, no hash)
//   /kvtier.bench.ByteStream/GetVerified  as Get, from the server's own memory (distinct
//                                  slots, not one hot buffer), each message's 64 KiB layers
//                                  hashed before it is written; the client copies what arrives
//                                  into the caller's buffer and hashes it there: the per-byte
//                                  work of kvtier's Fetch without its per-request work
//   /kvtier.bench.ByteStream/Put  request stream: any bytes  ->  8 bytes: how many arrived
//   /kvtier.bench.ByteStream/PutKept  as Put, and the server also copies each message out of
//                                  gRPC's buffers into its own memory and hashes it by 64 KiB
//                                  layer (the client hashes before sending): the per-byte work
//                                  of any gRPC store that keeps and verifies what it receives,
//                                  without kvtier's per-request work (keys, slots, index)
// with the same server settings as kvtier-store (StoreServerOptions' channel arguments). The
// client counts the bytes without copying them anywhere. Thread-safe.
#ifndef KVTIER_BENCH_GRPC_STREAM_H_
#define KVTIER_BENCH_GRPC_STREAM_H_

#include <grpcpp/generic/generic_stub.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace kvtier::bench {

// Serves on 127.0.0.1 until the process is killed; logs "serving on ... (port N)".
int RunByteStreamServer();

class ByteStreamClient {
 public:
  // A client on a connection of its own.
  explicit ByteStreamClient(const std::string& target);
  // Receives `bytes` bytes; returns how many arrived. `verify_into` (`bytes` long): from
  // GetVerified, copied there and hashed.
  absl::StatusOr<uint64_t> Get(uint64_t bytes, uint8_t* verify_into = nullptr);
  // Sends `bytes` bytes from `data` (in messages of up to 1 MiB); `keep`: to PutKept.
  absl::Status Put(const uint8_t* data, uint64_t bytes, bool keep = false);

 private:
  std::unique_ptr<grpc::GenericStub> stub_;
};

}  // namespace kvtier::bench

#endif  // KVTIER_BENCH_GRPC_STREAM_H_
