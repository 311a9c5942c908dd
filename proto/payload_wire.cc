#include "proto/payload_wire.h"

#include "absl/strings/str_cat.h"

namespace kvtier {
namespace {

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

void AppendVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void AppendTag(std::string& out, uint32_t field, WireType type) {
  AppendVarint(out, (uint64_t{field} << 3) | type);
}

// A message made of an owned prefix (small fields, tag and length of the payload field)
// followed by the referenced payload.
grpc::ByteBuffer PrefixAndPayload(const std::string& prefix, std::span<const uint8_t> payload) {
  grpc::Slice slices[2] = {grpc::Slice(prefix),
                           grpc::Slice(payload.data(), payload.size(), grpc::Slice::STATIC_SLICE)};
  return grpc::ByteBuffer(slices, payload.empty() ? 1 : 2);
}

// Reads forward through a byte buffer's slices; fields may straddle slice boundaries.
class SliceCursor {
 public:
  explicit SliceCursor(const std::vector<grpc::Slice>& slices) : slices_(slices) { SkipEmpty(); }

  bool AtEnd() const { return slice_ == slices_.size(); }

  // Reads a varint; appends its bytes to `raw` when given.
  bool ReadVarint(uint64_t* value, std::string* raw) {
    *value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (AtEnd()) return false;
      const uint8_t b = slices_[slice_].begin()[offset_];
      if (raw != nullptr) raw->push_back(static_cast<char>(b));
      Advance(1);
      *value |= uint64_t{b & 0x7fu} << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  }

  // Consumes n bytes, handing them to `sink` as spans (views into the slices).
  template <typename Sink>
  bool Take(uint64_t n, Sink sink) {
    while (n > 0) {
      if (AtEnd()) return false;
      const grpc::Slice& s = slices_[slice_];
      const uint64_t here = std::min<uint64_t>(n, s.size() - offset_);
      sink(std::span<const uint8_t>(s.begin() + offset_, here));
      Advance(here);
      n -= here;
    }
    return true;
  }

 private:
  void Advance(uint64_t n) {
    offset_ += n;
    if (offset_ == slices_[slice_].size()) {
      ++slice_;
      offset_ = 0;
      SkipEmpty();
    }
  }
  void SkipEmpty() {
    while (slice_ < slices_.size() && slices_[slice_].size() == 0) ++slice_;
  }

