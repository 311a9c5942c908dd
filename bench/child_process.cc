#include "bench/child_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace kvtier::bench {

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Start(const std::string& binary,
                                                                  std::vector<std::string> args) {
  auto p = std::unique_ptr<ChildProcess>(new ChildProcess());
  char path[] = "/tmp/kvtier-child.XXXXXX";
  const int log_fd = mkstemp(path);
  if (log_fd < 0) return absl::InternalError("cannot create a log file in /tmp");
  p->log_path_ = path;
  std::vector<char*> argv;
  std::string program = binary;
  argv.push_back(program.data());
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) {
    close(log_fd);
    return absl::InternalError(absl::StrCat("cannot fork to start ", binary));
  }
  if (pid == 0) {
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    const int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, STDIN_FILENO);
    execv(program.c_str(), argv.data());
    _exit(127);
  }
  close(log_fd);
  p->pid_ = pid;
  return p;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (!log_path_.empty()) unlink(log_path_.c_str());
}

absl::StatusOr<std::vector<std::string>> ChildProcess::AwaitLog(const std::regex& pattern,
                                                                absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    const std::string log = Log();
    std::smatch m;
    if (std::regex_search(log, m, pattern)) return std::vector<std::string>(m.begin(), m.end());
    if (pid_ <= 0 || Wait(absl::ZeroDuration()).has_value()) {
      return absl::InternalError(absl::StrCat("the child exited before it was ready:\n", Log()));
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat("the child was not ready in time:\n", log));
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
}

void ChildProcess::Signal(int sig) {
  if (pid_ > 0) kill(pid_, sig);
}

std::optional<int> ChildProcess::Wait(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (pid_ > 0) {
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (absl::Now() >= deadline) return std::nullopt;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return std::nullopt;
}

std::string ChildProcess::Log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(
    const std::string& binary, std::vector<std::string> flags) {
  flags.insert(flags.begin(), {"--listen=127.0.0.1:0", "--metrics_listen=127.0.0.1:0"});
  auto server = std::make_unique<ServerProcess>();
  absl::StatusOr<std::unique_ptr<ChildProcess>> child = ChildProcess::Start(binary, flags);
  if (!child.ok()) return child.status();
  server->process_ = *std::move(child);
  absl::StatusOr<std::vector<std::string>> serving =
      server->process_->AwaitLog(std::regex(R"(serving on .*\(port (\d+)\))"), absl::Seconds(30));
  if (!serving.ok()) {
    return absl::Status(serving.status().code(),
                        absl::StrCat(binary, ": ", serving.status().message()));
  }
  server->grpc_port_ = std::stoi((*serving)[1]);
  std::smatch m;
  const std::string log = server->process_->Log();
  if (std::regex_search(log, m, std::regex(R"(metrics on .*\(port (\d+)\))"))) {
    server->metrics_port_ = std::stoi(m[1]);
  }
  return server;
}

std::string SiblingBinary(const std::string& name) {
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return name;
  return (self.parent_path().parent_path() / "services" / name).string();
}

absl::StatusOr<std::string> HttpGet(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError("cannot create a socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return absl::UnavailableError(absl::StrCat("cannot connect to port ", port));
  }
  const std::string request =
      absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  (void)!write(fd, request.data(), request.size());
  std::string response;
  char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) response.append(buf, static_cast<size_t>(n));
  close(fd);
  const size_t body = response.find("\r\n\r\n");
  if (response.rfind("HTTP/1.", 0) != 0 || body == std::string::npos) {
    return absl::InternalError("malformed HTTP response");
  }
  if (response.find(" 200 ") == std::string::npos) {
    return absl::InternalError(absl::StrCat("HTTP error: ", response.substr(0, body)));
  }
  return response.substr(body + 4);
}

absl::StatusOr<int> FreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError("cannot create a socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    return absl::InternalError("cannot bind a loopback port");
  }
  close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace kvtier::bench
