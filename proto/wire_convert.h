// Conversions between the wire types of kvtier.v1 and kvtier's value types (KvLayout,
// BlockKey), and between absl::Status and grpc::Status. Shared by the servers and the
// clients so that both sides read the wire the same way. Pure functions; thread-safe.
#ifndef KVTIER_PROTO_WIRE_CONVERT_H_
#define KVTIER_PROTO_WIRE_CONVERT_H_

#include <grpcpp/support/status.h>

#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cache_store/block_key.h"
#include "cache_store/kv_layout.h"
#include "kvtier/v1/common.pb.h"

namespace kvtier {

// INVALID_ARGUMENT naming the field when the layout is missing or malformed.
absl::StatusOr<KvLayout> LayoutFromProto(const v1::KvLayout& proto);
v1::KvLayout LayoutToProto(const KvLayout& layout);

// INVALID_ARGUMENT naming the position of the first key that is not 32 bytes.
absl::StatusOr<std::vector<BlockKey>> KeysFromProto(
    const google::protobuf::RepeatedPtrField<std::string>& keys);
void KeysToProto(std::span<const BlockKey> keys,
                 google::protobuf::RepeatedPtrField<std::string>* out);

// absl and gRPC share the canonical code numbering.
grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace kvtier

#endif  // KVTIER_PROTO_WIRE_CONVERT_H_
