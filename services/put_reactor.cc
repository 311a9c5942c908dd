#include "services/put_reactor.h"

#include "absl/strings/str_cat.h"
#include "proto/payload_wire.h"
#include "services/proto_convert.h"

namespace kvtier {

PutReactor::PutReactor(grpc::CallbackServerContext* ctx, BlockStore* store, std::string tenant,
                       RpcTimer timer, grpc::ByteBuffer* response)
    : ctx_(ctx),
      store_(store),
      tenant_(std::move(tenant)),
      response_(response),
      timer_(std::move(timer)) {
  StartRead(&request_);
}

void PutReactor::OnReadDone(bool ok) {
  if (!ok) {
    // Either the client half-closed (commit) or the call died (abandon).
    if (ctx_->IsCancelled()) {
      pending_.reset();
      FinishWith(absl::CancelledError("the Put was cancelled; nothing was stored"));
      return;
    }
    FinishWith(HandleEnd());
    return;
  }
  if (absl::Status s = HandleMessage(); !s.ok()) {
    pending_.reset();
    FinishWith(s);
    return;
  }
  StartRead(&request_);
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
    const v1::PutHeader& h = message.header();
    absl::StatusOr<KvLayout> layout = LayoutFromProto(h.layout());
    if (!layout.ok()) return layout.status();
    PutSpec spec{.prompt = {.tenant = tenant_,
                            .layout = &*layout,
                            .salt = h.cache_salt(),
                            .tokens = std::span(h.token_ids().data(), h.token_ids().size())},
                 .first_block = h.first_block(),
                 .num_blocks = h.num_blocks(),
                 .checksums = std::span(h.checksums().data(), h.checksums().size()),
                 .last_block_partial = h.last_block_partial()};
    absl::StatusOr<std::unique_ptr<PendingPut>> pending = store_->BeginPut(spec);
    if (!pending.ok()) return pending.status();
    pending_ = *std::move(pending);
    return absl::OkStatus();
  }
  if (message.has_header()) {
    return absl::InvalidArgumentError("a Put carries exactly one PutHeader, first");
  }
  for (std::span<const uint8_t> part : split->payload) {
    if (absl::Status s = pending_->Write(part); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status PutReactor::HandleEnd() {
  if (pending_ == nullptr) {
    return absl::InvalidArgumentError("the Put stream ended before its PutHeader");
  }
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
