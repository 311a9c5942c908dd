// kvtier-store: the cache-store server. Every flag has a working default, so
// `kvtier-store` alone serves on 0.0.0.0:50051 with metrics on 0.0.0.0:9091.
// A config file is a flag file: `kvtier-store --flagfile=store.flags` (one --flag=value per
// line). SIGTERM or SIGINT drains and exits 0.
#include <prometheus/exposer.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "cache_store/block_store.h"
#include "cache_store/log.h"
#include "services/server_credentials.h"
#include "services/shutdown_signals.h"
#include "services/store_metrics.h"
#include "services/store_server.h"
#include "services/tenant_auth.h"

ABSL_FLAG(std::string, listen, "0.0.0.0:50051",
          "gRPC address to serve on: HOST:PORT, or unix:///PATH (a Unix socket, for clients on "
          "this node; a stale socket file at PATH is replaced).");
ABSL_FLAG(std::string, shard_id, "",
          "This store's name among the shards of a cluster, which sharded clients place blocks "
          "by: it must stay the same across restarts (the chart passes the pod name). Empty: "
          "HOSTNAME:PORT.");
ABSL_FLAG(std::string, metrics_listen, "0.0.0.0:9091",
          "Prometheus /metrics address (HOST:PORT); empty disables it.");
ABSL_FLAG(uint64_t, t1_bytes, uint64_t{1} << 30,
          "Capacity of the pinned host-memory tier (T1) in bytes; allocated at start-up.");
ABSL_FLAG(uint64_t, max_block_bytes, 0,
          "Largest block (of any layout) the store accepts. 0: 16 MiB, or T1/4 for a T1 under "
          "64 MiB.");
ABSL_FLAG(uint64_t, slab_bytes, 0,
          "T1 and T2 are cut into slabs of this size, each holding blocks of one size class "
          "(docs/architecture.md). 0: max(max_block_bytes, min(64 MiB, tier / 16)).");
ABSL_FLAG(uint64_t, t1_min_slot_bytes, 256,
          "Smallest T1 slot: smaller blocks take a slot of this size.");
ABSL_FLAG(uint64_t, t1_slot_bytes, 0, "Deprecated: the old name of --t1_min_slot_bytes.");
ABSL_FLAG(uint64_t, max_blocks, 0,
          "Most blocks held at once in T1 and T2 (bounds the index's memory, about 300 bytes "
          "a block). 0: the tiers' capacity in smallest slots, capped at max(65536, "
          "T1 / 32 KiB + T2 / 128 KiB).");
ABSL_FLAG(std::string, tenant_quota_file, "",
          "Per-tenant quotas: lines of \"TENANT t1_guarantee=SIZE t1_limit=SIZE t2_guarantee=SIZE "
          "t2_limit=SIZE\" (keys optional; \"*\" for every tenant not listed; docs/deploy.md). "
          "A tenant at its limit evicts its own blocks; one under its guarantee is not evicted "
          "for another. Empty: no quotas besides the two flags below.");
ABSL_FLAG(uint64_t, tenant_t1_limit_bytes, 0,
          "Most T1 payload bytes any one tenant may hold (0: no limit); the quota file's "
          "lines override it.");
ABSL_FLAG(uint64_t, tenant_t2_limit_bytes, 0,
          "Most T2 payload bytes any one tenant may hold (0: no limit); the quota file's "
          "lines override it.");
ABSL_FLAG(std::string, t1_lock, "best_effort",
          "Pin/lock T1 memory: required | best_effort | none.");
ABSL_FLAG(std::string, eviction_policy, "adaptive",
          "T1 eviction policy: adaptive (prefix-aware, learns reuse per block class; "
          "docs/policy.md) or lru.");
ABSL_FLAG(std::string, t2_dir, "",
          "Directory of the T2 (local SSD) slab file kvtier-t2.slab. Empty: no T2. A store "
          "restarted on the same directory serves the blocks found there.");
ABSL_FLAG(uint64_t, t2_bytes, uint64_t{16} << 30,
          "T2 capacity in bytes: the size of the slab file, each slot a 4 KiB record header "
          "and its block. Reserved with posix_fallocate at start.");
ABSL_FLAG(std::string, t2_eviction_policy, "slru",
          "T2 eviction policy: slru (segmented LRU: blocks that came back are protected), lru "
          "or adaptive (docs/policy.md explains the default).");
