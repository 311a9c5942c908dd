// The endpoints of a cluster of kvtier-store shards: a static list ("host:port,host:port")
// or a DNS name ("dns:///kvtier-store-headless.ns.svc:50051", every address of which is a
// shard: a StatefulSet's headless Service), resolved again whenever asked.
#ifndef KVTIER_CLIENT_SHARD_ENDPOINTS_H_
#define KVTIER_CLIENT_SHARD_ENDPOINTS_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace kvtier {

class ShardEndpoints {
 public:
  // INVALID_ARGUMENT naming the problem: an empty list, an empty entry, a DNS name without
  // a port.
  static absl::StatusOr<ShardEndpoints> Parse(std::string_view spec);

  // Whether a --store value names a cluster (a list or a DNS name) rather than one store.
  static bool IsCluster(std::string_view spec);

  // The gRPC targets of the shards now, sorted and without duplicates. For a DNS name:
  // every address it resolves to ("10.0.0.7:50051", "[fd00::7]:50051"); UNAVAILABLE when
  // it does not resolve. A static list is returned as given.
  absl::StatusOr<std::vector<std::string>> Resolve() const;

  bool dns() const { return dns_; }
  const std::string& spec() const { return spec_; }

 private:
  std::string spec_;
  bool dns_ = false;
  std::string host_, port_;           // dns
  std::vector<std::string> targets_;  // static
};

}  // namespace kvtier

#endif  // KVTIER_CLIENT_SHARD_ENDPOINTS_H_
