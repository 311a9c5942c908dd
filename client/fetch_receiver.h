// FetchReceiver: the client's side of one Fetch stream.
//
// It checks the block list (the first message) against the caller's buffers, then takes
// each following message: over the socket, chunk payloads go from the received gRPC slices
// into the caller's buffer; same-node, the message lists ranges the store has copied into
// the caller's region. Either way each layer is verified once, against the layer checksum
// the store announced (taken at Put), where it lies in the caller's buffer, as soon as it is
// complete; only verified layers are ever reported (on_chunk, in whole layers) or counted.
// Socket chunks of a block must come in order (the store's plans do); anything else is the
// store's error (INTERNAL).
// One stream, one thread.
#ifndef KVTIER_CLIENT_FETCH_RECEIVER_H_
#define KVTIER_CLIENT_FETCH_RECEIVER_H_

#include <grpcpp/support/byte_buffer.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "kvtier/v1/cache_store.pb.h"

namespace kvtier {

class FetchReceiver {
 public:
  using OnVerified = std::function<void(uint32_t block, uint64_t offset, uint64_t length)>;

  // `out[i]` receives block i; `same_node`: the stream carries ranges copied into `out`.
  FetchReceiver(std::span<const std::span<uint8_t>> out, bool same_node, OnVerified on_verified);
  ~FetchReceiver();

  // The first message: the blocks. INVALID_ARGUMENT when the buffers cannot hold them,
  // INTERNAL when the list is malformed.
  absl::Status OnBlockList(const grpc::ByteBuffer& message);
  // Every later message. DATA_LOSS when a layer fails its checksum.
  absl::Status OnMessage(const grpc::ByteBuffer& message);
  // DATA_LOSS unless every layer of every block arrived and verified.
  absl::Status Complete() const;

  const std::vector<v1::FetchedBlock>& blocks() const { return blocks_; }
  // Bytes verified (and reported) so far.
  uint64_t verified_bytes() const { return verified_bytes_; }

 private:
  struct Block {
    uint64_t layer_bytes = 0;
    uint64_t next = 0;              // socket: bytes received in order
    std::vector<uint8_t> verified;  // per layer
  };

  absl::Status OnSocketChunk(const grpc::ByteBuffer& message);
  absl::Status OnShmChunks(const grpc::ByteBuffer& message);
  // Layer `layer` of block b is in out[b]: compares `sum` with its checksum, marks it.
  absl::Status LayerArrived(uint32_t b, uint32_t layer, uint64_t sum);

  const std::span<const std::span<uint8_t>> out_;
  const bool same_node_;
  const OnVerified on_verified_;
  std::vector<v1::FetchedBlock> blocks_;
  std::vector<Block> state_;
  uint64_t verified_bytes_ = 0;
};

}  // namespace kvtier

#endif  // KVTIER_CLIENT_FETCH_RECEIVER_H_
