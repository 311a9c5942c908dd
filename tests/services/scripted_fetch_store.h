// ScriptedFetchStore: a CacheStore whose Fetch sends a fixed list of messages, whatever
// was asked, then ends with a fixed status; served on a loopback port; counts its calls. For client
// tests that need a store to misbehave in one precise way (a chunk damaged in transit, a range
// claimed but never written).
#ifndef KVTIER_TESTS_SERVICES_SCRIPTED_FETCH_STORE_H_
#define KVTIER_TESTS_SERVICES_SCRIPTED_FETCH_STORE_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "kvtier/v1/cache_store.grpc.pb.h"

namespace kvtier::testing {

class ScriptedFetchStore final
    : public v1::CacheStore::WithRawCallbackMethod_Fetch<v1::CacheStore::CallbackService> {
 public:
  explicit ScriptedFetchStore(std::vector<grpc::ByteBuffer> messages,
                              grpc::Status end = grpc::Status::OK)
      : messages_(std::move(messages)), end_(std::move(end)) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  ~ScriptedFetchStore() override { server_->Shutdown(); }

  std::string target() const { return "127.0.0.1:" + std::to_string(port_); }
  int calls() const { return calls_.load(); }

  grpc::ServerWriteReactor<grpc::ByteBuffer>* Fetch(grpc::CallbackServerContext*,
                                                    const grpc::ByteBuffer*) override {
    class Reactor : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
     public:
      Reactor(const std::vector<grpc::ByteBuffer>& messages, const grpc::Status& end)
          : messages_(messages), end_(end) {
        Next();
      }
      void OnWriteDone(bool ok) override {
        if (!ok) return Finish(grpc::Status::CANCELLED);
        Next();
      }
      void OnDone() override { delete this; }

     private:
      void Next() {
        if (next_ == messages_.size()) return Finish(end_);
        StartWrite(&messages_[next_++]);
      }
      const std::vector<grpc::ByteBuffer>& messages_;
      const grpc::Status& end_;
      size_t next_ = 0;
    };
    ++calls_;
    return new Reactor(messages_, end_);
  }

 private:
  const std::vector<grpc::ByteBuffer> messages_;
  const grpc::Status end_;
  std::atomic<int> calls_{0};
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace kvtier::testing

#endif  // KVTIER_TESTS_SERVICES_SCRIPTED_FETCH_STORE_H_
