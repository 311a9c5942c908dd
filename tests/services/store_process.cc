#include "tests/services/store_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace kvtier::testing {
namespace {

pid_t Spawn(const std::string& binary_path, const std::vector<std::string>& flags,
            const std::string& log_path) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  dup2(fd, STDOUT_FILENO);
  dup2(fd, STDERR_FILENO);
  std::vector<char*> argv;
  std::string binary = binary_path;
  argv.push_back(binary.data());
  std::vector<std::string> args = flags;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  execv(binary.c_str(), argv.data());
  _exit(127);
}

std::string TempLogPath() {
  char path[] = "/tmp/kvtier-store-test.XXXXXX";
  int fd = mkstemp(path);
  close(fd);
  return path;
}

}  // namespace

absl::StatusOr<std::unique_ptr<StoreProcess>> StoreProcess::Start(std::vector<std::string> flags) {
  flags.insert(flags.begin(),
               {"--listen=127.0.0.1:0", "--metrics_listen=127.0.0.1:0", "--t1_lock=none"});
  return StartBinary(KVTIER_STORE_BINARY, std::move(flags));
}

absl::StatusOr<std::unique_ptr<StoreProcess>> StoreProcess::StartBinary(
    const std::string& binary, std::vector<std::string> flags) {
  auto p = std::unique_ptr<StoreProcess>(new StoreProcess());
  p->log_path_ = TempLogPath();
  p->pid_ = Spawn(binary, flags, p->log_path_);
  const std::regex metrics_re(R"(metrics on .*\(port (\d+)\))");
  const std::regex serving_re(R"(serving on .*\(port (\d+)\))");
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline) {
    std::string log = p->Log();
    std::smatch m;
    if (std::regex_search(log, m, metrics_re)) p->metrics_port_ = std::stoi(m[1]);
    if (std::regex_search(log, m, serving_re)) {
      p->grpc_port_ = std::stoi(m[1]);
      return p;
    }
    int status;
    if (waitpid(p->pid_, &status, WNOHANG) == p->pid_) {
      p->pid_ = -1;
      return absl::InternalError(absl::StrCat(binary, " exited at start-up:\n", log));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::DeadlineExceededError(absl::StrCat(binary, " did not start:\n", p->Log()));
}

StoreProcess::~StoreProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  unlink(log_path_.c_str());
}

void StoreProcess::Signal(int sig) {
  if (pid_ > 0) kill(pid_, sig);
}

std::optional<int> StoreProcess::Wait(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (pid_ > 0 && absl::Now() < deadline) {
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return std::nullopt;
}

std::string StoreProcess::Log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::pair<int, std::string> StoreProcess::RunToExit(std::vector<std::string> flags) {
  StoreProcess p;
  p.log_path_ = TempLogPath();
  p.pid_ = Spawn(KVTIER_STORE_BINARY, flags, p.log_path_);
  std::optional<int> code = p.Wait(absl::Seconds(30));
  return {code.value_or(-1), p.Log()};
}

absl::StatusOr<std::string> HttpGet(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
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
  while ((n = read(fd, buf, sizeof(buf))) > 0) response.append(buf, n);
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

}  // namespace kvtier::testing
