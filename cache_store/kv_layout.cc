#include "cache_store/kv_layout.h"

#include <openssl/sha.h>

#include "absl/strings/str_cat.h"

namespace kvtier {

uint32_t DTypeBytes(DType dtype) {
  switch (dtype) {
    case DType::kFp32:
      return 4;
    case DType::kFp16:
    case DType::kBf16:
      return 2;
    case DType::kFp8E4M3:
    case DType::kInt8:
      return 1;
  }
  return 0;
}

const char* DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kFp32:
      return "fp32";
    case DType::kFp16:
      return "fp16";
    case DType::kBf16:
      return "bf16";
    case DType::kFp8E4M3:
      return "fp8_e4m3";
    case DType::kInt8:
      return "int8";
  }
  return "unknown";
}

namespace {

absl::Status CheckRange(const char* field, uint64_t value, uint64_t max) {
  if (value == 0) {
    return absl::InvalidArgumentError(absl::StrCat("layout.", field, " must be > 0"));
  }
  if (value > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("layout.", field, " = ", value, " exceeds the maximum ", max));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status KvLayout::Validate() const {
  if (model_id.empty()) {
    return absl::InvalidArgumentError("layout.model_id must not be empty");
  }
  if (model_id.size() > kMaxModelIdLength) {
    return absl::InvalidArgumentError(absl::StrCat("layout.model_id is ", model_id.size(),
                                                   " bytes; the maximum is ", kMaxModelIdLength));
  }
  if (absl::Status s = CheckRange("num_layers", num_layers, kMaxLayers); !s.ok()) return s;
  if (kind == LayoutKind::kMla) {
    if (num_kv_heads != 0 || head_dim != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "an MLA layout has no K/V heads: leave num_kv_heads and head_dim unset (got ",
          num_kv_heads, " and ", head_dim, "); its width is kv_lora_rank + rope_dim"));
    }
    if (absl::Status s = CheckRange("kv_lora_rank", kv_lora_rank, kMaxHeadDim * 4); !s.ok()) {
      return s;
    }
    if (rope_dim > kMaxHeadDim) {
      return absl::InvalidArgumentError(
          absl::StrCat("layout.rope_dim = ", rope_dim, " exceeds the maximum ", kMaxHeadDim));
    }
  } else if (kind == LayoutKind::kKvHeads) {
    if (kv_lora_rank != 0 || rope_dim != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "kv_lora_rank and rope_dim belong to MLA layouts; this layout has K/V heads (got ",
          kv_lora_rank, " and ", rope_dim, ")"));
    }
    if (absl::Status s = CheckRange("num_kv_heads", num_kv_heads, kMaxKvHeads); !s.ok()) {
      return s;
    }
    if (absl::Status s = CheckRange("head_dim", head_dim, kMaxHeadDim); !s.ok()) return s;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("layout.kind ", static_cast<int>(kind), " is not a known layout kind"));
  }
  if (absl::Status s = CheckRange("tokens_per_block", tokens_per_block, kMaxTokensPerBlock);
      !s.ok()) {
    return s;
  }
  if (DTypeBytes(dtype) == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("layout.dtype ", static_cast<int>(dtype), " is not a known dtype"));
  }
  if (BlockBytes() > kMaxBlockBytes) {
    return absl::InvalidArgumentError(absl::StrCat("layout implies a block of ", BlockBytes(),
                                                   " bytes; the maximum is ", kMaxBlockBytes));
  }
  return absl::OkStatus();
}

uint64_t KvLayout::LayerElementBytes() const {
  const uint64_t per_token = kind == LayoutKind::kMla
                                 ? uint64_t{kv_lora_rank} + rope_dim
                                 : uint64_t{2} * num_kv_heads * head_dim;
  return per_token * DTypeBytes(dtype) * tokens_per_block;
}

uint64_t KvLayout::LayerScaleBytes() const {
  if (!quantized()) return 0;
  const uint64_t scales = kind == LayoutKind::kMla ? 2 : uint64_t{2} * num_kv_heads;
  return scales * sizeof(float);
}

uint64_t KvLayout::LayerBytes() const { return LayerElementBytes() + LayerScaleBytes(); }

uint64_t KvLayout::BlockBytes() const { return LayerBytes() * num_layers; }

uint64_t KvLayout::Fingerprint() const {
  // Length-prefixed so that no two distinct layouts encode alike. The v1 form is that of
  // the unquantized K/V-head layouts, whose payload format never changed; a quantized one
  // says that its payload carries scales, and MLA has its own form.
  std::string canonical;
  if (kind == LayoutKind::kMla) {
    canonical = absl::StrCat("kvtier.layout.mla.v1|", model_id.size(), ":", model_id, "|",
                             num_layers, "|", kv_lora_rank, "|", rope_dim, "|",
                             static_cast<int>(dtype), "|", tokens_per_block);
  } else {
    canonical = absl::StrCat("kvtier.layout.v1|", model_id.size(), ":", model_id, "|",
                             num_layers, "|", num_kv_heads, "|", head_dim, "|",
                             static_cast<int>(dtype), "|", tokens_per_block);
    if (quantized()) absl::StrAppend(&canonical, "|scales.f32.per_head");
  }
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(canonical.data()), canonical.size(), digest);
  uint64_t fp = 0;
  for (int i = 0; i < 8; ++i) fp = (fp << 8) | digest[i];
  return fp;
}

std::string KvLayout::DebugString() const {
  if (kind == LayoutKind::kMla) {
    return absl::StrCat(model_id, " mla layers=", num_layers, " kv_lora_rank=", kv_lora_rank,
                        " rope_dim=", rope_dim, " dtype=", DTypeName(dtype),
                        " tokens_per_block=", tokens_per_block);
  }
  return absl::StrCat(model_id, " layers=", num_layers, " kv_heads=", num_kv_heads,
                      " head_dim=", head_dim, " dtype=", DTypeName(dtype),
                      " tokens_per_block=", tokens_per_block);
}

}  // namespace kvtier
