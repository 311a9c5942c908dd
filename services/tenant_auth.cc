#include "services/tenant_auth.h"

#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cache_store/log.h"
#include <grpc/grpc_security_constants.h>

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
  return std::unique_ptr<TenantAuthenticator>(new TenantAuthenticator(Options{}));
}

absl::StatusOr<std::shared_ptr<const TenantAuthenticator::TokenTable>>
TenantAuthenticator::ParseTokenFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read auth token file ", path));
  auto table = std::make_shared<TokenTable>();
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    std::string_view content = line;
    content = content.substr(0, content.find('#'));
    std::vector<std::string> fields =
        absl::StrSplit(absl::string_view(content.data(), content.size()), absl::ByAnyChar(" \t\r"),
                       absl::SkipEmpty());
    if (fields.empty()) continue;
    if (fields.size() != 2) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", n, ": expected \"TOKEN TENANT\""));
    }
    if (absl::Status s = ValidateTenantName(fields[1]); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", n, ": ", s.message()));
    }
    if (!table->emplace(fields[0], fields[1]).second) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", n, ": duplicate token"));
    }
  }
  if (table->empty()) {
    return absl::InvalidArgumentError(absl::StrCat("auth token file ", path, " has no tokens"));
  }
  return std::shared_ptr<const TokenTable>(std::move(table));
}

std::optional<TenantAuthenticator::FileStamp> TenantAuthenticator::StampOf(
    const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return FileStamp{.mtime_ns = int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec,
                   .size = st.st_size,
                   .inode = st.st_ino};
}

absl::StatusOr<std::unique_ptr<TenantAuthenticator>> TenantAuthenticator::Create(
    const Options& options) {
  std::unique_ptr<TenantAuthenticator> auth(new TenantAuthenticator(options));
  if (!options.token_file.empty()) {
    const std::optional<FileStamp> stamp = StampOf(options.token_file);
    absl::StatusOr<std::shared_ptr<const TokenTable>> table = ParseTokenFile(options.token_file);
    if (!table.ok()) return table.status();
    absl::MutexLock lock(&auth->mu_);
    auth->tokens_ = *std::move(table);
    auth->stamp_ = stamp.value_or(FileStamp{});
  }
  return auth;
}

TenantAuthenticator::~TenantAuthenticator() {
  if (reloader_.joinable()) {
    stop_.Notify();
    reloader_.join();
  }
}

std::shared_ptr<const TenantAuthenticator::TokenTable> TenantAuthenticator::tokens() const {
  absl::MutexLock lock(&mu_);
  return tokens_;
}

uint64_t TenantAuthenticator::reloads() const {
  absl::MutexLock lock(&mu_);
  return reloads_;
}

absl::Status TenantAuthenticator::ReloadIfChanged() {
  if (options_.token_file.empty()) return absl::OkStatus();
  const std::optional<FileStamp> stamp = StampOf(options_.token_file);
  {
    absl::MutexLock lock(&mu_);
    if (stamp && *stamp == stamp_) return absl::OkStatus();
  }
  if (!stamp) {
    return absl::NotFoundError(absl::StrCat("auth token file ", options_.token_file,
                                            " is gone; the tokens read last stay in force"));
  }
  absl::StatusOr<std::shared_ptr<const TokenTable>> table = ParseTokenFile(options_.token_file);
  absl::MutexLock lock(&mu_);
  // Judged once per change: a broken file is reported once, and retried when it changes.
  stamp_ = *stamp;
  if (!table.ok()) {
    return absl::Status(table.status().code(),
                        absl::StrCat(table.status().message(),
                                     "; the tokens read last stay in force"));
  }
  tokens_ = *std::move(table);
  ++reloads_;
  return absl::OkStatus();
}

void TenantAuthenticator::StartReloading(absl::Duration interval) {
  if (options_.token_file.empty() || reloader_.joinable()) return;
  reloader_ = std::thread([this, interval] {
    while (!stop_.WaitForNotificationWithTimeout(interval)) {
      const uint64_t before = reloads();
      if (absl::Status s = ReloadIfChanged(); !s.ok()) {
        KVTIER_LOG(ERROR) << s.message();
      } else if (reloads() != before) {
        KVTIER_LOG(INFO) << "auth token file " << options_.token_file << " reloaded: "
                         << tokens()->size() << " tokens";
      }
    }
  });
}

