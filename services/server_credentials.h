// Server credentials from PEM files: TLS when a certificate and key are given, plaintext
// otherwise. Shared by kvtier-store and kvtier-worker.
#ifndef KVTIER_SERVICES_SERVER_CREDENTIALS_H_
#define KVTIER_SERVICES_SERVER_CREDENTIALS_H_

#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace kvtier {

// Both empty: insecure. One without the other, or an unreadable or empty file: an error
// naming the file.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFromFiles(
    const std::string& cert_file, const std::string& key_file);

}  // namespace kvtier

#endif  // KVTIER_SERVICES_SERVER_CREDENTIALS_H_
