// kvtier-worker: the decode worker (worker/decode_engine.h) behind the DecodeWorker gRPC
// service, with grpc.health.v1, reflection and Prometheus metrics. SIGTERM/SIGINT drain:
// health turns NOT_SERVING, calls in flight get --drain_timeout, queued offloads finish.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/server_builder.h>
#include <prometheus/exposer.h>
#include <signal.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "cache_store/log.h"
#include "client/connect_store.h"
#include "client/sharded_client.h"
#include "client/shared_memory_region.h"
#include "kernels/dispatch.h"
#include "proto/pem_file.h"
#include "services/decode_worker_service.h"
#include "services/server_credentials.h"
#include "services/shutdown_signals.h"
#include "services/worker_metrics.h"
#include "worker/llama_config.h"

ABSL_FLAG(std::string, listen, "0.0.0.0:50061", "gRPC address to serve on (HOST:PORT).");
ABSL_FLAG(std::string, metrics_listen, "0.0.0.0:9092",
          "Prometheus /metrics address (HOST:PORT); empty: no metrics endpoint.");
ABSL_FLAG(std::string, store, "127.0.0.1:50051",
          "kvtier-store to restore from and offload to: HOST:PORT or unix:///PATH for one "
          "store; HOST:PORT,HOST:PORT or dns:///NAME:PORT (a headless Service) for a cluster "
          "of shards; empty: none (local pages only).");
ABSL_FLAG(uint32_t, store_replication, 1,
          "In a cluster of store shards: copies of each block (R). A block stays cached while "
          "one of its R shards is up.");
ABSL_FLAG(std::string, store_shm_dir, "",
          "In a cluster of store shards: the directory of the attach sockets of the stores on "
          "this node (<shard_id>.sock), for same-node delivery from those shards.");
ABSL_FLAG(std::string, tenant, "default", "Tenant sent to the store (x-kvtier-tenant).");
ABSL_FLAG(std::string, auth_token, "", "Bearer token for a store with --auth_token_file.");
ABSL_FLAG(std::string, auth_token_file, "",
          "File whose first line is the bearer token (instead of --auth_token, which other "
          "users of the node can read in the process list).");
ABSL_FLAG(std::string, store_tls_cert_file, "",
          "PEM client certificate for a store that requires one (--tls_client_ca_file there; "
          "implies --store_tls); with --store_tls_key_file.");
ABSL_FLAG(std::string, store_tls_key_file, "", "PEM private key of --store_tls_cert_file.");
ABSL_FLAG(std::string, cache_salt, "", "Extra namespace of every block key (e.g. an adapter).");
ABSL_FLAG(std::string, store_tls_ca_file, "",
          "PEM CA bundle to reach the store over TLS; empty: plaintext (see --store_tls).");
ABSL_FLAG(bool, store_tls, false, "Reach the store over TLS (system roots unless a CA file).");
ABSL_FLAG(std::string, tls_cert_file, "",
          "PEM certificate to serve gRPC over TLS; with --tls_key_file. Empty: plaintext.");
ABSL_FLAG(std::string, tls_key_file, "", "PEM private key of --tls_cert_file.");
ABSL_FLAG(absl::Duration, store_timeout, absl::Seconds(2),
          "Deadline of each store call; past it the worker recomputes.");
ABSL_FLAG(std::string, model, "tiny", "Model dimensions: tiny or llama-3-8b.");
ABSL_FLAG(std::string, kv_dtype, "auto",
          "How K/V are kept in the pages and in the store: auto (the model's, bf16), bf16, fp16, "
          "fp32, or compressed: fp8_e4m3 or int8 (half of bf16's bytes; per-layer, per-head "
          "scales calibrated at start and carried in every block).");
ABSL_FLAG(std::string, weights, "",
          "Safetensors file with Hugging Face Llama tensor names; empty: seeded weights.");
ABSL_FLAG(uint64_t, seed, 1, "Seed of the random weights (without --weights).");
ABSL_FLAG(uint32_t, pages, 1024, "KV pages (blocks) in the worker's pool: its hard capacity.");
ABSL_FLAG(std::string, backend, "auto",
          "Where the decoder and its pages live: cpu (host pages, the reference decoder), cuda "
          "(device pages, the CUDA decoder) or auto (cuda when a GPU is present).");
