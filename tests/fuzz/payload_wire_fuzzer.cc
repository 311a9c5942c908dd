// The raw Put/Fetch payload codec (proto/payload_wire.h) on arbitrary wire bytes, cut into
// up to three slices as gRPC may deliver them: SplitPayload and DecodeMessage refuse bad
// encodings, and what SplitPayload accepts is consistent: the payload views lie inside the
// message and add up, and the rest re-parses as the message it came from.
#include <grpc/grpc.h>
#include <grpcpp/support/byte_buffer.h>

#include <cstdint>
#include <vector>

#include "cache_store/log.h"
#include "kvtier/v1/cache_store.pb.h"
#include "proto/payload_wire.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  grpc_init();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  // The first two bytes choose where the slices break.
  const size_t body = size - 2;
  const size_t cut1 = body ? data[0] % (body + 1) : 0;
  const size_t cut2 = cut1 + (body - cut1 ? data[1] % (body - cut1 + 1) : 0);
  const uint8_t* p = data + 2;
  std::vector<grpc::Slice> slices;
  for (auto [b, e] : {std::pair{size_t{0}, cut1}, std::pair{cut1, cut2}, std::pair{cut2, body}}) {
    if (e > b) slices.emplace_back(p + b, e - b);
  }
  grpc::ByteBuffer buffer(slices.data(), slices.size());
  for (const uint32_t field : {kvtier::kPutRequestDataField, kvtier::kFetchResponseDataField}) {
    absl::StatusOr<kvtier::SplitMessage> split = kvtier::SplitPayload(buffer, field);
    if (!split.ok()) continue;
    uint64_t total = 0;
    for (std::span<const uint8_t> v : split->payload) total += v.size();
    KVTIER_CHECK(total == split->payload_size() && total <= body) << "payload views add up wrong";
    KVTIER_CHECK(split->has_payload || total == 0) << "payload bytes without a payload field";
    if (field == kvtier::kPutRequestDataField) {
      kvtier::v1::PutRequest rest;
      (void)rest.ParseFromString(split->rest);
    } else {
      kvtier::v1::FetchResponse rest;
      (void)rest.ParseFromString(split->rest);
    }
  }
  kvtier::v1::PutRequest put;
  (void)kvtier::DecodeMessage(buffer, &put);
  kvtier::v1::FetchResponse fetch;
  (void)kvtier::DecodeMessage(buffer, &fetch);
  return 0;
}
