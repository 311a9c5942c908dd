#include "proto/payload_wire.h"

#include <gtest/gtest.h>

#include <numeric>

#include "kvtier/v1/cache_store.pb.h"

namespace kvtier {
namespace {

std::string Flatten(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(buffer.Dump(&slices).ok());
  std::string out;
  for (const grpc::Slice& s : slices)
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

// The same bytes, one slice per byte: every varint and the payload straddle slices.
grpc::ByteBuffer OneSlicePerByte(const std::string& bytes) {
  std::vector<grpc::Slice> slices;
  for (char c : bytes) slices.emplace_back(&c, 1);
  return grpc::ByteBuffer(slices.data(), slices.size());
}

std::string Joined(const SplitMessage& m) {
  std::string out;
  for (auto p : m.payload) out.append(reinterpret_cast<const char*>(p.data()), p.size());
  return out;
}

std::vector<uint8_t> Bytes(size_t n) {
  std::vector<uint8_t> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

TEST(PayloadWireTest, EncodingsAreOrdinaryProtobufAndReferenceThePayload) {
  std::vector<uint8_t> payload = Bytes(300000);
  grpc::ByteBuffer put = EncodePutData(payload);
  v1::PutRequest parsed_put;
  ASSERT_TRUE(parsed_put.ParseFromString(Flatten(put)));
  EXPECT_EQ(parsed_put.data(), std::string(payload.begin(), payload.end()));

  grpc::ByteBuffer chunk = EncodeFetchChunk(7, uint64_t{5} << 33, payload);
  v1::FetchResponse parsed_chunk;
  ASSERT_TRUE(parsed_chunk.ParseFromString(Flatten(chunk)));
  EXPECT_EQ(parsed_chunk.block(), 7u);
  EXPECT_EQ(parsed_chunk.offset(), uint64_t{5} << 33);
  EXPECT_EQ(parsed_chunk.data(), std::string(payload.begin(), payload.end()));

  // Zero copy: the payload slice is the caller's memory.
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(chunk.Dump(&slices).ok());
  ASSERT_EQ(slices.size(), 2u);
  EXPECT_EQ(slices[1].begin(), payload.data());

  v1::FetchResponse zero;  // block 0 and offset 0 are omitted, as protobuf does
  ASSERT_TRUE(zero.ParseFromString(Flatten(EncodeFetchChunk(0, 0, std::span(payload).first(3)))));
  EXPECT_EQ(zero.block(), 0u);
  EXPECT_EQ(zero.data().size(), 3u);
}

// Several ranges in one message: listed in order, their bytes back to back in `data`, each
// referenced where it lies.
TEST(PayloadWireTest, RangesTravelBackToBackInOneMessage) {
  std::vector<uint8_t> a = Bytes(70000), b = Bytes(5000);
  const PayloadRange ranges[] = {{.block = 0, .offset = 0, .bytes = a},
                                 {.block = 3, .offset = 65536, .bytes = b}};
  grpc::ByteBuffer message = EncodeFetchRanges(ranges);
  v1::FetchResponse parsed;
  ASSERT_TRUE(parsed.ParseFromString(Flatten(message)));
  ASSERT_EQ(parsed.ranges_size(), 2);
  EXPECT_EQ(parsed.ranges(0).block(), 0u);
  EXPECT_EQ(parsed.ranges(0).offset(), 0u);
  EXPECT_EQ(parsed.ranges(0).length(), a.size());
  EXPECT_EQ(parsed.ranges(1).block(), 3u);
  EXPECT_EQ(parsed.ranges(1).offset(), 65536u);
  EXPECT_EQ(parsed.ranges(1).length(), b.size());
  std::string both(a.begin(), a.end());
  both.append(b.begin(), b.end());
  EXPECT_EQ(parsed.data(), both);
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(message.Dump(&slices).ok());
  ASSERT_EQ(slices.size(), 3u);
  EXPECT_EQ(slices[1].begin(), a.data());
  EXPECT_EQ(slices[2].begin(), b.data());
}

TEST(PayloadWireTest, SplitReturnsThePayloadAsViewsAndTheRestForProtobuf) {
  v1::FetchResponse m;
  m.set_block(3);
  m.set_offset(123456789);
  m.set_data(std::string(1000, 'k'));
  m.add_blocks()->set_size_bytes(42);  // a field after the payload too
  const std::string wire = m.SerializeAsString();
  for (const grpc::ByteBuffer& buffer : {EncodeMessage(m), OneSlicePerByte(wire)}) {
    absl::StatusOr<SplitMessage> split = SplitPayload(buffer, kFetchResponseDataField);
    ASSERT_TRUE(split.ok()) << split.status();
    EXPECT_TRUE(split->has_payload);
    EXPECT_EQ(split->payload_size(), 1000u);
    EXPECT_EQ(Joined(*split), m.data());
    v1::FetchResponse rest;
    ASSERT_TRUE(rest.ParseFromString(split->rest));
    EXPECT_EQ(rest.block(), 3u);
    EXPECT_EQ(rest.offset(), 123456789u);
    EXPECT_TRUE(rest.data().empty());
    ASSERT_EQ(rest.blocks_size(), 1);
    EXPECT_EQ(rest.blocks(0).size_bytes(), 42u);
  }
}

TEST(PayloadWireTest, SplitViewsPointIntoTheReceivedSlices) {
  std::vector<uint8_t> payload = Bytes(4096);
  grpc::ByteBuffer buffer = EncodePutData(payload);
  absl::StatusOr<SplitMessage> split = SplitPayload(buffer, kPutRequestDataField);
  ASSERT_TRUE(split.ok());
  ASSERT_EQ(split->payload.size(), 1u);
  EXPECT_EQ(split->payload[0].data(), payload.data());  // no copy on the way in either
  EXPECT_TRUE(split->rest.empty());
}

TEST(PayloadWireTest, AMessageWithoutPayloadHasNone) {
  v1::PutRequest header;
  header.mutable_header()->set_num_blocks(2);
  absl::StatusOr<SplitMessage> split = SplitPayload(EncodeMessage(header), kPutRequestDataField);
  ASSERT_TRUE(split.ok());
  EXPECT_FALSE(split->has_payload);
  v1::PutRequest rest;
  ASSERT_TRUE(rest.ParseFromString(split->rest));
  EXPECT_EQ(rest.header().num_blocks(), 2u);
}

TEST(PayloadWireTest, MalformedWireDataIsRejected) {
  const std::string cases[] = {
      std::string("\x12\x05"
                  "abc",
                  5),              // payload length past the end
      std::string("\x08\x80", 2),  // truncated varint
      std::string("\x0b", 1),      // group wire type
      std::string("\x00\x01", 2),  // field number 0
      std::string("\x12\x01"
                  "a"
                  "\x12\x01"
                  "b",
                  6),  // payload field twice
  };
  for (const std::string& bytes : cases) {
    absl::StatusOr<SplitMessage> split = SplitPayload(OneSlicePerByte(bytes), kPutRequestDataField);
    EXPECT_EQ(split.status().code(), absl::StatusCode::kInvalidArgument) << bytes.size();
  }
  v1::FetchRequest request;
  grpc::ByteBuffer garbage = OneSlicePerByte(std::string("\x0a\x09", 2));
  EXPECT_EQ(DecodeMessage(garbage, &request).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kvtier
