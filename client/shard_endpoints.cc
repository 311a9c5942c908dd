#include "client/shard_endpoints.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace kvtier {

bool ShardEndpoints::IsCluster(std::string_view spec) {
  return spec.starts_with("dns:") || spec.find(',') != std::string_view::npos;
}

absl::StatusOr<ShardEndpoints> ShardEndpoints::Parse(std::string_view spec_view) {
  ShardEndpoints e;
  e.spec_ = std::string(spec_view);
  absl::string_view spec(e.spec_);
  if (absl::ConsumePrefix(&spec, "dns:")) {
    // dns:///name:port (gRPC's form; an authority between the slashes is not supported).
    if (!absl::ConsumePrefix(&spec, "///")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "store target '", e.spec_, "': a DNS target is dns:///NAME:PORT (no DNS authority)"));
    }
    const size_t colon = spec.rfind(':');
    if (colon == absl::string_view::npos || colon == 0 || colon + 1 == spec.size() ||
        spec.back() == ']') {
      return absl::InvalidArgumentError(
          absl::StrCat("store target '", e.spec_, "': a DNS target needs NAME:PORT"));
    }
    e.dns_ = true;
    e.host_ = std::string(spec.substr(0, colon));
    e.port_ = std::string(spec.substr(colon + 1));
    if (e.host_.size() > 2 && e.host_.front() == '[' && e.host_.back() == ']') {
      e.host_ = e.host_.substr(1, e.host_.size() - 2);
    }
    return e;
  }
  for (absl::string_view t : absl::StrSplit(spec, ',')) {
    t = absl::StripAsciiWhitespace(t);
    if (t.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("store target '", e.spec_, "' has an empty entry"));
    }
    e.targets_.emplace_back(t);
  }
  std::sort(e.targets_.begin(), e.targets_.end());
  e.targets_.erase(std::unique(e.targets_.begin(), e.targets_.end()), e.targets_.end());
  return e;
}

absl::StatusOr<std::vector<std::string>> ShardEndpoints::Resolve() const {
  if (!dns_) return targets_;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(host_.c_str(), port_.c_str(), &hints, &found); rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot resolve ", host_, ":", port_, ": ", gai_strerror(rc)));
  }
  std::vector<std::string> targets;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    char ip[INET6_ADDRSTRLEN] = {};
    if (a->ai_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr, ip, sizeof(ip));
      targets.push_back(absl::StrCat(ip, ":", port_));
    } else if (a->ai_family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr, ip, sizeof(ip));
      targets.push_back(absl::StrCat("[", ip, "]:", port_));
    }
  }
  freeaddrinfo(found);
  std::sort(targets.begin(), targets.end());
  targets.erase(std::unique(targets.begin(), targets.end()), targets.end());
  return targets;
}

}  // namespace kvtier
