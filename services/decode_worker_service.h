// DecodeWorkerService: the kvtier.v1.DecodeWorker gRPC service over a DecodeEngine.
//
// Synchronous API on purpose: every method runs the model (milliseconds to seconds of CPU
// work), which must not occupy callback-API reaction threads; gRPC's sync server runs each
// call on a thread of its pool. Engine errors become gRPC statuses at this edge. Generate
// streams each token as soon as it is decoded and closes its sequence even when the client
// goes away. Thread-safe; the engine must outlive the service.
#ifndef KVTIER_SERVICES_DECODE_WORKER_SERVICE_H_
#define KVTIER_SERVICES_DECODE_WORKER_SERVICE_H_

#include <string>

#include "kvtier/v1/decode_worker.grpc.pb.h"
#include "worker/decode_engine.h"

namespace kvtier {

class DecodeWorkerService final : public v1::DecodeWorker::Service {
 public:
  // `backend` is reported by Stats.
  DecodeWorkerService(worker::DecodeEngine* engine, std::string backend);

  grpc::Status OpenSequence(grpc::ServerContext* ctx, const v1::OpenSequenceRequest* request,
                            v1::OpenSequenceResponse* response) override;
  grpc::Status AppendTokens(grpc::ServerContext* ctx, const v1::AppendTokensRequest* request,
                            v1::AppendTokensResponse* response) override;
  grpc::Status DecodeStep(grpc::ServerContext* ctx, const v1::DecodeStepRequest* request,
                          v1::DecodeStepResponse* response) override;
  grpc::Status CloseSequence(grpc::ServerContext* ctx, const v1::CloseSequenceRequest* request,
                             v1::CloseSequenceResponse* response) override;
  grpc::Status Generate(grpc::ServerContext* ctx, const v1::GenerateRequest* request,
                        grpc::ServerWriter<v1::GenerateResponse>* writer) override;
  grpc::Status Stats(grpc::ServerContext* ctx, const v1::WorkerStatsRequest* request,
                     v1::WorkerStatsResponse* response) override;

 private:
  worker::DecodeEngine* engine_;
  const std::string backend_;
};

// The largest max_new_tokens Generate accepts.
inline constexpr uint32_t kMaxNewTokens = 1 << 16;

}  // namespace kvtier

#endif  // KVTIER_SERVICES_DECODE_WORKER_SERVICE_H_
