#include "services/tenant_auth.h"

#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace kvtier {

absl::Status ValidateTenantName(const std::string& tenant) {
  if (tenant.empty() || tenant.size() > 64) {
    return absl::InvalidArgumentError("a tenant name is 1 to 64 characters");
  }
  for (char c : tenant) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return absl::InvalidArgumentError(
          absl::StrCat("tenant name \"", tenant, "\" has a character outside [A-Za-z0-9._-]"));
    }
  }
  return absl::OkStatus();
}

std::unique_ptr<TenantAuthenticator> TenantAuthenticator::Insecure() {
  return std::unique_ptr<TenantAuthenticator>(new TenantAuthenticator());
}

absl::StatusOr<std::unique_ptr<TenantAuthenticator>> TenantAuthenticator::FromTokenFile(
    const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read auth token file ", path));
  std::unique_ptr<TenantAuthenticator> auth(new TenantAuthenticator());
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    std::string_view content = line;
    content = content.substr(0, content.find('#'));
    std::vector<std::string> fields =
        absl::StrSplit(absl::string_view(content.data(), content.size()), absl::ByAnyChar(" \t"),
                       absl::SkipEmpty());
    if (fields.empty()) continue;
    if (fields.size() != 2) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", n, ": expected \"TOKEN TENANT\""));
    }
    if (absl::Status s = ValidateTenantName(fields[1]); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", n, ": ", s.message()));
    }
    if (!auth->tenant_by_token_.emplace(fields[0], fields[1]).second) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", n, ": duplicate token"));
    }
  }
  if (auth->tenant_by_token_.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("auth token file ", path, " has no tokens"));
  }
  return auth;
}

absl::StatusOr<std::string> TenantAuthenticator::TenantOf(
    const grpc::ServerContextBase& context) const {
  const auto& metadata = context.client_metadata();
  std::optional<std::string_view> token;
  if (auto it = metadata.find("authorization"); it != metadata.end()) {
    const std::string_view value(it->second.data(), it->second.size());
    if (value.rfind("Bearer ", 0) != 0) {
      if (requires_token()) {
        return absl::UnauthenticatedError("authorization metadata is not a Bearer token");
      }
    } else {
      token = value.substr(7);
    }
  }
  std::optional<std::string_view> tenant;
  if (auto it = metadata.find(kTenantMetadataKey); it != metadata.end()) {
    tenant = std::string_view(it->second.data(), it->second.size());
  }
  return TenantFor(token, tenant);
}

absl::StatusOr<std::string> TenantAuthenticator::TenantFor(
    std::optional<std::string_view> bearer_token, std::optional<std::string_view> tenant) const {
  if (requires_token()) {
    if (!bearer_token.has_value()) {
      return absl::UnauthenticatedError("missing `authorization: Bearer <token>` metadata");
    }
    auto it = tenant_by_token_.find(absl::string_view(bearer_token->data(), bearer_token->size()));
    if (it == tenant_by_token_.end()) return absl::UnauthenticatedError("unknown bearer token");
    return it->second;
  }
  if (!tenant.has_value() || tenant->empty()) return std::string(kDefaultTenant);
  std::string name(*tenant);
  if (absl::Status s = ValidateTenantName(name); !s.ok()) return s;
  return name;
}

}  // namespace kvtier