  const std::vector<grpc::Slice>& slices_;
  size_t slice_ = 0;
  uint64_t offset_ = 0;
};

}  // namespace

grpc::ByteBuffer EncodeMessage(const google::protobuf::Message& message) {
  const std::string bytes = message.SerializeAsString();
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

absl::Status DecodeMessage(const grpc::ByteBuffer& buffer, google::protobuf::Message* message) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return absl::InvalidArgumentError("unreadable message");
  std::string bytes;
  bytes.reserve(buffer.Length());
  for (const grpc::Slice& s : slices)
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  if (!message->ParseFromString(bytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed ", message->GetDescriptor()->name(), " message"));
  }
  return absl::OkStatus();
}

grpc::ByteBuffer EncodePutData(std::span<const uint8_t> payload) {
  std::string prefix;
  AppendTag(prefix, kPutRequestDataField, kLengthDelimited);
  AppendVarint(prefix, payload.size());
  return PrefixAndPayload(prefix, payload);
}

grpc::ByteBuffer EncodeFetchChunk(uint32_t block, uint64_t offset,
                                  std::span<const uint8_t> payload) {
  // Field numbers of FetchResponse.block and .offset (cache_store.proto).
  constexpr uint32_t kBlockField = 2;
  constexpr uint32_t kOffsetField = 3;
  std::string prefix;
  if (block != 0) {
    AppendTag(prefix, kBlockField, kVarint);
    AppendVarint(prefix, block);
  }
  if (offset != 0) {
    AppendTag(prefix, kOffsetField, kVarint);
    AppendVarint(prefix, offset);
  }
  AppendTag(prefix, kFetchResponseDataField, kLengthDelimited);
  AppendVarint(prefix, payload.size());
  return PrefixAndPayload(prefix, payload);
}

grpc::ByteBuffer EncodeFetchRanges(std::span<const PayloadRange> ranges) {
  // Field numbers of FetchResponse.ranges and BlockRange's fields (cache_store.proto).
  constexpr uint32_t kRangesField = 6;
  constexpr uint32_t kRangeBlock = 1, kRangeOffset = 2, kRangeLength = 3;
  std::string prefix;
  uint64_t total = 0;
  for (const PayloadRange& r : ranges) {
    std::string range;
    if (r.block != 0) {
      AppendTag(range, kRangeBlock, kVarint);
      AppendVarint(range, r.block);
    }
    if (r.offset != 0) {
      AppendTag(range, kRangeOffset, kVarint);
      AppendVarint(range, r.offset);
    }
    AppendTag(range, kRangeLength, kVarint);
    AppendVarint(range, r.bytes.size());
    AppendTag(prefix, kRangesField, kLengthDelimited);
    AppendVarint(prefix, range.size());
    prefix += range;
    total += r.bytes.size();
  }
  AppendTag(prefix, kFetchResponseDataField, kLengthDelimited);
  AppendVarint(prefix, total);
  std::vector<grpc::Slice> slices;
  slices.reserve(ranges.size() + 1);
  slices.emplace_back(prefix);
  for (const PayloadRange& r : ranges) {
    if (!r.bytes.empty()) {
      slices.emplace_back(r.bytes.data(), r.bytes.size(), grpc::Slice::STATIC_SLICE);
    }
  }
  return grpc::ByteBuffer(slices.data(), slices.size());
}

uint64_t SplitMessage::payload_size() const {
  uint64_t n = 0;
  for (const auto& p : payload) n += p.size();
  return n;
}

absl::StatusOr<SplitMessage> SplitPayload(const grpc::ByteBuffer& buffer, uint32_t payload_field) {
  SplitMessage out;
  if (!buffer.Dump(&out.slices).ok()) return absl::InvalidArgumentError("unreadable message");
  const absl::Status malformed = absl::InvalidArgumentError("malformed protobuf wire data");
  SliceCursor cursor(out.slices);
  auto append_rest = [&](std::span<const uint8_t> s) {
    out.rest.append(reinterpret_cast<const char*>(s.data()), s.size());
  };
  while (!cursor.AtEnd()) {
    std::string tag_bytes;
    uint64_t tag;
    if (!cursor.ReadVarint(&tag, &tag_bytes) || (tag >> 3) == 0) return malformed;
    const uint64_t field = tag >> 3;
    const uint32_t type = tag & 7;
    if (field == payload_field && type == kLengthDelimited) {
      if (out.has_payload) {
        return absl::InvalidArgumentError(
            absl::StrCat("field ", payload_field, " (the payload) appears twice in one message"));
      }
      out.has_payload = true;
      uint64_t length;
      if (!cursor.ReadVarint(&length, nullptr) ||
          !cursor.Take(length, [&](std::span<const uint8_t> s) { out.payload.push_back(s); })) {
        return malformed;
      }
      continue;
    }
    out.rest += tag_bytes;
    bool ok = false;
    uint64_t v;
    switch (type) {
      case kVarint:
        ok = cursor.ReadVarint(&v, &out.rest);
        break;
      case kFixed64:
        ok = cursor.Take(8, append_rest);
        break;
      case kFixed32:
        ok = cursor.Take(4, append_rest);
        break;
      case kLengthDelimited:
        ok = cursor.ReadVarint(&v, &out.rest) && cursor.Take(v, append_rest);
        break;
      default:  // groups (3, 4) are not used by kvtier and are rejected
        ok = false;
    }
    if (!ok) return malformed;
  }
  return out;
}

}  // namespace kvtier
