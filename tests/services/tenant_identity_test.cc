// Who a caller is, as an operator deploys it: the real kvtier-store with mutual TLS (the
// tenant comes from the client certificate), certificates and token files replaced while it
// runs, and the rules for naming a tenant in a certificate.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "client/cache_store_client.h"
#include "services/tenant_auth.h"
#include "tests/services/store_process.h"
#include "tests/services/test_prompts.h"

namespace kvtier {
namespace {

using ::kvtier::testing::StoreProcess;
using ::kvtier::testing::Tokens;

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A scratch directory of certificates made with the openssl command line.
class Pki {
 public:
  explicit Pki(const std::string& name) : dir_(::testing::TempDir() + "/kvtier_pki_" + name) {
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  ~Pki() { std::filesystem::remove_all(dir_); }

  // A self-signed CA: dir/NAME.pem and dir/NAME.key.
  void MakeCa(const std::string& name) {
    Run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
        "-subj /CN=" + name + " -keyout " + Path(name, "key") + " -out " + Path(name, "pem"));
  }
  // A certificate signed by `ca`, with subject CN and optional subjectAltName entries.
  void MakeCert(const std::string& name, const std::string& ca, const std::string& cn,
                const std::string& san) {
    const std::string ext = Path(name, "ext");
    std::ofstream(ext) << (san.empty() ? "" : "subjectAltName=" + san + "\n");
    Run("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=" + cn +
        " -keyout " + Path(name, "key") + " -out " + Path(name, "csr"));
    Run("openssl x509 -req -days 1 -in " + Path(name, "csr") + " -CA " + Path(ca, "pem") +
        " -CAkey " + Path(ca, "key") + " -CAcreateserial -extfile " + ext + " -out " +
        Path(name, "pem"));
  }
  std::string Path(const std::string& name, const std::string& ext) const {
    return dir_ + "/" + name + "." + ext;
  }
  ClientOptions Client(const std::string& target, const std::string& ca,
                       const std::string& cert) const {
    ClientOptions o{.target = target, .timeout = absl::Seconds(3), .max_attempts = 1};
    o.tls = true;
    o.tls_root_certs = Slurp(Path(ca, "pem"));
    if (!cert.empty()) {
      o.tls_cert_chain = Slurp(Path(cert, "pem"));
      o.tls_private_key = Slurp(Path(cert, "key"));
    }
    // Each client its own connection: a handshake per client, with its own certificate.
    o.own_connection = true;
    return o;
  }

