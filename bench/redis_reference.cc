#include "bench/redis_reference.h"

#include <unistd.h>

#include <regex>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace kvtier::bench {
namespace {

// The full path of `binary` (as given when it contains a '/', else searched on PATH).
absl::StatusOr<std::string> Which(const std::string& binary) {
  if (binary.find('/') != std::string::npos) {
    if (access(binary.c_str(), X_OK) == 0) return binary;
  } else if (const char* path = getenv("PATH"); path != nullptr) {
    std::stringstream dirs(path);
    std::string dir;
    while (std::getline(dirs, dir, ':')) {
      const std::string candidate = absl::StrCat(dir, "/", binary);
      if (access(candidate.c_str(), X_OK) == 0) return candidate;
    }
  }
  return absl::NotFoundError(absl::StrCat(binary,
                                          " is not installed (apt-get install redis-server; "
                                          "scripts/install_deps.sh does)"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<RedisReference>> RedisReference::Start(
    const std::string& server_binary) {
  absl::StatusOr<std::string> binary = Which(server_binary);
  if (!binary.ok()) return binary.status();
  absl::StatusOr<int> port = FreeLoopbackPort();
  if (!port.ok()) return port.status();
  auto redis = std::unique_ptr<RedisReference>(new RedisReference());
  redis->port_ = *port;
  absl::StatusOr<std::unique_ptr<ChildProcess>> server = ChildProcess::Start(
      *binary, {"--port", std::to_string(*port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--protected-mode", "no", "--daemonize", "no"});
  if (!server.ok()) return server.status();
  redis->server_ = *std::move(server);
  absl::StatusOr<std::vector<std::string>> ready =
      redis->server_->AwaitLog(std::regex("[Rr]eady to accept connections"), absl::Seconds(20));
  if (!ready.ok()) return ready.status();
  return redis;
}

absl::StatusOr<RedisThroughput> RedisReference::Measure(const std::string& benchmark_binary,
                                                        uint64_t value_bytes, int clients,
                                                        uint64_t requests) {
  absl::StatusOr<std::string> binary = Which(benchmark_binary);
  if (!binary.ok()) return binary.status();
  absl::StatusOr<std::unique_ptr<ChildProcess>> run = ChildProcess::Start(
      *binary, {"-h", "127.0.0.1", "-p", std::to_string(port_), "-t", "set,get", "-d",
                std::to_string(value_bytes), "-c", std::to_string(clients), "-n",
                std::to_string(requests), "--csv", "-q"});
  if (!run.ok()) return run.status();
  std::optional<int> code = (*run)->Wait(absl::Minutes(5));
  const std::string log = (*run)->Log();
  if (code != 0) {
    return absl::InternalError(
        absl::StrCat("redis-benchmark failed (", code.value_or(-1), "):\n", log));
  }
  // Lines like "SET","1498.13",... : the test and its requests per second.
  RedisThroughput t;
  const std::regex line(R"re("(SET|GET)","([0-9.]+)")re");
  for (auto it = std::sregex_iterator(log.begin(), log.end(), line); it != std::sregex_iterator();
       ++it) {
    double rps = 0;
    if (!absl::SimpleAtod((*it)[2].str(), &rps)) continue;
    ((*it)[1] == "SET" ? t.set_gb_per_s : t.get_gb_per_s) = rps * value_bytes / 1e9;
  }
  if (t.get_gb_per_s == 0 || t.set_gb_per_s == 0) {
    return absl::InternalError(
        absl::StrCat("no SET/GET figures in redis-benchmark's output:\n", log));
  }
  return t;
}

}  // namespace kvtier::bench
