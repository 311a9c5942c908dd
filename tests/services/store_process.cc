#include "tests/services/store_process.h"

namespace kvtier::testing {

absl::StatusOr<std::unique_ptr<StoreProcess>> StoreProcess::Start(std::vector<std::string> flags) {
  flags.insert(flags.begin(), "--t1_lock=none");
  return StartBinary(KVTIER_STORE_BINARY, std::move(flags));
}

absl::StatusOr<std::unique_ptr<StoreProcess>> StoreProcess::StartBinary(
    const std::string& binary, std::vector<std::string> flags) {
  absl::StatusOr<std::unique_ptr<bench::ServerProcess>> server =
      bench::ServerProcess::Start(binary, std::move(flags));
  if (!server.ok()) return server.status();
  auto p = std::make_unique<StoreProcess>();
  p->server_ = *std::move(server);
  return p;
}

std::pair<int, std::string> StoreProcess::RunToExit(std::vector<std::string> flags) {
  absl::StatusOr<std::unique_ptr<bench::ChildProcess>> child =
      bench::ChildProcess::Start(KVTIER_STORE_BINARY, std::move(flags));
  if (!child.ok()) return {-1, std::string(child.status().message())};
  std::optional<int> code = (*child)->Wait(absl::Seconds(30));
  return {code.value_or(-1), (*child)->Log()};
}

}  // namespace kvtier::testing
