// ScriptedFetchStore: a CacheStore whose Fetch sends a fixed list of messages, whatever
// was asked, served on a loopback port. For client tests that need a store to misbehave in
// one precise way (a chunk damaged in transit, a range claimed but never written).
#ifndef KVTIER_TESTS_SERVICES_SCRIPTED_FETCH_STORE_H_
#define KVTIER_TESTS_SERVICES_SCRIPTED_FETCH_STORE_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "kvtier/v1/cache_store.grpc.pb.h"

namespace kvtier::testing {

class ScriptedFetchStore final
    : public v1::CacheStore::WithRawCallbackMethod_Fetch<v1::CacheStore::CallbackService> {
 public:
  explicit ScriptedFetchStore(std::vector<grpc::ByteBuffer> messages)
      : messages_(std::move(messages)) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  ~ScriptedFetchStore() override { server_->Shutdown(); }

  std::string target() const { return "127.0.0.1:" + std::to_string(port_); }

  grpc::ServerWriteReactor<grpc::ByteBuffer>* Fetch(grpc::CallbackServerContext*,
                                                    const grpc::ByteBuffer*) override {
    class Reactor : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
     public:
      explicit Reactor(const std::vector<grpc::ByteBuffer>& messages) : messages_(messages) {
        Next();
      }
      void OnWriteDone(bool ok) override {
        if (!ok) return Finish(grpc::Status::CANCELLED);
        Next();
      }
      void OnDone() override { delete this; }

     private:
      void Next() {
        if (next_ == messages_.size()) return Finish(grpc::Status::OK);
        StartWrite(&messages_[next_++]);
      }
      const std::vector<grpc::ByteBuffer>& messages_;
      size_t next_ = 0;
    };
    return new Reactor(messages_);
  }

 private:
  const std::vector<grpc::ByteBuffer> messages_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace kvtier::testing

#endif  // KVTIER_TESTS_SERVICES_SCRIPTED_FETCH_STORE_H_