ABSL_FLAG(std::string, t2_admission, "predict",
          "Which blocks evicted from T1 are written to T2: predict (those that have shown "
          "reuse: hit while in T1, read from T2, or Put again after an eviction; and blocks "
          "whose learned probability of being requested again reaches "
          "--t2_admit_min_return), reuse (shown reuse, or the T1 policy's reuse estimate "
          "reaches --t2_admit_min_score), score (only that estimate counts) or all. "
          "docs/policy.md.");
ABSL_FLAG(double, t2_admit_min_score, 0.05,
          "T2 admission score and reuse: a block evicted from T1 without shown reuse is "
          "written to T2 only when the T1 policy's estimated reuse probability is at least "
          "this.");
ABSL_FLAG(double, t2_admit_min_return, 0.04,
          "T2 admission predict: a block evicted from T1 without shown reuse is written to T2 "
          "only when the learned probability that a block of its class is requested again "
          "(within two T1 turnovers) is at least this.");
ABSL_FLAG(bool, t2_keep_promoted_copy, false,
          "A T2 block read back into T1 keeps its T2 copy, so that its next demotion writes "
          "nothing; the copy takes T2 space from other blocks (false: exclusive tiers).");
ABSL_FLAG(uint32_t, t2_promote_after_reads, 8,
          "A T2 block moves to T1 on its Nth read from T2 since it was written there; the "
          "reads before serve it from T2 in place, so that it is not written to T2 again "
          "when T1 evicts it (1: every read promotes; 0: never; at most 255).");
ABSL_FLAG(int, t2_read_threads, 8,
          "Threads that read T2 (several reads of one Fetch run at once; a Fetch never waits "
          "on the disk on a gRPC thread).");
ABSL_FLAG(int, t2_write_threads, 4, "Threads that write demotions to T2.");
ABSL_FLAG(uint64_t, t2_write_queue_bytes, 0,
          "Most bytes of demotions queued for the T2 writers (4 KiB units); a demotion past "
          "it is dropped and counted (kvtier_t2_write_queue_drops_total). 0: --t2_bytes / 4, "
          "at most 256 MiB.");
ABSL_FLAG(bool, t2_direct_io, true, "Use O_DIRECT for T2 (falls back if unsupported).");
ABSL_FLAG(absl::Duration, lease_ttl, absl::Seconds(30),
          "Default lifetime of the lease a Lookup grants.");
ABSL_FLAG(absl::Duration, max_lease_ttl, absl::Minutes(10), "Longest lease a client may ask.");
ABSL_FLAG(absl::Duration, pin_ttl, absl::Minutes(10), "Default lifetime of a pin.");
ABSL_FLAG(absl::Duration, max_pin_ttl, absl::Hours(24), "Longest pin a client may ask.");
ABSL_FLAG(uint64_t, max_active_leases, 1 << 20, "Most leases alive at once.");
ABSL_FLAG(uint64_t, max_prompt_tokens, 1 << 21, "Longest prompt Lookup and Put accept.");
ABSL_FLAG(uint64_t, event_log_capacity, 1 << 16,
          "Events kept for WatchEvents; slower watchers are told how many they lost.");
ABSL_FLAG(int32_t, max_message_bytes, 16 << 20, "Largest gRPC message received or sent.");
ABSL_FLAG(uint32_t, fetch_chunk_bytes, 512 << 10,
          "Default payload bytes per Fetch message (several ranges of the plan travel in one).");
ABSL_FLAG(std::string, shm_socket, "",
          "Same-node data plane: a Unix socket path (e.g. /run/kvtier/shm.sock) on which "
          "clients on this node attach memory regions (sealed memfds); Fetch and Put then copy "
          "blocks straight between T1 and those regions instead of the socket. Empty: off.");
ABSL_FLAG(uint32_t, shm_max_regions, 256, "Same-node: regions attached at once, at most.");
ABSL_FLAG(uint64_t, shm_max_bytes, uint64_t{64} << 30,
          "Same-node: total bytes of the attached regions, at most.");
ABSL_FLAG(int32_t, transfer_threads, 0,
          "Same-node: threads that copy payloads between T1 and attached regions (0: one per "
          "core, at most 8).");
