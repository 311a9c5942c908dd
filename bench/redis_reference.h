// RedisReference: Debian's redis-server, started for the length of a benchmark on a free
// loopback port (no persistence), and measured with its own redis-benchmark: the reference
// kvtier's socket data plane is held to (GET and SET of values of the same size, the same
// number of clients, in the same run). Not thread-safe.
#ifndef KVTIER_BENCH_REDIS_REFERENCE_H_
#define KVTIER_BENCH_REDIS_REFERENCE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "bench/child_process.h"

namespace kvtier::bench {

struct RedisThroughput {
  double get_gb_per_s = 0;
  double set_gb_per_s = 0;
};

class RedisReference {
 public:
  // NOT_FOUND naming the binary when it is not installed (scripts/install_deps.sh has it).
  static absl::StatusOr<std::unique_ptr<RedisReference>> Start(const std::string& server_binary);

  // redis-benchmark -t set,get -d value_bytes -c clients -n requests: bytes per second of
  // values moved (requests x value_bytes / time).
  absl::StatusOr<RedisThroughput> Measure(const std::string& benchmark_binary, uint64_t value_bytes,
                                          int clients, uint64_t requests);

 private:
  std::unique_ptr<ChildProcess> server_;
  int port_ = 0;
};

}  // namespace kvtier::bench

#endif  // KVTIER_BENCH_REDIS_REFERENCE_H_
