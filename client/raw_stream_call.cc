#include "client/raw_stream_call.h"

namespace kvtier {
namespace {

// Operations never overlap, so one tag serves them all.
void* const kTag = reinterpret_cast<void*>(1);

}  // namespace

RawStreamCall::RawStreamCall(grpc::GenericStub& stub, grpc::ClientContext& ctx,
                             const std::string& method)
    : ctx_(ctx), call_(stub.PrepareCall(&ctx, method, &cq_)) {
  call_->StartCall(kTag);
  started_ = Wait();
}

RawStreamCall::~RawStreamCall() {
  if (!finished_) {
    ctx_.TryCancel();
    Finish();
  }
  cq_.Shutdown();
  void* tag;
  bool ok;
  while (cq_.Next(&tag, &ok)) {
  }
}

bool RawStreamCall::Wait() {
  void* tag;
  bool ok = false;
  return cq_.Next(&tag, &ok) && ok;
}

bool RawStreamCall::Write(const grpc::ByteBuffer& message) {
  if (!started_) return false;
  call_->Write(message, kTag);
  return Wait();
}

bool RawStreamCall::WritesDone() {
  if (!started_) return false;
  call_->WritesDone(kTag);
  return Wait();
}

bool RawStreamCall::Read(grpc::ByteBuffer* message) {
  if (!started_) return false;
  call_->Read(message, kTag);
  return Wait();
}

grpc::Status RawStreamCall::Finish() {
  grpc::Status status;
  call_->Finish(&status, kTag);
  Wait();
  finished_ = true;
  return status;
}

}  // namespace kvtier
