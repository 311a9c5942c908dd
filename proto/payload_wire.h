// Payload wire codec: moves block payload bytes between gRPC byte buffers and block
// memory without staging them in protobuf `bytes` fields.
//
// PutRequest.data and FetchResponse.data carry multi-MiB blocks. Parsing them into
// protobuf strings and serialising from protobuf strings costs one extra copy each way,
// so the payload-carrying calls use raw gRPC methods and this codec instead:
//  - Encode*: the small fields are encoded into one owned slice; the payload goes in as a
//    second slice that *references* the caller's memory. That memory must stay unchanged
//    and alive until the call has finished (the store's read handle or the client's
//    payload span outlive the call).
//  - SplitPayload: the payload field comes back as views into the received slices (no
//    copy); every other field is handed back, re-encoded, for protobuf to parse.
// The bytes on the wire are the ordinary protobuf encoding of the messages in
// cache_store.proto, so any gRPC client or server interoperates. Thread-safe (pure).
#ifndef KVTIER_PROTO_PAYLOAD_WIRE_H_
#define KVTIER_PROTO_PAYLOAD_WIRE_H_

#include <grpcpp/support/byte_buffer.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "google/protobuf/message.h"

namespace kvtier {

// Field numbers of the payload fields in cache_store.proto.
inline constexpr uint32_t kPutRequestDataField = 2;
inline constexpr uint32_t kFetchResponseDataField = 4;

// An ordinary protobuf message as a byte buffer (one copy; for small messages).
grpc::ByteBuffer EncodeMessage(const google::protobuf::Message& message);
// INVALID_ARGUMENT when the bytes are not a valid encoding of `message`'s type.
absl::Status DecodeMessage(const grpc::ByteBuffer& buffer, google::protobuf::Message* message);

// PutRequest{data = payload}, payload referenced.
grpc::ByteBuffer EncodePutData(std::span<const uint8_t> payload);
// FetchResponse{block, offset, data = payload}, payload referenced.
grpc::ByteBuffer EncodeFetchChunk(uint32_t block, uint64_t offset,
                                  std::span<const uint8_t> payload);

// Bytes [offset, offset + bytes.size()) of a Fetch's block `block`, where they are.
struct PayloadRange {
  uint32_t block = 0;
  uint64_t offset = 0;
  std::span<const uint8_t> bytes;
};
// FetchResponse{ranges = (block, offset, length) of each, data = their bytes back to back},
// every range's bytes referenced (one slice each).
grpc::ByteBuffer EncodeFetchRanges(std::span<const PayloadRange> ranges);

struct SplitMessage {
  std::string rest;  // every field but the payload field, protobuf-encoded
  bool has_payload = false;
  std::vector<std::span<const uint8_t>> payload;  // views into `slices`, in order
  std::vector<grpc::Slice> slices;                // keeps the views valid
  uint64_t payload_size() const;
};

// Splits one message into its payload field (`payload_field`, length-delimited, at most
// once) and the rest. INVALID_ARGUMENT for malformed wire data or a repeated payload field.
absl::StatusOr<SplitMessage> SplitPayload(const grpc::ByteBuffer& buffer, uint32_t payload_field);

}  // namespace kvtier

#endif  // KVTIER_PROTO_PAYLOAD_WIRE_H_
