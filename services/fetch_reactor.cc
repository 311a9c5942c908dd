#include "services/fetch_reactor.h"

#include <algorithm>

#include "cache_store/checksum.h"
#include "proto/payload_wire.h"
#include "services/proto_convert.h"

namespace kvtier {

std::vector<FetchRange> PlanFetch(std::span<const BlockView> blocks, v1::FetchOrder order) {
  std::vector<FetchRange> plan;
  if (order != v1::FETCH_ORDER_LAYER_MAJOR) {
    for (uint32_t b = 0; b < blocks.size(); ++b) plan.push_back({b, 0, blocks[b].size});
    return plan;
  }
  uint32_t max_layers = 0;
  for (const BlockView& v : blocks) max_layers = std::max(max_layers, v.num_layers);
  for (uint32_t layer = 0; layer < max_layers; ++layer) {
    for (uint32_t b = 0; b < blocks.size(); ++b) {
      if (layer >= blocks[b].num_layers) continue;
      const uint64_t layer_bytes = blocks[b].size / blocks[b].num_layers;
      plan.push_back({b, layer * layer_bytes, layer_bytes});
    }
  }
  return plan;
}

FetchReactor::FetchReactor(std::unique_ptr<BlockReadHandle> read, v1::FetchOrder order,
                           uint32_t chunk_bytes, RpcTimer timer, std::unique_ptr<ShmWriter> shm,
                           std::vector<uint64_t> shm_offsets)
    : read_(std::move(read)),
      plan_(PlanFetch(read_->blocks(), order)),
      chunk_bytes_(chunk_bytes),
      timer_(std::move(timer)),
      shm_(std::move(shm)),
      shm_offsets_(std::move(shm_offsets)) {
  v1::FetchResponse first;
  for (const BlockView& v : read_->blocks()) {
    v1::FetchedBlock* b = first.add_blocks();
    b->set_key(std::string(v.key.AsBytes()));
    b->set_size_bytes(v.size);
    b->set_checksum(v.checksum);
    b->set_tier(TierToProto(v.tier));
  }
  message_ = EncodeMessage(first);
  StartWrite(&message_);
}

void FetchReactor::OnWriteDone(bool ok) {
  if (!ok) {
    // The client went away or the deadline passed; the read handle goes with us.
    Finish(timer_.Finish(grpc::Status(grpc::StatusCode::CANCELLED, "fetch stream broken")));
    return;
  }
  WriteNext();
}

bool FetchReactor::NextShmMessage() {
  v1::FetchResponse message;
  uint64_t bytes = 0;
  while (next_range_ < plan_.size() && bytes < kShmMessageBytes) {
    const FetchRange& r = plan_[next_range_++];
    const BlockView& view = read_->blocks()[r.block];
    const std::span<const uint8_t> data(view.data + r.offset, r.length);
    if (absl::Status s = shm_->Write(shm_offsets_[r.block] + r.offset, data); !s.ok()) {
      Finish(timer_.Finish(grpc::Status(grpc::StatusCode::INTERNAL, std::string(s.message()))));
      return false;
    }
    v1::ShmChunk* chunk = message.add_shm_chunks();
    chunk->set_block(r.block);
    chunk->set_offset(r.offset);
    chunk->set_length(r.length);
    chunk->set_checksum(BlockChecksum(data.data(), data.size()));
    bytes += r.length;
  }
  message_ = EncodeMessage(message);
  return true;
}

void FetchReactor::WriteNext() {
  if (shm_ != nullptr) {
    if (next_range_ == plan_.size()) {
      Finish(timer_.Finish(grpc::Status::OK));
    } else if (NextShmMessage()) {
      StartWrite(&message_);
    }
    return;
  }
  while (next_range_ < plan_.size() && next_offset_ >= plan_[next_range_].length) {
    ++next_range_;
    next_offset_ = 0;
  }
  if (next_range_ == plan_.size()) {
    Finish(timer_.Finish(grpc::Status::OK));
    return;
  }
  const FetchRange& r = plan_[next_range_];
  const uint64_t n = std::min(chunk_bytes_, r.length - next_offset_);
  const BlockView& view = read_->blocks()[r.block];
  const std::span<const uint8_t> data(view.data + r.offset + next_offset_, n);
  // The block was verified when it was opened; this lets the client verify each chunk.
  message_ = EncodeFetchChunk(r.block, r.offset + next_offset_, data,
                              BlockChecksum(data.data(), data.size()));
  next_offset_ += n;
  StartWrite(&message_);
}

}  // namespace kvtier
