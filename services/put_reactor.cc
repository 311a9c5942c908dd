#include "services/put_reactor.h"

#include "absl/strings/str_cat.h"
#include "proto/payload_wire.h"
#include "services/proto_convert.h"

namespace kvtier {

PutReactor::PutReactor(grpc::CallbackServerContext* ctx, BlockStore* store, ShmRegions* regions,
                       TransferPool* pool, std::string tenant, RpcTimer timer,
                       grpc::ByteBuffer* response)
    : ctx_(ctx),
      store_(store),
      regions_(regions),
      pool_(pool),
      tenant_(std::move(tenant)),
      response_(response),
      timer_(std::move(timer)) {
  StartRead(&request_);
}

void PutReactor::OnReadDone(bool ok) {
  if (ok) {
    if (absl::Status s = HandleMessage(); !s.ok()) {
      pending_.reset();
      FinishWith(s);
      return;
    }
    StartRead(&request_);
    return;
  }
  // Either the client half-closed (commit) or the call died (abandon).
  if (ctx_->IsCancelled()) {
    pending_.reset();
    FinishWith(absl::CancelledError("the Put was cancelled; nothing was stored"));
    return;
  }
  if (pending_ == nullptr) {
    FinishWith(absl::InvalidArgumentError("the Put stream ended before its PutHeader"));
    return;
  }
  if (shm_region_ == nullptr) {
    FinishWith(Commit());
    return;
  }
  // Same-node: the copies run on the pool, and the last one commits.
  auto status = std::make_shared<std::vector<absl::Status>>(pending_->num_blocks());
  pool_->Run(
      pending_->num_blocks(),
      [this, status](size_t i) {
        (*status)[i] = pending_->CopyBlock(i, shm_region_->base() + shm_offsets_[i]);
      },
      [this, status] {
        for (const absl::Status& s : *status) {
          if (!s.ok()) {
            pending_.reset();
            FinishWith(s);
            return;
          }
        }
        FinishWith(Commit());
      });
}

absl::Status PutReactor::HandleMessage() {
  absl::StatusOr<SplitMessage> split = SplitPayload(request_, kPutRequestDataField);
  if (!split.ok()) return split.status();
  v1::PutRequest message;  // everything but the payload
  if (!message.ParseFromString(split->rest)) {
    return absl::InvalidArgumentError("malformed PutRequest message");
  }
  if (message.has_header() && split->has_payload) {
    return absl::InvalidArgumentError("a PutRequest carries a PutHeader or data, not both");
  }
  if (pending_ == nullptr) {
    if (!message.has_header()) {
      return absl::InvalidArgumentError("the first message of a Put must be a PutHeader");
    }
    return HandleHeader(message.header());
  }
  if (message.has_header()) {
    return absl::InvalidArgumentError("a Put carries exactly one PutHeader, first");
  }
  if (shm_region_ != nullptr && split->has_payload) {
    return absl::InvalidArgumentError(
        "a same-node Put (PutHeader.shm) carries no data messages: the store copies the blocks "
        "from the region");
  }
  for (std::span<const uint8_t> part : split->payload) {
    if (absl::Status s = pending_->Write(part); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status PutReactor::HandleHeader(const v1::PutHeader& h) {
  absl::StatusOr<KvLayout> layout = LayoutFromProto(h.layout());
  if (!layout.ok()) return layout.status();
  if (h.has_shm()) {
    if (regions_ == nullptr) {
      return absl::FailedPreconditionError(
          "this store has no same-node data plane (start it with --shm_socket)");
    }
    absl::StatusOr<std::shared_ptr<const AttachedRegion>> region =
        regions_->Find(tenant_, h.shm().region_id());
    if (!region.ok()) return region.status();
    const std::vector<uint64_t> sizes(h.num_blocks(), layout->BlockBytes());
    shm_offsets_.assign(h.shm().offsets().begin(), h.shm().offsets().end());
    if (absl::Status s = (*region)->CheckPlacement(shm_offsets_, sizes, /*disjoint=*/false);
        !s.ok()) {
      return s;
    }
    shm_region_ = *std::move(region);
  }
  PutSpec spec{.prompt = {.tenant = tenant_,
                          .layout = &*layout,
                          .salt = h.cache_salt(),
                          .tokens = std::span(h.token_ids().data(), h.token_ids().size())},
               .first_block = h.first_block(),
               .num_blocks = h.num_blocks(),
               .block_indices = std::span(h.block_indices().data(), h.block_indices().size()),
               .layer_checksums = std::span(h.layer_checksums().data(), h.layer_checksums().size()),
               .last_block_partial = h.last_block_partial(),
               .output_tokens = h.output_tokens()};
  absl::StatusOr<std::unique_ptr<PendingPut>> pending = store_->BeginPut(spec);
  if (!pending.ok()) return pending.status();
  pending_ = *std::move(pending);
  return absl::OkStatus();
}

absl::Status PutReactor::Commit() {
  absl::StatusOr<PutResult> result = pending_->Commit();
  pending_.reset();
  if (!result.ok()) return result.status();
  v1::PutResponse response;
  response.set_stored_blocks(result->stored_blocks);
  response.set_existing_blocks(result->existing_blocks);
  KeysToProto(result->keys, response.mutable_block_keys());
  *response_ = EncodeMessage(response);
  return absl::OkStatus();
}

void PutReactor::FinishWith(const absl::Status& status) {
  Finish(timer_.Finish(ToGrpcStatus(status)));
}

}  // namespace kvtier