 private:
  void Run(const std::string& command) {
    ASSERT_EQ(std::system((command + " >/dev/null 2>&1").c_str()), 0) << command;
  }
  std::string dir_;
};

TEST(TenantOfCertificateTest, UriSanFirstThenCn) {
  using A = TenantAuthenticator;
  EXPECT_EQ(*A::TenantOfCertificate({"spiffe://x/y", "kvtier://tenant/team-b"}, {"cn"}),
            "team-b");
  EXPECT_EQ(*A::TenantOfCertificate({"spiffe://x/y"}, {"team-a"}), "team-a");
  EXPECT_EQ(A::TenantOfCertificate({"kvtier://tenant/a/b"}, {"ok"}).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_NE(A::TenantOfCertificate({}, {}).status().message().find("names no tenant"),
            std::string_view::npos);
  EXPECT_NE(A::TenantOfCertificate({}, {"has space"}).status().message().find("CN"),
            std::string_view::npos);
}

TEST(TokenReloadTest, ATokenFileChangeTakesEffectAndABrokenOneIsRefused) {
  const std::string path = ::testing::TempDir() + "/kvtier_reload_tokens";
  std::ofstream(path) << "old-token team-a\n";
  absl::StatusOr<std::unique_ptr<TenantAuthenticator>> auth =
      TenantAuthenticator::Create({.token_file = path});
  ASSERT_TRUE(auth.ok()) << auth.status();
  EXPECT_EQ(*(*auth)->TenantFor("old-token", std::nullopt), "team-a");
  EXPECT_TRUE((*auth)->ReloadIfChanged().ok());  // unchanged
  EXPECT_EQ((*auth)->reloads(), 0u);
  // Replaced the way a rotated Secret is: a new file renamed over the old one.
  std::ofstream(path + ".new") << "new-token team-b\n";
  std::filesystem::rename(path + ".new", path);
  EXPECT_TRUE((*auth)->ReloadIfChanged().ok());
  EXPECT_EQ((*auth)->reloads(), 1u);
  EXPECT_EQ((*auth)->TenantFor("old-token", std::nullopt).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(*(*auth)->TenantFor("new-token", std::nullopt), "team-b");
  std::ofstream(path + ".new") << "one-field-only\n";
  std::filesystem::rename(path + ".new", path);
  absl::Status broken = (*auth)->ReloadIfChanged();
  EXPECT_NE(broken.message().find(":1: expected \"TOKEN TENANT\""), std::string_view::npos)
      << broken;
  EXPECT_NE(broken.message().find("stay in force"), std::string_view::npos);
  EXPECT_EQ(*(*auth)->TenantFor("new-token", std::nullopt), "team-b");
  std::filesystem::remove(path);
  EXPECT_EQ((*auth)->ReloadIfChanged().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(*(*auth)->TenantFor("new-token", std::nullopt), "team-b");
}

TEST(TenantIdentityProcessTest, MutualTlsTakesTheTenantFromTheClientCertificate) {
  Pki pki("mtls");
  pki.MakeCa("ca");
  pki.MakeCa("rogue-ca");
  pki.MakeCert("server", "ca", "localhost", "IP:127.0.0.1,DNS:localhost");
  pki.MakeCert("team-a", "ca", "team-a", "");
  pki.MakeCert("team-b", "ca", "ignored-cn", "URI:kvtier://tenant/team-b");
  pki.MakeCert("forged-a", "rogue-ca", "team-a", "");
  auto store = StoreProcess::Start({"--t1_bytes=8388608", "--tls_cert_file=" + pki.Path("server", "pem"),
                                    "--tls_key_file=" + pki.Path("server", "key"),
                                    "--tls_client_ca_file=" + pki.Path("ca", "pem")});
  ASSERT_TRUE(store.ok()) << store.status();
  const std::string target = (*store)->target();

  CacheStoreClient no_cert(pki.Client(target, "ca", ""));
  EXPECT_FALSE(no_cert.Stats().ok());
  CacheStoreClient forged(pki.Client(target, "ca", "forged-a"));
  EXPECT_FALSE(forged.Stats().ok());

  ClientOptions a_options = pki.Client(target, "ca", "team-a");
  a_options.tenant = "team-b";  // the header cannot override the certificate
  CacheStoreClient a(a_options);
  CacheStoreClient b(pki.Client(target, "ca", "team-b"));
  const KvLayout layout = Llama3_8BLayout();
  const std::vector<uint32_t> tokens = Tokens(16, 5);
  ASSERT_TRUE(a.Put(layout, tokens, 0, std::vector<uint8_t>(layout.BlockBytes(), 7)).ok());
  EXPECT_EQ(a.Lookup(layout, tokens)->matched_blocks, 1u);
  EXPECT_EQ(b.Lookup(layout, tokens)->matched_blocks, 0u);
  absl::StatusOr<v1::StatsResponse> sa = a.Stats();
  ASSERT_TRUE(sa.ok()) << sa.status();
  EXPECT_EQ(sa->tenant().tenant(), "team-a");
  EXPECT_EQ(sa->tenant().t1_blocks(), 1u);
  absl::StatusOr<v1::StatsResponse> sb = b.Stats();
  ASSERT_TRUE(sb.ok()) << sb.status();
  EXPECT_EQ(sb->tenant().tenant(), "team-b");

  // A client CA without a server certificate is refused at start.
  auto [code, log] = StoreProcess::RunToExit(
      {"--listen=127.0.0.1:0", "--metrics_listen=", "--t1_bytes=4194304", "--t1_lock=none",
       "--tls_client_ca_file=" + pki.Path("ca", "pem")});
  EXPECT_EQ(code, 2);
  EXPECT_NE(log.find("--tls_client_ca_file needs TLS"), std::string::npos) << log;
}

// Polls `ok` for up to 20 s (the store checks its files every second here).
template <typename F>
bool Eventually(F ok) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    if (ok()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return false;
}

TEST(TenantIdentityProcessTest, CertificatesAndTokensReloadWithoutARestart) {
  Pki pki("reload");
  pki.MakeCa("ca1");
  pki.MakeCa("ca2");
  pki.MakeCert("server1", "ca1", "localhost", "IP:127.0.0.1,DNS:localhost");
  pki.MakeCert("server2", "ca2", "localhost", "IP:127.0.0.1,DNS:localhost");
  const std::string cert = pki.Path("live", "pem"), key = pki.Path("live", "key");
  std::filesystem::copy_file(pki.Path("server1", "pem"), cert);
  std::filesystem::copy_file(pki.Path("server1", "key"), key);
  const std::string tokens = pki.Path("tokens", "txt");
  std::ofstream(tokens) << "old-token team-a\n";
  auto store = StoreProcess::Start({"--t1_bytes=8388608", "--tls_cert_file=" + cert,
                                    "--tls_key_file=" + key, "--auth_token_file=" + tokens,
                                    "--credentials_reload_interval=1s"});
  ASSERT_TRUE(store.ok()) << store.status();
  const std::string target = (*store)->target();
  auto stats_ok = [&](const std::string& ca, const std::string& token) {
    ClientOptions o = pki.Client(target, ca, "");
    o.auth_token = token;
    return CacheStoreClient(o).Stats().ok();
  };
  EXPECT_TRUE(stats_ok("ca1", "old-token"));
  EXPECT_FALSE(stats_ok("ca2", "old-token"));

  // Rotate the server's certificate to one of another CA, and the tokens, as a mounted
  // Secret changes: new files renamed over the old.
  std::filesystem::copy_file(pki.Path("server2", "pem"), cert + ".new");
  std::filesystem::copy_file(pki.Path("server2", "key"), key + ".new");
  std::filesystem::rename(key + ".new", key);
  std::filesystem::rename(cert + ".new", cert);
  std::ofstream(tokens + ".new") << "new-token team-a\n";
  std::filesystem::rename(tokens + ".new", tokens);

  EXPECT_TRUE(Eventually([&] { return stats_ok("ca2", "new-token"); }));
  EXPECT_FALSE(stats_ok("ca1", "new-token"));
  EXPECT_FALSE(stats_ok("ca2", "old-token"));
}

}  // namespace
}  // namespace kvtier
