// Reading PEM files (TLS certificates, keys, CA bundles), for servers and clients alike.
#ifndef KVTIER_PROTO_PEM_FILE_H_
#define KVTIER_PROTO_PEM_FILE_H_

#include <string>

#include "absl/status/statusor.h"

namespace kvtier {

// The file's contents; NOT_FOUND if it cannot be read, INVALID_ARGUMENT if it holds no PEM
// block. Errors name the file.
absl::StatusOr<std::string> ReadPemFile(const std::string& path);

}  // namespace kvtier

#endif  // KVTIER_PROTO_PEM_FILE_H_
