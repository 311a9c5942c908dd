// StoreProcess: a real kvtier-store process for tests. Starts the binary with extra flags
// on loopback with ephemeral ports, learns the ports from its log, and can signal it and
// collect its exit code.
#ifndef KVTIER_TESTS_SERVICES_STORE_PROCESS_H_
#define KVTIER_TESTS_SERVICES_STORE_PROCESS_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace kvtier::testing {

class StoreProcess {
 public:
  // Starts the store and waits until it logs that it serves (or exits).
  static absl::StatusOr<std::unique_ptr<StoreProcess>> Start(std::vector<std::string> flags);
  // Any kvtier server binary that logs "metrics on ... (port N)" and "serving on ...
  // (port N)" (kvtier-worker); `flags` are passed as they are.
  static absl::StatusOr<std::unique_ptr<StoreProcess>> StartBinary(const std::string& binary,
                                                                   std::vector<std::string> flags);
  ~StoreProcess();  // SIGKILLs a process still running

  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }
  std::string target() const { return "127.0.0.1:" + std::to_string(grpc_port_); }
  void Signal(int sig);
  // The exit code, or nullopt if it did not exit within the timeout.
  std::optional<int> Wait(absl::Duration timeout);
  std::string Log() const;

  // Runs the binary to completion (for flag errors); returns exit code and log.
  static std::pair<int, std::string> RunToExit(std::vector<std::string> flags);

 private:
  pid_t pid_ = -1;
  std::string log_path_;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
};

// GET http://127.0.0.1:port/path; returns the body.
absl::StatusOr<std::string> HttpGet(int port, const std::string& path);

}  // namespace kvtier::testing

#endif  // KVTIER_TESTS_SERVICES_STORE_PROCESS_H_