ABSL_FLAG(int32_t, max_threads, 64, "Threads gRPC may use (ResourceQuota).");
ABSL_FLAG(std::string, auth_token_file, "",
          "File of \"TOKEN TENANT\" lines; when set, calls must carry a bearer token (or, "
          "with --tls_client_ca_file, a client certificate). Reloaded when it changes. When "
          "neither is set, the tenant is the x-kvtier-tenant metadata (trusted networks only).");
ABSL_FLAG(uint32_t, max_tenant_series, 32,
          "Tenants with their own hit-rate series in /metrics; later ones count as \"other\".");
ABSL_FLAG(std::string, tls_cert_file, "",
          "PEM certificate (chain) to serve gRPC over TLS; with --tls_key_file. Empty: plaintext.");
ABSL_FLAG(std::string, tls_key_file, "", "PEM private key of --tls_cert_file.");
ABSL_FLAG(std::string, tls_client_ca_file, "",
          "PEM CA bundle: with it, clients must present a certificate this CA signed (mutual "
          "TLS), and a call without a bearer token acts for the tenant its certificate names "
          "(URI SAN kvtier://tenant/NAME, else the subject CN). Needs --tls_cert_file.");
ABSL_FLAG(absl::Duration, credentials_reload_interval, absl::Seconds(10),
          "How often the TLS files and --auth_token_file are checked for changes; a changed "
          "file takes effect without a restart (new connections, for certificates).");
ABSL_FLAG(absl::Duration, drain_timeout, absl::Seconds(20),
          "On SIGTERM, how long calls in flight may take to finish.");

