// ChildProcess: a program started as a child of this process, its stdout and stderr in a
// log file, for benchmarks and tests that measure or exercise real server binaries
// (kvtier-store, kvtier-worker, redis-server). The child is killed (SIGKILL) when the
// object goes, unless it already exited. Not thread-safe.
#ifndef KVTIER_BENCH_CHILD_PROCESS_H_
#define KVTIER_BENCH_CHILD_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace kvtier::bench {

class ChildProcess {
 public:
  // Starts `binary` with `args`; INTERNAL when it cannot be started at all (an exec that
  // fails shows as exit code 127).
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(const std::string& binary,
                                                             std::vector<std::string> args);
  ~ChildProcess();  // SIGKILLs a child still running, removes the log
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Waits until the log matches `pattern` and returns the match's groups ([0]: the whole
  // match); DEADLINE_EXCEEDED, or INTERNAL when the child exits first (both with the log).
  absl::StatusOr<std::vector<std::string>> AwaitLog(const std::regex& pattern,
                                                    absl::Duration timeout);
  void Signal(int sig);
  // The exit code (128 + signal for a signal), or nullopt if it is still running after
  // `timeout`.
  std::optional<int> Wait(absl::Duration timeout);
  std::string Log() const;
  pid_t pid() const { return pid_; }

 private:
  ChildProcess() = default;
  pid_t pid_ = -1;
  std::string log_path_;
};

// A kvtier server binary (kvtier-store, kvtier-worker) started on loopback with
// ephemeral ports: `flags` come after --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0
// (a flag given twice takes its last value, so `flags` may override them), and the ports
// are learned from the "serving on ... (port N)" and "metrics on ... (port N)" log lines.
class ServerProcess {
 public:
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(const std::string& binary,
                                                              std::vector<std::string> flags);
  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }
  std::string target() const { return "127.0.0.1:" + std::to_string(grpc_port_); }
  ChildProcess& process() { return *process_; }

 private:
  std::unique_ptr<ChildProcess> process_;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
};

// The kvtier-store (or other kvtier binary `name`) next to this program: this program's
// build directory is .../bench, the servers are in .../services.
std::string SiblingBinary(const std::string& name);

// GET http://127.0.0.1:port/path; the body of a 200 response.
absl::StatusOr<std::string> HttpGet(int port, const std::string& path);

// A TCP port of 127.0.0.1 that was free a moment ago (for servers that cannot be told to
// pick one themselves, such as redis-server).
absl::StatusOr<int> FreeLoopbackPort();

}  // namespace kvtier::bench

#endif  // KVTIER_BENCH_CHILD_PROCESS_H_
