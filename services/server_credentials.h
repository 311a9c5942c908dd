// Server credentials from PEM files: TLS when a certificate and key are given, plaintext
// otherwise; with a client CA, mutual TLS (a client must present a certificate that CA
// signed). Shared by kvtier-store and kvtier-worker.
//
// The files are read once here, so that a missing or malformed file fails at start with
// its name, and then watched by gRPC (FileWatcherCertificateProvider): replacing them (as
// cert-manager or a rotated Kubernetes Secret does) takes effect for new connections
// within `reload_interval`, without a restart. A replacement that does not parse, or whose
// key does not match its certificate, is logged by gRPC and the previous ones stay in use.
#ifndef KVTIER_SERVICES_SERVER_CREDENTIALS_H_
#define KVTIER_SERVICES_SERVER_CREDENTIALS_H_

#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace kvtier {

struct TlsFiles {
  std::string cert_file;
  std::string key_file;
  // Non-empty: require client certificates signed by this CA bundle.
  std::string client_ca_file;
  absl::Duration reload_interval = absl::Seconds(10);
};

// cert and key both empty (and no client CA): insecure. One without the other, a client CA
// without a certificate, or an unreadable or empty file: an error naming the file.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFromFiles(
    const TlsFiles& files);
inline absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFromFiles(
    const std::string& cert_file, const std::string& key_file) {
  return ServerCredentialsFromFiles(TlsFiles{.cert_file = cert_file, .key_file = key_file});
}

}  // namespace kvtier

#endif  // KVTIER_SERVICES_SERVER_CREDENTIALS_H_