namespace kvtier {
namespace {

absl::StatusOr<MemoryLockMode> ParseLockMode(const std::string& s) {
  if (s == "required") return MemoryLockMode::kRequired;
  if (s == "best_effort") return MemoryLockMode::kBestEffort;
  if (s == "none") return MemoryLockMode::kNone;
  return absl::InvalidArgumentError(
      absl::StrCat("--t1_lock=", s, " is not one of required, best_effort, none"));
}

int Run() {
  // Block the shutdown signals in every thread; the main thread waits for them below.
  const sigset_t signals = BlockShutdownSignals();

  absl::StatusOr<MemoryLockMode> lock_mode = ParseLockMode(absl::GetFlag(FLAGS_t1_lock));
  if (!lock_mode.ok()) {
    KVTIER_LOG(ERROR) << lock_mode.status().message();
    return 2;
  }
  uint64_t min_slot = absl::GetFlag(FLAGS_t1_min_slot_bytes);
  if (const uint64_t old = absl::GetFlag(FLAGS_t1_slot_bytes); old != 0) {
    KVTIER_LOG(WARNING) << "--t1_slot_bytes is deprecated: T1 holds blocks of every size up to "
                           "--max_block_bytes; taking it as --t1_min_slot_bytes="
                        << old;
    min_slot = old;
  }
  BlockStoreOptions options;
  options.t1 = {.capacity_bytes = absl::GetFlag(FLAGS_t1_bytes),
                .max_block_bytes = absl::GetFlag(FLAGS_max_block_bytes),
                .slab_bytes = absl::GetFlag(FLAGS_slab_bytes),
                .min_slot_bytes = min_slot,
                .lock_mode = *lock_mode};
  options.eviction_policy = absl::GetFlag(FLAGS_eviction_policy);
  options.t2 = {.directory = absl::GetFlag(FLAGS_t2_dir),
                .capacity_bytes = absl::GetFlag(FLAGS_t2_bytes),
                .slab_bytes = absl::GetFlag(FLAGS_slab_bytes),
                .direct_io = absl::GetFlag(FLAGS_t2_direct_io)};
  options.max_blocks = absl::GetFlag(FLAGS_max_blocks);
  options.t2_eviction_policy = absl::GetFlag(FLAGS_t2_eviction_policy);
  options.t2_admit_min_score = absl::GetFlag(FLAGS_t2_admit_min_score);
  options.t2_admit_min_return = absl::GetFlag(FLAGS_t2_admit_min_return);
  absl::StatusOr<BlockStoreOptions::T2Admission> admission =
      ParseT2Admission(absl::GetFlag(FLAGS_t2_admission));
  if (!admission.ok()) {
    KVTIER_LOG(ERROR) << "--t2_admission: " << admission.status().message();
    return 2;
  }
  options.t2_admission = *admission;
  options.t2_keep_promoted_copy = absl::GetFlag(FLAGS_t2_keep_promoted_copy);
  options.t2_promote_after_reads = absl::GetFlag(FLAGS_t2_promote_after_reads);
  options.t2_read_threads = absl::GetFlag(FLAGS_t2_read_threads);
  options.t2_write_threads = absl::GetFlag(FLAGS_t2_write_threads);
  options.t2_write_queue_bytes = absl::GetFlag(FLAGS_t2_write_queue_bytes);
  options.default_lease_ttl = absl::GetFlag(FLAGS_lease_ttl);
  options.max_lease_ttl = absl::GetFlag(FLAGS_max_lease_ttl);
  options.default_pin_ttl = absl::GetFlag(FLAGS_pin_ttl);
  options.max_pin_ttl = absl::GetFlag(FLAGS_max_pin_ttl);
  options.max_active_leases = absl::GetFlag(FLAGS_max_active_leases);
  options.max_prompt_tokens = absl::GetFlag(FLAGS_max_prompt_tokens);
  options.event_log_capacity = absl::GetFlag(FLAGS_event_log_capacity);
  const TenantQuota default_quota{.t1_limit = absl::GetFlag(FLAGS_tenant_t1_limit_bytes),
                                  .t2_limit = absl::GetFlag(FLAGS_tenant_t2_limit_bytes)};
  if (const std::string path = absl::GetFlag(FLAGS_tenant_quota_file); !path.empty()) {
    absl::StatusOr<TenantQuotas> quotas = LoadTenantQuotaFile(path, default_quota);
    if (!quotas.ok()) {
      KVTIER_LOG(ERROR) << quotas.status().message();
      return 2;
    }
    options.quotas = *std::move(quotas);
  } else {
    options.quotas.defaults = default_quota;
  }
  absl::StatusOr<std::unique_ptr<BlockStore>> store = BlockStore::Create(options);
  if (!store.ok()) {
    KVTIER_LOG(ERROR) << "cannot create the store: " << store.status().message();
    return 2;
  }
  const BlockStoreStats stats = (*store)->Stats();
  KVTIER_LOG(INFO) << "T1: " << stats.t1_capacity_bytes << " bytes in " << stats.t1_slabs
                   << " slabs of " << stats.t1_slab_bytes << " bytes, blocks of "
                   << stats.t1_slot_bytes << " to " << stats.max_block_bytes
                   << " bytes, at most " << stats.max_blocks
                   << " blocks; memory lock: " << stats.t1_lock_method
                   << ", policy: " << stats.eviction_policy;
  if (stats.t2_enabled) {
    KVTIER_LOG(INFO) << "T2: " << stats.t2_capacity_bytes << " bytes in " << stats.t2_slabs
                     << " slabs in "
                     << absl::GetFlag(FLAGS_t2_dir)
                     << " (direct I/O: " << (stats.t2_direct_io ? "yes" : "no") << "), "
                     << stats.t2_recovered_blocks << " blocks recovered, "
                     << stats.t2_recovery_drops << " dropped, policy " << stats.t2_eviction_policy;
  }

  if (options.quotas.enabled()) {
    KVTIER_LOG(INFO) << "tenant quotas: " << options.quotas.tenants.size()
                     << " tenants listed; any other tenant: T1 limit "
                     << options.quotas.defaults.t1_limit << " bytes, T2 limit "
                     << options.quotas.defaults.t2_limit << " bytes (0: none)";
  }

  absl::StatusOr<std::unique_ptr<TenantAuthenticator>> created = TenantAuthenticator::Create(
      {.token_file = absl::GetFlag(FLAGS_auth_token_file),
       .certificate_identity = !absl::GetFlag(FLAGS_tls_client_ca_file).empty()});
  if (!created.ok()) {
    KVTIER_LOG(ERROR) << created.status().message();
    return 2;
  }
  std::unique_ptr<TenantAuthenticator> auth = *std::move(created);
  auth->StartReloading(absl::GetFlag(FLAGS_credentials_reload_interval));
  if (!auth->authenticates()) {
    KVTIER_LOG(WARNING)
        << "INSECURE: no --auth_token_file and no --tls_client_ca_file: this store trusts the "
        << kTenantMetadataKey
        << " metadata, so any caller that reaches it can read and write any tenant's blocks. "
           "Use this only on a trusted network (docs/deploy.md, \"Security\").";
  } else {
    KVTIER_LOG(INFO) << "tenants authenticated by "
                     << (absl::GetFlag(FLAGS_auth_token_file).empty() ? "" : "bearer token")
                     << (!absl::GetFlag(FLAGS_auth_token_file).empty() &&
                                 !absl::GetFlag(FLAGS_tls_client_ca_file).empty()
                             ? " or "
                             : "")
                     << (absl::GetFlag(FLAGS_tls_client_ca_file).empty() ? ""
                                                                        : "client certificate");
  }

  StoreMetrics metrics(store->get(), absl::GetFlag(FLAGS_max_tenant_series));
  std::unique_ptr<prometheus::Exposer> exposer;
  if (const std::string addr = absl::GetFlag(FLAGS_metrics_listen); !addr.empty()) {
    try {  // prometheus-cpp reports a busy port by throwing; keep it inside this edge
      exposer = std::make_unique<prometheus::Exposer>(addr, 2);
    } catch (const std::exception& e) {
      KVTIER_LOG(ERROR) << "cannot serve metrics on " << addr << ": " << e.what();
      return 2;
    }
    for (const auto& c : metrics.collectables()) exposer->RegisterCollectable(c);
    KVTIER_LOG(INFO) << "metrics on http://" << addr << "/metrics (port "
                     << exposer->GetListeningPorts().front() << ")";
  }

  StoreServerOptions server_options;
  server_options.listen = absl::GetFlag(FLAGS_listen);
  server_options.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  server_options.max_threads = absl::GetFlag(FLAGS_max_threads);
  server_options.service.default_fetch_chunk_bytes = absl::GetFlag(FLAGS_fetch_chunk_bytes);
  server_options.service.shard_id = absl::GetFlag(FLAGS_shard_id);
  server_options.shm_attach.path = absl::GetFlag(FLAGS_shm_socket);
  server_options.shm_regions = {.max_regions = absl::GetFlag(FLAGS_shm_max_regions),
                                .max_total_bytes = absl::GetFlag(FLAGS_shm_max_bytes)};
  server_options.transfer_threads = absl::GetFlag(FLAGS_transfer_threads);
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      ServerCredentialsFromFiles({.cert_file = absl::GetFlag(FLAGS_tls_cert_file),
                                  .key_file = absl::GetFlag(FLAGS_tls_key_file),
                                  .client_ca_file = absl::GetFlag(FLAGS_tls_client_ca_file),
                                  .reload_interval =
                                      absl::GetFlag(FLAGS_credentials_reload_interval)});
  if (!credentials.ok()) {
    KVTIER_LOG(ERROR) << credentials.status().message();
    return 2;
  }
  server_options.credentials = *credentials;
  absl::StatusOr<std::unique_ptr<StoreServer>> server =
      StoreServer::Start(store->get(), auth.get(), &metrics, server_options);
  if (!server.ok()) {
    KVTIER_LOG(ERROR) << server.status().message();
    return 2;
  }
  if (server_options.listen.rfind("unix:", 0) == 0) {
    KVTIER_LOG(INFO) << "kvtier-store serving on " << server_options.listen;
  } else {
    KVTIER_LOG(INFO) << "kvtier-store serving on " << server_options.listen << " (port "
                     << (*server)->port() << ")";
  }
  KVTIER_LOG(INFO) << "shard id " << (*server)->shard_id();
  if (!server_options.shm_attach.path.empty()) {
    KVTIER_LOG(INFO) << "same-node data plane: regions attach on "
                     << server_options.shm_attach.path;
  }

  const int sig = AwaitShutdownSignal(signals);
  const absl::Duration drain = absl::GetFlag(FLAGS_drain_timeout);
  KVTIER_LOG(INFO) << "signal " << sig << ": draining for up to " << drain;
  (*server)->Shutdown(drain);
  (*server)->Wait();
  KVTIER_LOG(INFO) << "kvtier-store stopped";
  // Every call has finished and T1 holds nothing that must outlive the process, so exit
  // now: tearing down the metrics server (civetweb's mg_stop) can sleep for seconds and
  // would push the exit past Kubernetes' grace period for no benefit.
  std::_Exit(0);
}

}  // namespace
}  // namespace kvtier

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "kvtier-store: KV-cache block store (see docs/operations in README)");
  absl::ParseCommandLine(argc, argv);
  return kvtier::Run();
}
