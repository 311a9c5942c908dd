// TenantAuthenticator: who is calling. Every CacheStore call acts for one tenant.
//
// Identity comes from one of (docs/deploy.md, "Security"):
//  - a bearer token: with a token file (one "TOKEN TENANT" pair per line, '#' starts a
//    comment) a call sending `authorization: Bearer TOKEN` acts for the token's tenant;
//  - a client certificate: with certificate identity on (kvtier-store --tls_client_ca_file,
//    so the TLS handshake already verified the certificate against that CA), the tenant is
//    named by the certificate: its first URI SAN of the form kvtier://tenant/NAME, else its
//    subject CN;
//  - neither configured (trusted networks, development): the `x-kvtier-tenant` metadata,
//    or "default" when absent. Anyone who can reach the store can claim any tenant.
// With both tokens and certificates, a call that sends a bearer token is judged by it (an
// unknown token is refused even with a good certificate); one without is judged by its
// certificate. Anything else is UNAUTHENTICATED. Tenant names are 1-64 characters of
// [A-Za-z0-9._-].
//
// The token file reloads when it changes (ReloadIfChanged, or StartReloading's thread): a
// removed token stops working, a new one starts; a file that no longer parses is reported
// and the last good table stays in force. Thread-safe.
#ifndef KVTIER_SERVICES_TENANT_AUTH_H_
#define KVTIER_SERVICES_TENANT_AUTH_H_

#include <grpcpp/server_context.h>
#include <sys/stat.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace kvtier {

inline constexpr char kTenantMetadataKey[] = "x-kvtier-tenant";
inline constexpr char kDefaultTenant[] = "default";
// A client certificate names its tenant with a URI SAN of this prefix followed by the name.
inline constexpr char kTenantUriPrefix[] = "kvtier://tenant/";

class TenantAuthenticator {
 public:
  struct Options {
    // "TOKEN TENANT" lines; empty: no tokens.
    std::string token_file;
    // Take the tenant from the verified client certificate.
    bool certificate_identity = false;
  };

  // Trusts the x-kvtier-tenant metadata.
  static std::unique_ptr<TenantAuthenticator> Insecure();
  // INVALID_ARGUMENT naming the line for a malformed token file, NOT_FOUND when it cannot
  // be read.
  static absl::StatusOr<std::unique_ptr<TenantAuthenticator>> Create(const Options& options);
  // Requires a bearer token listed in the file.
  static absl::StatusOr<std::unique_ptr<TenantAuthenticator>> FromTokenFile(
      const std::string& path) {
    return Create({.token_file = path});
  }
  ~TenantAuthenticator();

  absl::StatusOr<std::string> TenantOf(const grpc::ServerContextBase& context) const;
  // The same decision from credentials that came another way (the same-node attach
  // socket, which carries no certificate): a bearer token, and the tenant name a trusting
  // store takes instead (empty or absent: "default").
  absl::StatusOr<std::string> TenantFor(std::optional<std::string_view> bearer_token,
                                        std::optional<std::string_view> tenant) const;
  // The tenant a certificate's identity names (URI SANs and CN as the auth context has
  // them), or UNAUTHENTICATED saying what is missing.
  static absl::StatusOr<std::string> TenantOfCertificate(const std::vector<std::string>& uris,
                                                         const std::vector<std::string>& cns);
  // Whether callers must prove who they are (tokens or certificates).
  bool authenticates() const { return !options_.token_file.empty() || options_.certificate_identity; }

  // Rereads the token file when its modification time, size or inode changed. OK when
  // unchanged or reloaded; the parse error otherwise (the previous tokens stay).
  absl::Status ReloadIfChanged() ABSL_LOCKS_EXCLUDED(mu_);
  // A thread that calls ReloadIfChanged every `interval` (logging what it does) until
  // destruction. No-op without a token file.
  void StartReloading(absl::Duration interval);
  uint64_t reloads() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  using TokenTable = absl::flat_hash_map<std::string, std::string>;  // token -> tenant
  struct FileStamp {
    int64_t mtime_ns = 0;
    int64_t size = -1;
    uint64_t inode = 0;
    bool operator==(const FileStamp&) const = default;
  };

  explicit TenantAuthenticator(Options options) : options_(std::move(options)) {}
  static absl::StatusOr<std::shared_ptr<const TokenTable>> ParseTokenFile(const std::string& path);
  static std::optional<FileStamp> StampOf(const std::string& path);
  std::shared_ptr<const TokenTable> tokens() const ABSL_LOCKS_EXCLUDED(mu_);

  const Options options_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const TokenTable> tokens_ ABSL_GUARDED_BY(mu_);
  FileStamp stamp_ ABSL_GUARDED_BY(mu_);
  uint64_t reloads_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Notification stop_;
  std::thread reloader_;
};

// OK when `tenant` is a valid tenant name.
absl::Status ValidateTenantName(const std::string& tenant);

}  // namespace kvtier

#endif  // KVTIER_SERVICES_TENANT_AUTH_H_