absl::StatusOr<std::string> TenantAuthenticator::TenantOfCertificate(
    const std::vector<std::string>& uris, const std::vector<std::string>& cns) {
  for (const std::string& uri : uris) {
    if (uri.rfind(kTenantUriPrefix, 0) != 0) continue;
    std::string name = uri.substr(std::string_view(kTenantUriPrefix).size());
    if (absl::Status s = ValidateTenantName(name); !s.ok()) {
      return absl::UnauthenticatedError(
          absl::StrCat("the client certificate's URI SAN ", uri, " does not name a tenant: ",
                       s.message()));
    }
    return name;
  }
  if (cns.empty()) {
    return absl::UnauthenticatedError(absl::StrCat(
        "the client certificate names no tenant (neither a ", kTenantUriPrefix,
        "NAME URI SAN nor a subject CN)"));
  }
  if (absl::Status s = ValidateTenantName(cns.front()); !s.ok()) {
    return absl::UnauthenticatedError(absl::StrCat(
        "the client certificate's CN does not name a tenant: ", s.message()));
  }
  return cns.front();
}

absl::StatusOr<std::string> TenantAuthenticator::TenantOf(
    const grpc::ServerContextBase& context) const {
  const auto& metadata = context.client_metadata();
  std::optional<std::string_view> token;
  if (auto it = metadata.find("authorization"); it != metadata.end()) {
    const std::string_view value(it->second.data(), it->second.size());
    if (value.rfind("Bearer ", 0) != 0) {
      if (authenticates()) {
        return absl::UnauthenticatedError("authorization metadata is not a Bearer token");
      }
    } else {
      token = value.substr(7);
    }
  }
  if (options_.certificate_identity && !(token && !options_.token_file.empty())) {
    const std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
    std::vector<std::string> uris, cns;
    if (auth != nullptr) {
      for (const grpc::string_ref& v : auth->FindPropertyValues(GRPC_PEER_URI_PROPERTY_NAME)) {
        uris.emplace_back(v.data(), v.size());
      }
      for (const grpc::string_ref& v : auth->FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME)) {
        cns.emplace_back(v.data(), v.size());
      }
    }
    if (auth == nullptr || !auth->IsPeerAuthenticated()) {
      if (options_.token_file.empty()) {
        return absl::UnauthenticatedError("this store requires a client certificate");
      }
      return absl::UnauthenticatedError(
          "missing `authorization: Bearer <token>` metadata or a client certificate");
    }
    return TenantOfCertificate(uris, cns);
  }
  std::optional<std::string_view> tenant;
  if (auto it = metadata.find(kTenantMetadataKey); it != metadata.end()) {
    tenant = std::string_view(it->second.data(), it->second.size());
  }
  return TenantFor(token, tenant);
}

absl::StatusOr<std::string> TenantAuthenticator::TenantFor(
    std::optional<std::string_view> bearer_token, std::optional<std::string_view> tenant) const {
  if (!options_.token_file.empty()) {
    if (!bearer_token.has_value()) {
      return absl::UnauthenticatedError("missing `authorization: Bearer <token>` metadata");
    }
    const std::shared_ptr<const TokenTable> table = tokens();
    auto it = table->find(absl::string_view(bearer_token->data(), bearer_token->size()));
    if (it == table->end()) return absl::UnauthenticatedError("unknown bearer token");
    return it->second;
  }
  if (options_.certificate_identity) {
    return absl::UnauthenticatedError(
        "this store identifies tenants by client certificate only, which this path does not "
        "carry; give the store an --auth_token_file and the client a token");
  }
  if (!tenant.has_value() || tenant->empty()) return std::string(kDefaultTenant);
  std::string name(*tenant);
  if (absl::Status s = ValidateTenantName(name); !s.ok()) return s;
  return name;
}

}  // namespace kvtier
