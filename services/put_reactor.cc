#include "services/put_reactor.h"

#include "absl/strings/str_cat.h"
#include "services/proto_convert.h"

namespace kvtier {

PutReactor::PutReactor(grpc::CallbackServerContext* ctx, BlockStore* store, std::string tenant,
                       StoreMetrics* metrics, v1::PutResponse* response)
    : ctx_(ctx),
      store_(store),
      tenant_(std::move(tenant)),
      response_(response),
      timer_(metrics, StoreRpc::kPut) {
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
  if (pending_ == nullptr) {
    if (!request_.has_header()) {
      return absl::InvalidArgumentError("the first message of a Put must be a PutHeader");
    }
    const v1::PutHeader& h = request_.header();
    absl::StatusOr<KvLayout> layout = LayoutFromProto(h.layout());
    if (!layout.ok()) return layout.status();
    PutSpec spec{.prompt = {.tenant = tenant_,
                            .layout = &*layout,
                            .salt = h.cache_salt(),
                            .tokens = std::span(h.token_ids().data(), h.token_ids().size())},
                 .first_block = h.first_block(),
                 .num_blocks = h.num_blocks(),
                 .checksums = std::span(h.checksums().data(), h.checksums().size())};
    absl::StatusOr<std::unique_ptr<PendingPut>> pending = store_->BeginPut(spec);
    if (!pending.ok()) return pending.status();
    pending_ = *std::move(pending);
    return absl::OkStatus();
  }
  if (request_.has_header()) {
    return absl::InvalidArgumentError("a Put carries exactly one PutHeader, first");
  }
  const std::string& data = request_.data();
  return pending_->Write(std::span(reinterpret_cast<const uint8_t*>(data.data()), data.size()));
}

absl::Status PutReactor::HandleEnd() {
  if (pending_ == nullptr) {
    return absl::InvalidArgumentError("the Put stream ended before its PutHeader");
  }
  absl::StatusOr<PutResult> result = pending_->Commit();
  pending_.reset();
  if (!result.ok()) return result.status();
  response_->set_stored_blocks(result->stored_blocks);
  response_->set_existing_blocks(result->existing_blocks);
  for (const BlockKey& key : result->keys) response_->add_block_keys(std::string(key.AsBytes()));
  return absl::OkStatus();
}

void PutReactor::FinishWith(const absl::Status& status) {
  Finish(timer_.Finish(ToGrpcStatus(status)));
}

}  // namespace kvtier
