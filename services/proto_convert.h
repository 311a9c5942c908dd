// Conversions between the wire types (kvtier.v1 protos) and the engine's types, and from
// absl::Status to grpc::Status at the edge. Pure functions; thread-safe.
#ifndef KVTIER_SERVICES_PROTO_CONVERT_H_
#define KVTIER_SERVICES_PROTO_CONVERT_H_

#include <grpcpp/support/status.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cache_store/block_key.h"
#include "cache_store/event_log.h"
#include "cache_store/kv_layout.h"
#include "cache_store/tier.h"
#include "kvtier/v1/cache_store.pb.h"

namespace kvtier {

// INVALID_ARGUMENT naming the field when the layout is missing or malformed.
absl::StatusOr<KvLayout> LayoutFromProto(const v1::KvLayout& proto);
v1::KvLayout LayoutToProto(const KvLayout& layout);

// INVALID_ARGUMENT naming the position of the first key that is not 32 bytes.
absl::StatusOr<std::vector<BlockKey>> KeysFromProto(
    const google::protobuf::RepeatedPtrField<std::string>& keys);

v1::Tier TierToProto(Tier tier);
void EventToProto(const BlockEvent& event, v1::BlockEvent* proto);

grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace kvtier

#endif  // KVTIER_SERVICES_PROTO_CONVERT_H_
