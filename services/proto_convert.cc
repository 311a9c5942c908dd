#include "services/proto_convert.h"

#include "absl/strings/str_cat.h"

namespace kvtier {

absl::StatusOr<KvLayout> LayoutFromProto(const v1::KvLayout& proto) {
  KvLayout layout;
  layout.model_id = proto.model_id();
  layout.num_layers = proto.num_layers();
  layout.num_kv_heads = proto.num_kv_heads();
  layout.head_dim = proto.head_dim();
  layout.tokens_per_block = proto.tokens_per_block();
  switch (proto.dtype()) {
    case v1::DTYPE_FP32:
      layout.dtype = DType::kFp32;
      break;
    case v1::DTYPE_FP16:
      layout.dtype = DType::kFp16;
      break;
    case v1::DTYPE_BF16:
      layout.dtype = DType::kBf16;
      break;
    case v1::DTYPE_FP8_E4M3:
      layout.dtype = DType::kFp8E4M3;
      break;
    case v1::DTYPE_INT8:
      layout.dtype = DType::kInt8;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("layout.dtype must be set to a known dtype (got ",
                       static_cast<int>(proto.dtype()), ")"));
  }
  if (absl::Status s = layout.Validate(); !s.ok()) return s;
  return layout;
}

v1::KvLayout LayoutToProto(const KvLayout& layout) {
  v1::KvLayout proto;
  proto.set_model_id(layout.model_id);
  proto.set_num_layers(layout.num_layers);
  proto.set_num_kv_heads(layout.num_kv_heads);
  proto.set_head_dim(layout.head_dim);
  proto.set_tokens_per_block(layout.tokens_per_block);
  switch (layout.dtype) {
    case DType::kFp32:
      proto.set_dtype(v1::DTYPE_FP32);
      break;
    case DType::kFp16:
      proto.set_dtype(v1::DTYPE_FP16);
      break;
    case DType::kBf16:
      proto.set_dtype(v1::DTYPE_BF16);
      break;
    case DType::kFp8E4M3:
      proto.set_dtype(v1::DTYPE_FP8_E4M3);
      break;
    case DType::kInt8:
      proto.set_dtype(v1::DTYPE_INT8);
      break;
  }
  return proto;
}

absl::StatusOr<std::vector<BlockKey>> KeysFromProto(
    const google::protobuf::RepeatedPtrField<std::string>& keys) {
  std::vector<BlockKey> out;
  out.reserve(keys.size());
  for (int i = 0; i < keys.size(); ++i) {
    absl::StatusOr<BlockKey> key = BlockKey::FromBytes(keys[i]);
    if (!key.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("block_keys[", i, "]: ", key.status().message()));
    }
    out.push_back(*key);
  }
  return out;
}

v1::Tier TierToProto(Tier tier) {
  return tier == Tier::kHostDram ? v1::TIER_HOST_DRAM : v1::TIER_LOCAL_SSD;
}

void EventToProto(const BlockEvent& event, v1::BlockEvent* proto) {
  proto->set_seq(event.seq);
  proto->set_type(event.type == BlockEvent::Type::kStored ? v1::BlockEvent::TYPE_STORED
                                                          : v1::BlockEvent::TYPE_REMOVED);
  switch (event.reason) {
    case BlockEvent::Reason::kPut:
      proto->set_reason(v1::BlockEvent::REASON_PUT);
      break;
    case BlockEvent::Reason::kEvicted:
      proto->set_reason(v1::BlockEvent::REASON_EVICTED);
      break;
    case BlockEvent::Reason::kDeleted:
      proto->set_reason(v1::BlockEvent::REASON_DELETED);
      break;
    case BlockEvent::Reason::kCorrupted:
      proto->set_reason(v1::BlockEvent::REASON_CORRUPTED);
      break;
  }
  proto->set_key(std::string(event.key.AsBytes()));
  if (event.parent) proto->set_parent_key(std::string(event.parent->AsBytes()));
  proto->set_tier(TierToProto(event.tier));
  proto->set_layout_fingerprint(event.layout_fingerprint);
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // absl and gRPC share the canonical code numbering.
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

}  // namespace kvtier