ABSL_FLAG(int32_t, threads, 0, "CPU threads of the kernels (0: all cores).");
ABSL_FLAG(std::string, store_shm_socket, "",
          "Same-node data plane: the store's --shm_socket as seen from this worker (e.g. "
          "/run/kvtier/shm.sock). Restores and offloads then move through shared memory the "
          "store copies into and out of directly. Empty: over the socket only.");
ABSL_FLAG(int32_t, max_threads, 16, "gRPC server threads.");
ABSL_FLAG(absl::Duration, drain_timeout, absl::Seconds(20), "Grace period on SIGTERM.");

namespace kvtier {
namespace {

int Run() {
  // Block the shutdown signals in every thread; the main thread waits for them below.
  const sigset_t signals = BlockShutdownSignals();

  worker::LlamaConfig config;
  const std::string model = absl::GetFlag(FLAGS_model);
  if (model == "tiny") {
    config = worker::TinyLlamaConfig();
  } else if (model == "llama-3-8b") {
    config = worker::Llama3_8BConfig();
  } else {
    KVTIER_LOG(ERROR) << "unknown --model '" << model << "' (tiny or llama-3-8b)";
    return 2;
  }
  if (const std::string kv = absl::GetFlag(FLAGS_kv_dtype); kv != "auto") {
    bool known = false;
    for (DType t : {DType::kFp32, DType::kFp16, DType::kBf16, DType::kFp8E4M3, DType::kInt8}) {
      if (kv == DTypeName(t)) {
        config.kv_dtype = t;
        known = true;
      }
    }
    if (!known) {
      KVTIER_LOG(ERROR) << "unknown --kv_dtype '" << kv
                        << "' (auto, bf16, fp16, fp32, fp8_e4m3 or int8)";
      return 2;
    }
  }
  absl::StatusOr<worker::LlamaWeights> weights =
      absl::GetFlag(FLAGS_weights).empty()
          ? worker::LlamaWeights::FromSeed(config, absl::GetFlag(FLAGS_seed))
          : worker::LlamaWeights::FromSafetensors(config, absl::GetFlag(FLAGS_weights));
  if (!weights.ok()) {
    KVTIER_LOG(ERROR) << "cannot load the model: " << weights.status().message();
    return 2;
  }
  std::shared_ptr<StoreClient> store;
  if (const std::string target = absl::GetFlag(FLAGS_store); !target.empty()) {
    ClientOptions o;
    o.target = target;
    o.tenant = absl::GetFlag(FLAGS_tenant);
    o.auth_token = absl::GetFlag(FLAGS_auth_token);
    if (const std::string path = absl::GetFlag(FLAGS_auth_token_file); !path.empty()) {
      std::ifstream in(path);
      std::string token;
      if (!in || !std::getline(in, token) || absl::StripAsciiWhitespace(token).empty()) {
        KVTIER_LOG(ERROR) << "cannot read a token from --auth_token_file=" << path;
        return 2;
      }
      o.auth_token = std::string(absl::StripAsciiWhitespace(token));
    }
    o.timeout = absl::GetFlag(FLAGS_store_timeout);
    o.shm_socket = absl::GetFlag(FLAGS_store_shm_socket);
    const std::string ca = absl::GetFlag(FLAGS_store_tls_ca_file);
    const std::string cert = absl::GetFlag(FLAGS_store_tls_cert_file);
    const std::string key = absl::GetFlag(FLAGS_store_tls_key_file);
    if (cert.empty() != key.empty()) {
      KVTIER_LOG(ERROR) << "--store_tls_cert_file and --store_tls_key_file go together";
      return 2;
    }
    if (!cert.empty()) {
      absl::StatusOr<std::string> chain = ReadPemFile(cert);
      absl::StatusOr<std::string> private_key = ReadPemFile(key);
      if (!chain.ok() || !private_key.ok()) {
        KVTIER_LOG(ERROR) << (chain.ok() ? private_key.status() : chain.status()).message();
        return 2;
      }
      o.tls_cert_chain = *chain;
      o.tls_private_key = *private_key;
    }
    if (absl::GetFlag(FLAGS_store_tls) || !ca.empty() || !cert.empty()) {
      o.tls = true;
      if (!ca.empty()) {
        absl::StatusOr<std::string> pem = ReadPemFile(ca);
        if (!pem.ok()) {
          KVTIER_LOG(ERROR) << pem.status().message();
          return 2;
        }
        o.tls_root_certs = *pem;
      }
    }
    absl::StatusOr<std::shared_ptr<StoreClient>> connected =
        ConnectStore(o, {.replication = absl::GetFlag(FLAGS_store_replication),
                         .shm_socket_dir = absl::GetFlag(FLAGS_store_shm_dir)});
    if (!connected.ok()) {
      KVTIER_LOG(ERROR) << "--store: " << connected.status().message();
      return 2;
    }
    store = *std::move(connected);
  }
  worker::DecodeEngineOptions options;
  options.pages = absl::GetFlag(FLAGS_pages);
  options.tenant = absl::GetFlag(FLAGS_tenant);
  options.salt = absl::GetFlag(FLAGS_cache_salt);
  if (absl::Status s = kernels::ContextFromName(absl::GetFlag(FLAGS_backend), &options.kernels);
      !s.ok()) {
    KVTIER_LOG(ERROR) << "--backend: " << s.message();
    return 2;
  }
  options.kernels.cpu.threads = absl::GetFlag(FLAGS_threads);
  options.same_node =
      !absl::GetFlag(FLAGS_store_shm_socket).empty() || !absl::GetFlag(FLAGS_store_shm_dir).empty();
  absl::StatusOr<std::unique_ptr<worker::DecodeEngine>> engine = worker::DecodeEngine::Create(
      std::make_shared<const worker::LlamaWeights>(*std::move(weights)), store, options);
  if (!engine.ok()) {
    KVTIER_LOG(ERROR) << "cannot start the worker: " << engine.status().message();
    return 2;
  }
  KVTIER_LOG(INFO) << "model " << config.model_id << " (" << config.ParameterCount()
                   << " parameters), " << options.pages << " pages of "
                   << config.Layout().BlockBytes() << " bytes, store "
                   << (store ? absl::GetFlag(FLAGS_store) : std::string("none"))
                   << ", kernels: " << kernels::BackendName(options.kernels.backend);

  // The exposer holds collectables weakly: this one lives as long as the process.
  const std::shared_ptr<prometheus::Collectable> metrics = MakeWorkerMetrics(engine->get(), dynamic_cast<const ShardedClient*>(store.get()));
  std::unique_ptr<prometheus::Exposer> exposer;
  if (const std::string addr = absl::GetFlag(FLAGS_metrics_listen); !addr.empty()) {
    try {  // prometheus-cpp reports a busy port by throwing
      exposer = std::make_unique<prometheus::Exposer>(addr, 2);
    } catch (const std::exception& e) {
      KVTIER_LOG(ERROR) << "cannot serve metrics on " << addr << ": " << e.what();
      return 2;
    }
    exposer->RegisterCollectable(metrics);
    KVTIER_LOG(INFO) << "metrics on http://" << addr << "/metrics (port "
                     << exposer->GetListeningPorts().front() << ")";
  }

  DecodeWorkerService service(engine->get(), "cpu");
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  const std::string listen = absl::GetFlag(FLAGS_listen);
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials = ServerCredentialsFromFiles(
      absl::GetFlag(FLAGS_tls_cert_file), absl::GetFlag(FLAGS_tls_key_file));
  if (!credentials.ok()) {
    KVTIER_LOG(ERROR) << credentials.status().message();
    return 2;
  }
  builder.AddListeningPort(listen, *credentials, &port);
  builder.RegisterService(&service);
  grpc::ResourceQuota quota("kvtier-worker");
  quota.SetMaxThreads(absl::GetFlag(FLAGS_max_threads));
  builder.SetResourceQuota(quota);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    KVTIER_LOG(ERROR) << "cannot listen on " << listen;
    return 2;
  }
  server->GetHealthCheckService()->SetServingStatus(true);
  KVTIER_LOG(INFO) << "kvtier-worker serving on " << listen << " (port " << port << ")";

  const int sig = AwaitShutdownSignal(signals);
  const absl::Duration drain = absl::GetFlag(FLAGS_drain_timeout);
  KVTIER_LOG(INFO) << "signal " << sig << ": draining for up to " << drain;
  server->GetHealthCheckService()->SetServingStatus(false);
  server->Shutdown(std::chrono::system_clock::now() + absl::ToChronoSeconds(drain));
  server->Wait();
  (*engine)->FlushOffloads();  // shared-memory regions need no cleanup: memfds go with us
  KVTIER_LOG(INFO) << "kvtier-worker stopped";
  std::_Exit(0);  // as kvtier-store: skip civetweb's slow teardown
}

}  // namespace
}  // namespace kvtier

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("kvtier-worker: decode worker with a KV page pool (README)");
  absl::ParseCommandLine(argc, argv);
  return kvtier::Run();
}
