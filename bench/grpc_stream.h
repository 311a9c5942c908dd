// A bare gRPC byte stream: the ceiling gRPC itself puts on the data plane, measured beside
// kvtier's own Fetch and Put (kvtier-bench datapath). The server answers
//   /kvtier.bench.ByteStream/Get  request: 8 bytes N  ->  N bytes, in messages of up to
//                                  1 MiB referencing one static buffer (no copy, no hash)
//   /kvtier.bench.ByteStream/Put  request stream: any bytes  ->  8 bytes: how many arrived
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
  // Receives `bytes` bytes; returns how many arrived.
  absl::StatusOr<uint64_t> Get(uint64_t bytes);
  // Sends `bytes` bytes from `data` (in messages of up to 1 MiB).
  absl::Status Put(const uint8_t* data, uint64_t bytes);

 private:
  std::unique_ptr<grpc::GenericStub> stub_;
};

}  // namespace kvtier::bench

#endif  // KVTIER_BENCH_GRPC_STREAM_H_
