// RawStreamCall: one blocking gRPC streaming call carried as raw byte buffers.
//
// The client's payload-carrying calls (Put, Fetch) use it with proto/payload_wire.h so
// that block bytes go between the caller's memory and gRPC slices without a protobuf
// string in between. Each operation waits for its own completion on a private completion
// queue; the ClientContext's deadline bounds every wait. Any operation returning false
// means the call is over: Finish() says why. Not thread-safe; one call, one thread.
#ifndef KVTIER_CLIENT_RAW_STREAM_CALL_H_
#define KVTIER_CLIENT_RAW_STREAM_CALL_H_

#include <grpcpp/client_context.h>
#include <grpcpp/completion_queue.h>
#include <grpcpp/generic/generic_stub.h>

#include <memory>
#include <string>

namespace kvtier {

class RawStreamCall {
 public:
  // Starts the call to `method` ("/package.Service/Method").
  RawStreamCall(grpc::GenericStub& stub, grpc::ClientContext& ctx, const std::string& method);
  // Cancels a call that was not finished, and drains the queue.
  ~RawStreamCall();
  RawStreamCall(const RawStreamCall&) = delete;
  RawStreamCall& operator=(const RawStreamCall&) = delete;

  bool Write(const grpc::ByteBuffer& message);
  bool WritesDone();
  bool Read(grpc::ByteBuffer* message);
  grpc::Status Finish();

 private:
  // Waits for the one outstanding operation.
  bool Wait();

  grpc::ClientContext& ctx_;
  grpc::CompletionQueue cq_;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call_;
  bool started_ = false;
  bool finished_ = false;
};

}  // namespace kvtier

#endif  // KVTIER_CLIENT_RAW_STREAM_CALL_H_
