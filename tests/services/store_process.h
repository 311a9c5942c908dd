// StoreProcess: a real kvtier-store process for tests (bench/child_process.h underneath).
// Starts the binary with extra flags on loopback with ephemeral ports, learns the ports
// from its log, and can signal it and collect its exit code.
#ifndef KVTIER_TESTS_SERVICES_STORE_PROCESS_H_
#define KVTIER_TESTS_SERVICES_STORE_PROCESS_H_

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bench/child_process.h"

namespace kvtier::testing {

using bench::HttpGet;

class StoreProcess {
 public:
  // Starts the store (T1 unlocked) and waits until it logs that it serves (or exits).
  static absl::StatusOr<std::unique_ptr<StoreProcess>> Start(std::vector<std::string> flags);
  // Any kvtier server binary that logs "metrics on ... (port N)" and "serving on ...
  // (port N)" (kvtier-worker); `flags` follow the loopback --listen flags.
  static absl::StatusOr<std::unique_ptr<StoreProcess>> StartBinary(const std::string& binary,
                                                                   std::vector<std::string> flags);

  int grpc_port() const { return server_->grpc_port(); }
  int metrics_port() const { return server_->metrics_port(); }
  std::string target() const { return server_->target(); }
  void Signal(int sig) { server_->process().Signal(sig); }
  // The exit code, or nullopt if it did not exit within the timeout.
  std::optional<int> Wait(absl::Duration timeout) { return server_->process().Wait(timeout); }
  std::string Log() const { return server_->process().Log(); }

  // Runs the store binary to completion with exactly `flags` (for flag errors); returns
  // the exit code and the log.
  static std::pair<int, std::string> RunToExit(std::vector<std::string> flags);

 private:
  std::unique_ptr<bench::ServerProcess> server_;
};

}  // namespace kvtier::testing

#endif  // KVTIER_TESTS_SERVICES_STORE_PROCESS_H_
