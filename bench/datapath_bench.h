// kvtier-bench datapath: kvtier's data plane against its references, all measured in ONE
// run on the same machine:
//  - memcpy of the bytes a same-node call moves (best of ten, measured at the start and
//    again before the same-node part; the faster is the reference), and a plain loopback
//    TCP stream;
//  - Debian's redis-server (started here), GET and SET of values of --value_bytes with 1,
//    4 and 16 clients (its own redis-benchmark);
//  - a bare gRPC byte stream (bench/grpc_stream.h, a server process of its own with the
//    store's transport settings): the ceiling gRPC itself sets for the same request shape;
//    and the same stream doing the per-byte work kvtier's integrity and memory model require
//    and nothing else (Get: the server hashes what it sends from its own memory, the client
//    copies what arrives into its buffer and hashes it; Put: the client hashes, the server
//    copies out of gRPC's buffers into its memory and hashes): the ceiling for any gRPC
//    store that verifies every byte, without kvtier's per-request work;
//  - kvtier Fetch and Put over the socket against a real kvtier-store process, one block of
//    --value_bytes per request, the same client counts (each client on its own connection,
//    as each redis-benchmark client is): a Fetch verifies every layer, a Put sends its layer
//    checksums;
//  - kvtier Fetch and Put through the same-node data plane (an attached region), a restore's
//    worth of blocks per call (--blocks_per_call), and one block per call.
// Each figure is one JSON line with its ratio to its reference. Requests run for --seconds
// each; bandwidth = value bytes moved / wall time.
#ifndef KVTIER_BENCH_DATAPATH_BENCH_H_
#define KVTIER_BENCH_DATAPATH_BENCH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kvtier::bench {

struct DatapathBenchOptions {
  uint64_t value_bytes = 2 << 20;  // a Llama-3-8B bf16 block of 16 tokens
  std::vector<uint32_t> clients = {1, 4, 16};
  double seconds = 2;
  uint32_t blocks_per_call = 256;
  std::string store_binary;  // empty: the kvtier-store beside this program
  std::string self_binary;   // this program (it serves the byte stream as a child)
  std::string redis_server = "redis-server";
  std::string redis_benchmark = "redis-benchmark";
  // Which parts to run (all by default); a ratio whose reference did not run is left out.
  bool run_references = true, run_redis = true, run_grpc = true, run_socket = true,
       run_same_node = true;
};

absl::StatusOr<std::vector<std::string>> RunDatapathBench(const DatapathBenchOptions& o);

}  // namespace kvtier::bench

#endif  // KVTIER_BENCH_DATAPATH_BENCH_H_
