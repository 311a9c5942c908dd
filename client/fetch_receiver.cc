#include "client/fetch_receiver.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cache_store/checksum.h"
#include "proto/payload_wire.h"

namespace kvtier {

FetchReceiver::FetchReceiver(std::span<const std::span<uint8_t>> out, bool same_node,
                             OnVerified on_verified)
    : out_(out), same_node_(same_node), on_verified_(std::move(on_verified)) {}

FetchReceiver::~FetchReceiver() = default;

absl::Status FetchReceiver::OnBlockList(const grpc::ByteBuffer& message) {
  v1::FetchResponse first;
  if (!DecodeMessage(message, &first).ok()) {
    return absl::InternalError("the store sent a malformed FetchResponse");
  }
  blocks_.assign(first.blocks().begin(), first.blocks().end());
  if (blocks_.size() > out_.size()) {
    return absl::InvalidArgumentError(absl::StrCat("the fetch returns ", blocks_.size(),
                                                   " blocks but only ", out_.size(),
                                                   " buffers were given"));
  }
  state_.resize(blocks_.size());
  for (size_t b = 0; b < blocks_.size(); ++b) {
    const v1::FetchedBlock& block = blocks_[b];
    if (block.size_bytes() > out_[b].size()) {
      return absl::InvalidArgumentError(absl::StrCat("block ", b, " is ", block.size_bytes(),
                                                     " bytes; its buffer holds ", out_[b].size()));
    }
    const uint64_t layers = block.layer_checksums_size();
    if (layers == 0 || block.size_bytes() == 0 || block.size_bytes() % layers != 0) {
      return absl::InternalError(absl::StrCat("the store listed block ", b,
                                              " without layer checksums that divide its size"));
    }
    state_[b].layer_bytes = block.size_bytes() / layers;
    state_[b].verified.assign(layers, 0);
  }
  return absl::OkStatus();
}

absl::Status FetchReceiver::OnMessage(const grpc::ByteBuffer& message) {
  return same_node_ ? OnShmChunks(message) : OnSocketChunk(message);
}

absl::Status FetchReceiver::LayerArrived(uint32_t b, uint32_t layer, uint64_t sum) {
  const uint64_t expected = blocks_[b].layer_checksums(static_cast<int>(layer));
  if (sum != expected) {
    return absl::DataLossError(
        absl::StrFormat("layer %d of block %d failed its checksum (%016x, expected %016x)", layer,
                        b, sum, expected));
  }
  if (state_[b].verified[layer]) {
    return absl::InternalError(
        absl::StrCat("the store delivered layer ", layer, " of block ", b, " twice"));
  }
  state_[b].verified[layer] = 1;
  verified_bytes_ += state_[b].layer_bytes;
  return absl::OkStatus();
}

absl::Status FetchReceiver::OnSocketChunk(const grpc::ByteBuffer& message) {
  absl::StatusOr<SplitMessage> split = SplitPayload(message, kFetchResponseDataField);
  v1::FetchResponse chunk;
  if (!split.ok() || !chunk.ParseFromString(split->rest)) {
    return absl::InternalError("the store sent a malformed FetchResponse");
  }
  // The ranges `data` holds, back to back (one, at block/offset, when none are listed).
  std::vector<v1::BlockRange> ranges(chunk.ranges().begin(), chunk.ranges().end());
  if (ranges.empty()) {
    ranges.emplace_back();
    ranges[0].set_block(chunk.block());
    ranges[0].set_offset(chunk.offset());
    ranges[0].set_length(split->payload_size());
  }
  uint64_t listed = 0;
  for (const v1::BlockRange& r : ranges) listed += r.length();
  if (listed != split->payload_size()) {
    return absl::InternalError("the store's chunk carries other bytes than its ranges say");
  }
  auto part = split->payload.begin();
  std::span<const uint8_t> rest = part != split->payload.end() ? *part : std::span<const uint8_t>();
  for (const v1::BlockRange& r : ranges) {
    const uint32_t b = r.block();
    if (b >= blocks_.size() || r.offset() != state_[b].next ||
        r.length() > blocks_[b].size_bytes() - r.offset()) {
      return absl::InternalError("the store sent a chunk out of order or outside its block");
    }
    Block& block = state_[b];
    const uint64_t lb = block.layer_bytes;
    uint8_t* const base = out_[b].data();
    // Copied layer by layer, and each layer completed is hashed once where it now lies,
    // right after its last byte landed (still in the cache), whatever pieces the transport
    // cut it into.
    uint64_t pos = r.offset();
    const uint64_t end = r.offset() + r.length();
    while (pos < end) {
      while (rest.empty()) rest = *++part;  // the lengths were checked: a part remains
      const uint64_t layer_end = (pos / lb + 1) * lb;
      const size_t n =
          static_cast<size_t>(std::min<uint64_t>({rest.size(), layer_end - pos, end - pos}));
      std::memcpy(base + pos, rest.data(), n);
      pos += n;
      rest = rest.subspan(n);
      if (pos == layer_end) {
        const auto layer = static_cast<uint32_t>(pos / lb - 1);
        if (absl::Status s = LayerArrived(b, layer, RangeChecksum(base + pos - lb, lb)); !s.ok()) {
          return s;
        }
      }
    }
    block.next = end;
    // The layers completed: from the one the range started in.
    const uint64_t report_from = r.offset() / lb * lb;
    const uint64_t report_to = end / lb * lb;
    if (report_to > report_from && on_verified_) {
      on_verified_(b, report_from, report_to - report_from);
    }
  }
  return absl::OkStatus();
}

absl::Status FetchReceiver::OnShmChunks(const grpc::ByteBuffer& message) {
  v1::FetchResponse ranges;
  if (!DecodeMessage(message, &ranges).ok()) {
    return absl::InternalError("the store sent a malformed FetchResponse");
  }
  for (const v1::BlockRange& r : ranges.ranges()) {
    const uint32_t b = r.block();
    if (b >= blocks_.size() || r.length() == 0 || r.offset() > blocks_[b].size_bytes() ||
        r.length() > blocks_[b].size_bytes() - r.offset() ||
        r.offset() % state_[b].layer_bytes != 0 || r.length() % state_[b].layer_bytes != 0) {
      return absl::InternalError("the store reported a bad shared-memory range");
    }
    // Verified where they lie: the store wrote them into this memory.
    const uint64_t lb = state_[b].layer_bytes;
    for (uint64_t off = r.offset(); off < r.offset() + r.length(); off += lb) {
      const auto layer = static_cast<uint32_t>(off / lb);
      if (absl::Status s = LayerArrived(b, layer, RangeChecksum(out_[b].data() + off, lb));
          !s.ok()) {
        return s;
      }
    }
    if (on_verified_) on_verified_(b, r.offset(), r.length());
  }
  return absl::OkStatus();
}

absl::Status FetchReceiver::Complete() const {
  for (size_t b = 0; b < blocks_.size(); ++b) {
    const auto& verified = state_[b].verified;
    if (std::find(verified.begin(), verified.end(), 0) != verified.end()) {
      return absl::DataLossError(absl::StrCat("block ", b, " arrived incomplete"));
    }
  }
  return absl::OkStatus();
}

}  // namespace kvtier
