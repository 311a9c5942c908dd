// TenantAuthenticator: who is calling. Every CacheStore call acts for one tenant.
//
// With a token file (one "TOKEN TENANT" pair per line, '#' starts a comment) the caller
// must send `authorization: Bearer TOKEN`; a missing or unknown token is UNAUTHENTICATED.
// Without one (trusted networks, development) the tenant is the `x-kvtier-tenant`
// metadata, or "default" when absent. Tenant names are 1-64 characters of [A-Za-z0-9._-].
// Immutable after creation; thread-safe.
#ifndef KVTIER_SERVICES_TENANT_AUTH_H_
#define KVTIER_SERVICES_TENANT_AUTH_H_

#include <grpcpp/server_context.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace kvtier {

inline constexpr char kTenantMetadataKey[] = "x-kvtier-tenant";
inline constexpr char kDefaultTenant[] = "default";

class TenantAuthenticator {
 public:
  // Trusts the x-kvtier-tenant metadata.
  static std::unique_ptr<TenantAuthenticator> Insecure();
  // Requires a bearer token listed in the file. INVALID_ARGUMENT naming the line for a
  // malformed file, NOT_FOUND when it cannot be read.
  static absl::StatusOr<std::unique_ptr<TenantAuthenticator>> FromTokenFile(
      const std::string& path);

  absl::StatusOr<std::string> TenantOf(const grpc::ServerContextBase& context) const;
  // The same decision from credentials that came another way (the same-node attach
  // socket): a bearer token, and the tenant name a trusting store takes instead (empty or
  // absent: "default").
  absl::StatusOr<std::string> TenantFor(std::optional<std::string_view> bearer_token,
                                        std::optional<std::string_view> tenant) const;
  bool requires_token() const { return !tenant_by_token_.empty(); }

 private:
  TenantAuthenticator() = default;
  absl::flat_hash_map<std::string, std::string> tenant_by_token_;
};

// OK when `tenant` is a valid tenant name.
absl::Status ValidateTenantName(const std::string& tenant);

}  // namespace kvtier

#endif  // KVTIER_SERVICES_TENANT_AUTH_H_
