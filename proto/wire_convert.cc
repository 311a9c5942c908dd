#include "proto/wire_convert.h"

#include "absl/strings/str_cat.h"

namespace kvtier {

// The engine's DType values are the wire enum's values; keep them in step.
static_assert(static_cast<int>(DType::kFp32) == v1::DTYPE_FP32);
static_assert(static_cast<int>(DType::kFp16) == v1::DTYPE_FP16);
static_assert(static_cast<int>(DType::kBf16) == v1::DTYPE_BF16);
static_assert(static_cast<int>(DType::kFp8E4M3) == v1::DTYPE_FP8_E4M3);
static_assert(static_cast<int>(DType::kInt8) == v1::DTYPE_INT8);

absl::StatusOr<KvLayout> LayoutFromProto(const v1::KvLayout& proto) {
  if (proto.dtype() == v1::DTYPE_UNSPECIFIED || !v1::DType_IsValid(proto.dtype())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "layout.dtype must be set to a known dtype (got ", static_cast<int>(proto.dtype()), ")"));
  }
  if (!v1::LayoutKind_IsValid(proto.kind())) {
    return absl::InvalidArgumentError(absl::StrCat("layout.kind ", static_cast<int>(proto.kind()),
                                                   " is not a known layout kind"));
  }
  KvLayout layout{.model_id = proto.model_id(),
                  .num_layers = proto.num_layers(),
                  .num_kv_heads = proto.num_kv_heads(),
                  .head_dim = proto.head_dim(),
                  .dtype = static_cast<DType>(proto.dtype()),
                  .tokens_per_block = proto.tokens_per_block(),
                  .kind = proto.kind() == v1::LAYOUT_KIND_MLA ? LayoutKind::kMla
                                                              : LayoutKind::kKvHeads,
                  .kv_lora_rank = proto.kv_lora_rank(),
                  .rope_dim = proto.rope_dim()};
  if (absl::Status s = layout.Validate(); !s.ok()) return s;
  return layout;
}

v1::KvLayout LayoutToProto(const KvLayout& layout) {
  v1::KvLayout proto;
  proto.set_model_id(layout.model_id);
  proto.set_num_layers(layout.num_layers);
  proto.set_num_kv_heads(layout.num_kv_heads);
  proto.set_head_dim(layout.head_dim);
  proto.set_dtype(static_cast<v1::DType>(layout.dtype));
  proto.set_tokens_per_block(layout.tokens_per_block);
  if (layout.kind == LayoutKind::kMla) {
    proto.set_kind(v1::LAYOUT_KIND_MLA);
    proto.set_kv_lora_rank(layout.kv_lora_rank);
    proto.set_rope_dim(layout.rope_dim);
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

void KeysToProto(std::span<const BlockKey> keys,
                 google::protobuf::RepeatedPtrField<std::string>* out) {
  out->Reserve(static_cast<int>(out->size() + keys.size()));
  for (const BlockKey& k : keys) out->Add()->assign(k.AsBytes());
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

}  // namespace kvtier
