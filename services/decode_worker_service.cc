#include "services/decode_worker_service.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "proto/wire_convert.h"

namespace kvtier {
namespace {

void FillSources(const worker::DecodeEngine::Opened& o, v1::PrefixSources* s) {
  s->set_prompt_tokens(o.prompt_tokens);
  s->set_local_tokens(o.local_tokens);
  s->set_store_tokens(o.store_tokens);
  s->set_computed_tokens(o.computed_tokens);
}

std::vector<uint32_t> Tokens(const google::protobuf::RepeatedField<uint32_t>& ids) {
  return {ids.begin(), ids.end()};
}

}  // namespace

DecodeWorkerService::DecodeWorkerService(worker::DecodeEngine* engine, std::string backend)
    : engine_(engine), backend_(std::move(backend)) {}

grpc::Status DecodeWorkerService::OpenSequence(grpc::ServerContext*,
                                               const v1::OpenSequenceRequest* request,
                                               v1::OpenSequenceResponse* response) {
  absl::StatusOr<worker::DecodeEngine::Opened> opened =
      engine_->Open(Tokens(request->token_ids()), !request->no_cache());
  if (!opened.ok()) return ToGrpcStatus(opened.status());
  response->set_sequence_id(opened->id);
  FillSources(*opened, response->mutable_sources());
  response->set_next_token(opened->next_token);
  response->set_time_to_first_token_seconds(opened->seconds);
  if (request->return_logits()) {
    response->mutable_logits()->Assign(opened->logits.begin(), opened->logits.end());
  }
  return grpc::Status::OK;
}

grpc::Status DecodeWorkerService::AppendTokens(grpc::ServerContext*,
                                               const v1::AppendTokensRequest* request,
                                               v1::AppendTokensResponse* response) {
  absl::StatusOr<std::vector<float>> logits =
      engine_->Append(request->sequence_id(), Tokens(request->token_ids()));
  if (!logits.ok()) return ToGrpcStatus(logits.status());
  response->set_next_token(worker::Decoder::Greedy(*logits));
  return grpc::Status::OK;
}

grpc::Status DecodeWorkerService::DecodeStep(grpc::ServerContext*,
                                             const v1::DecodeStepRequest* request,
                                             v1::DecodeStepResponse* response) {
  const std::vector<uint64_t> ids(request->sequence_ids().begin(), request->sequence_ids().end());
  if (ids.empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "DecodeStep needs sequence_ids");
  }
  absl::StatusOr<std::vector<uint32_t>> next = engine_->Step(ids);
  if (!next.ok()) return ToGrpcStatus(next.status());
  response->mutable_next_tokens()->Assign(next->begin(), next->end());
  return grpc::Status::OK;
}

grpc::Status DecodeWorkerService::CloseSequence(grpc::ServerContext*,
                                                const v1::CloseSequenceRequest* request,
                                                v1::CloseSequenceResponse* response) {
  absl::StatusOr<std::vector<uint32_t>> tokens = engine_->Tokens(request->sequence_id());
  if (!tokens.ok()) return ToGrpcStatus(tokens.status());
  if (absl::Status s = engine_->Close(request->sequence_id()); !s.ok()) return ToGrpcStatus(s);
  response->set_tokens(static_cast<uint32_t>(tokens->size()));
  return grpc::Status::OK;
}

grpc::Status DecodeWorkerService::Generate(grpc::ServerContext* ctx,
                                           const v1::GenerateRequest* request,
                                           grpc::ServerWriter<v1::GenerateResponse>* writer) {
  if (request->max_new_tokens() == 0 || request->max_new_tokens() > kMaxNewTokens) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("max_new_tokens must be in [1, ", kMaxNewTokens, "], got ",
                                     request->max_new_tokens()));
  }
  absl::StatusOr<worker::DecodeEngine::Opened> opened =
      engine_->Open(Tokens(request->token_ids()), !request->no_cache());
  if (!opened.ok()) return ToGrpcStatus(opened.status());
  const uint64_t id = opened->id;
  v1::GenerateResponse first;
  FillSources(*opened, first.mutable_sources());
  first.set_time_to_first_token_seconds(opened->seconds);
  if (request->return_first_logits()) {
    first.mutable_first_logits()->Assign(opened->logits.begin(), opened->logits.end());
  }
  first.add_token_ids(opened->next_token);
  grpc::Status status = grpc::Status::OK;
  bool open = writer->Write(first);
  for (uint32_t i = 1; open && i < request->max_new_tokens(); ++i) {
    if (ctx->IsCancelled()) break;
    absl::StatusOr<std::vector<uint32_t>> next = engine_->Step({&id, 1});
    if (!next.ok()) {
      status = ToGrpcStatus(next.status());
      break;
    }
    v1::GenerateResponse message;
    message.add_token_ids((*next)[0]);
    open = writer->Write(message);
  }
  // Closing offloads the sequence's blocks; it happens however the stream ended.
  if (absl::Status s = engine_->Close(id); !s.ok() && status.ok()) status = ToGrpcStatus(s);
  return status;
}

grpc::Status DecodeWorkerService::Stats(grpc::ServerContext*, const v1::WorkerStatsRequest*,
                                        v1::WorkerStatsResponse* r) {
  const worker::DecodeEngine::Stats s = engine_->stats();
  r->set_model_id(engine_->config().model_id);
  r->set_backend(backend_);
  r->set_open_sequences(s.open_sequences);
  r->set_pages_total(s.pages.free + s.pages.active + s.pages.cached);
  r->set_pages_free(s.pages.free);
  r->set_pages_active(s.pages.active);
  r->set_pages_cached(s.pages.cached);
  r->set_pages_awaiting_offload(s.pages.unsafe);
  r->set_page_evictions(s.pages.evictions);
  r->set_local_tokens(s.local_tokens);
  r->set_store_tokens(s.store_tokens);
  r->set_computed_tokens(s.computed_tokens);
  r->set_restored_bytes(s.restored_bytes);
  r->set_restore_failures(s.restore_failures);
  r->set_offloaded_blocks(s.offload.blocks);
  r->set_offloaded_bytes(s.offload.bytes);
  r->set_offload_dropped_blocks(s.offload.dropped_blocks);
  r->set_decode_steps(s.decode_steps);
  r->set_decoded_tokens(s.decoded_tokens);
  return grpc::Status::OK;
}

}  // namespace kvtier
