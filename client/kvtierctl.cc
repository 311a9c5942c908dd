// kvtierctl: command-line client of kvtier-store.
//
//   kvtierctl [--target=HOST:PORT] [--tenant=T | --token=TOK] COMMAND [flags]
//
// --target may name a cluster of shards (HOST:PORT,HOST:PORT or dns:///NAME:PORT, with
// --replication): lookup, put and get then work across the shards as a worker does, stats
// and health report every shard, and watch needs one shard's address.
//
//   stats                         store statistics as JSON
//   health                        exit 0 when the store (every shard) reports SERVING
//   lookup  --tokens=...          longest cached prefix (JSON); --lease to keep a lease
//   put     --tokens=... --in=F   store the blocks in file F (whole blocks, concatenated),
//                                 starting at --first_block
//   get     --tokens=... --out=F  look up the prompt and write its cached blocks to F
//   get     --keys=HEX,... --out=F
//   watch   [--duration=30s] [--max_events=N]   block events as JSON lines
//
// The layout flags (--model, --layers, --kv_heads, --head_dim, --dtype, --tokens_per_block)
// describe the blocks; tokens come from --tokens=1,2,3 or --tokens_file (whitespace or
// comma separated).
#include <google/protobuf/util/json_util.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/cache_store_client.h"
#include "client/shard_endpoints.h"
#include "client/sharded_client.h"
#include "proto/pem_file.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051",
          "Store address, HOST:PORT; or a cluster of shards: HOST:PORT,HOST:PORT or "
          "dns:///NAME:PORT.");
ABSL_FLAG(uint32_t, replication, 1, "Cluster: copies of each block put (R).");
ABSL_FLAG(std::string, tenant, "", "Tenant (x-kvtier-tenant) for stores without auth.");
ABSL_FLAG(std::string, token, "", "Bearer token for stores with an auth token file.");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(10), "Deadline of each call.");
ABSL_FLAG(bool, tls, false, "Connect over TLS.");
ABSL_FLAG(std::string, tls_ca_file, "",
          "PEM CA bundle that verifies the server (implies --tls); empty: system roots.");
ABSL_FLAG(std::string, tls_cert_file, "",
          "PEM client certificate for a store that requires one (mutual TLS; implies --tls); "
          "with --tls_key_file. The store takes the tenant from it.");
ABSL_FLAG(std::string, tls_key_file, "", "PEM private key of --tls_cert_file.");
ABSL_FLAG(std::string, model, "llama-3-8b", "Layout: model id.");
ABSL_FLAG(uint32_t, layers, 32, "Layout: number of layers.");
ABSL_FLAG(uint32_t, kv_heads, 8, "Layout: number of KV heads.");
ABSL_FLAG(uint32_t, head_dim, 128, "Layout: head dimension.");
ABSL_FLAG(uint32_t, kv_lora_rank, 0,
          "Layout: an MLA layout's latent width (DeepSeek-V3: 512); non-zero makes the layout "
          "MLA, and --kv_heads/--head_dim are then ignored.");
ABSL_FLAG(uint32_t, rope_dim, 64, "Layout: an MLA layout's rotary key width.");
ABSL_FLAG(std::string, dtype, "bf16", "Layout: fp32 | fp16 | bf16 | fp8_e4m3 | int8.");
ABSL_FLAG(uint32_t, tokens_per_block, 16, "Layout: tokens per block.");
ABSL_FLAG(std::string, salt, "", "Cache salt (extra key namespace).");
ABSL_FLAG(std::string, tokens, "", "Prompt token ids, comma separated.");
ABSL_FLAG(std::string, tokens_file, "", "File of prompt token ids.");
ABSL_FLAG(std::string, keys, "", "Block keys in hex, comma separated (get).");
ABSL_FLAG(bool, lease, false, "lookup: keep the lease (print its id) instead of none.");
ABSL_FLAG(uint32_t, first_block, 0, "put: index of the first block in the file.");
ABSL_FLAG(std::string, in, "", "put: file of block payloads.");
ABSL_FLAG(std::string, out, "", "get: file to write the block payloads to.");
ABSL_FLAG(std::string, order, "block", "get: block | layer (fetch order).");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(30), "watch: how long to watch.");
ABSL_FLAG(uint64_t, max_events, 0, "watch: stop after this many events (0: no limit).");

namespace kvtier {
namespace {

int Fail(const absl::Status& s) {
  std::cerr << "kvtierctl: " << s << "\n";
  return 1;
}

absl::StatusOr<KvLayout> LayoutFromFlags() {
  const std::string d = absl::GetFlag(FLAGS_dtype);
  KvLayout layout{.model_id = absl::GetFlag(FLAGS_model),
                  .num_layers = absl::GetFlag(FLAGS_layers),
                  .num_kv_heads = absl::GetFlag(FLAGS_kv_heads),
                  .head_dim = absl::GetFlag(FLAGS_head_dim),
                  .tokens_per_block = absl::GetFlag(FLAGS_tokens_per_block)};
  if (const uint32_t rank = absl::GetFlag(FLAGS_kv_lora_rank); rank != 0) {
    layout.kind = LayoutKind::kMla;
    layout.num_kv_heads = layout.head_dim = 0;
    layout.kv_lora_rank = rank;
    layout.rope_dim = absl::GetFlag(FLAGS_rope_dim);
  }
  bool known = false;
  for (DType t : {DType::kFp32, DType::kFp16, DType::kBf16, DType::kFp8E4M3, DType::kInt8}) {
    if (d == DTypeName(t)) {
      layout.dtype = t;
      known = true;
    }
  }
  if (!known) return absl::InvalidArgumentError(absl::StrCat("unknown --dtype=", d));
  if (absl::Status s = layout.Validate(); !s.ok()) return s;
  return layout;
}

absl::StatusOr<std::vector<uint32_t>> TokensFromFlags() {
  std::string text = absl::GetFlag(FLAGS_tokens);
  if (const std::string path = absl::GetFlag(FLAGS_tokens_file); !path.empty()) {
    std::ifstream in(path);
    if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::vector<uint32_t> tokens;
  for (absl::string_view part :
       absl::StrSplit(text, absl::ByAnyChar(", \t\n"), absl::SkipEmpty())) {
    uint32_t t;
    if (!absl::SimpleAtoi(part, &t)) {
      return absl::InvalidArgumentError(absl::StrCat("bad token id \"", part, "\""));
    }
    tokens.push_back(t);
  }
  if (tokens.empty()) return absl::InvalidArgumentError("give --tokens or --tokens_file");
  return tokens;
}

std::string ToJson(const google::protobuf::Message& m) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  (void)google::protobuf::util::MessageToJsonString(m, &json, options);
  return json;
}

int Lookup(StoreClient& client) {
  absl::StatusOr<KvLayout> layout = LayoutFromFlags();
  if (!layout.ok()) return Fail(layout.status());
  absl::StatusOr<std::vector<uint32_t>> tokens = TokensFromFlags();
  if (!tokens.ok()) return Fail(tokens.status());
  absl::StatusOr<LookupReply> r = client.Lookup(
      *layout, *tokens, {.salt = absl::GetFlag(FLAGS_salt), .lease = absl::GetFlag(FLAGS_lease)});
  if (!r.ok()) return Fail(r.status());
  std::vector<std::string> keys;
  for (const BlockKey& k : r->keys) keys.push_back(absl::StrCat("\"", k.ToHex(), "\""));
  std::cout << "{\"matched_blocks\": " << r->matched_blocks
            << ", \"total_blocks\": " << r->total_blocks
            << ", \"matched_tokens\": " << uint64_t{r->matched_blocks} * layout->tokens_per_block
            << ", \"block_bytes\": " << r->block_bytes << ", \"lease_id\": " << r->lease_id
            << ", \"keys\": [" << absl::StrJoin(keys, ", ") << "]}\n";
  return 0;
}

int Put(StoreClient& client) {
  absl::StatusOr<KvLayout> layout = LayoutFromFlags();
  if (!layout.ok()) return Fail(layout.status());
  absl::StatusOr<std::vector<uint32_t>> tokens = TokensFromFlags();
  if (!tokens.ok()) return Fail(tokens.status());
  std::ifstream in(absl::GetFlag(FLAGS_in), std::ios::binary);
  if (!in)
    return Fail(absl::NotFoundError(absl::StrCat("cannot read --in=", absl::GetFlag(FLAGS_in))));
  std::vector<uint8_t> payload((std::istreambuf_iterator<char>(in)), {});
  absl::StatusOr<PutReply> r = client.Put(*layout, *tokens, absl::GetFlag(FLAGS_first_block),
                                          payload, absl::GetFlag(FLAGS_salt));
  if (!r.ok()) return Fail(r.status());
  std::cout << "{\"stored_blocks\": " << r->stored_blocks
            << ", \"existing_blocks\": " << r->existing_blocks << ", \"bytes\": " << payload.size()
            << "}\n";
  return 0;
}

int Get(StoreClient& client) {
  absl::StatusOr<KvLayout> layout = LayoutFromFlags();
  if (!layout.ok()) return Fail(layout.status());
  FetchTarget target;
  size_t blocks = 0;
  if (const std::string hex = absl::GetFlag(FLAGS_keys); !hex.empty()) {
    for (absl::string_view h : absl::StrSplit(hex, ',', absl::SkipEmpty())) {
      absl::StatusOr<BlockKey> k = BlockKey::FromBytes(absl::HexStringToBytes(h));
      if (!k.ok()) return Fail(absl::InvalidArgumentError(absl::StrCat("bad key ", h)));
      target.keys.push_back(*k);
    }
    blocks = target.keys.size();
  } else {
    absl::StatusOr<std::vector<uint32_t>> tokens = TokensFromFlags();
    if (!tokens.ok()) return Fail(tokens.status());
    absl::StatusOr<LookupReply> r =
        client.Lookup(*layout, *tokens, {.salt = absl::GetFlag(FLAGS_salt)});
    if (!r.ok()) return Fail(r.status());
    if (r->matched_blocks == 0) return Fail(absl::NotFoundError("no cached prefix"));
    target.lease_id = r->lease_id;
    blocks = r->matched_blocks;
  }
  const uint64_t block_bytes = layout->BlockBytes();
  std::vector<uint8_t> buffer(blocks * block_bytes);
  std::vector<std::span<uint8_t>> out;
  for (size_t b = 0; b < blocks; ++b) {
    out.push_back(std::span(buffer).subspan(b * block_bytes, block_bytes));
  }
  FetchParams params;
  params.order = absl::GetFlag(FLAGS_order) == "layer" ? v1::FETCH_ORDER_LAYER_MAJOR
                                                       : v1::FETCH_ORDER_BLOCK_MAJOR;
  absl::StatusOr<FetchReply> f = client.Fetch(target, out, params);
  if (target.lease_id != 0) (void)client.Release(target.lease_id);
  if (!f.ok()) return Fail(f.status());
  std::ofstream file(absl::GetFlag(FLAGS_out), std::ios::binary);
  file.write(reinterpret_cast<const char*>(buffer.data()), buffer.size());
  if (!file) return Fail(absl::InternalError("cannot write --out"));
  std::cout << "{\"blocks\": " << blocks << ", \"bytes\": " << f->bytes << "}\n";
  return 0;
}

int Watch(CacheStoreClient& client) {
  const uint64_t max_events = absl::GetFlag(FLAGS_max_events);
  uint64_t seen = 0;
  absl::Status s = client.WatchEvents(
      [&](const v1::WatchEventsResponse& m) {
        if (m.lost_events() > 0) std::cout << "{\"lost_events\": " << m.lost_events() << "}\n";
        for (const v1::BlockEvent& e : m.events()) {
          std::cout << "{\"seq\": " << e.seq() << ", \"type\": \""
                    << v1::BlockEvent::Type_Name(e.type()) << "\", \"reason\": \""
                    << v1::BlockEvent::Reason_Name(e.reason()) << "\", \"key\": \""
                    << absl::BytesToHexString(e.key()) << "\", \"tier\": \""
                    << v1::Tier_Name(e.tier()) << "\"}\n";
          if (max_events > 0 && ++seen >= max_events) return false;
        }
        std::cout.flush();
        return true;
      },
      absl::GetFlag(FLAGS_duration));
  return s.ok() ? 0 : Fail(s);
}

int Main(const std::vector<char*>& args) {
  if (args.size() != 2) {
    std::cerr << absl::ProgramUsageMessage() << "\n";
    return 2;
  }
  const std::string command = args[1];
  ClientOptions options{.target = absl::GetFlag(FLAGS_target),
                        .timeout = absl::GetFlag(FLAGS_timeout),
                        .tenant = absl::GetFlag(FLAGS_tenant),
                        .auth_token = absl::GetFlag(FLAGS_token)};
  const std::string cert = absl::GetFlag(FLAGS_tls_cert_file);
  const std::string key = absl::GetFlag(FLAGS_tls_key_file);
  if (cert.empty() != key.empty()) {
    return Fail(absl::InvalidArgumentError("--tls_cert_file and --tls_key_file go together"));
  }
  if (const std::string ca = absl::GetFlag(FLAGS_tls_ca_file);
      absl::GetFlag(FLAGS_tls) || !ca.empty() || !cert.empty()) {
    options.tls = true;
    if (!ca.empty()) {
      absl::StatusOr<std::string> pem = ReadPemFile(ca);
      if (!pem.ok()) return Fail(pem.status());
      options.tls_root_certs = *pem;
    }
    if (!cert.empty()) {
      absl::StatusOr<std::string> chain = ReadPemFile(cert);
      if (!chain.ok()) return Fail(chain.status());
      absl::StatusOr<std::string> private_key = ReadPemFile(key);
      if (!private_key.ok()) return Fail(private_key.status());
      options.tls_cert_chain = *chain;
      options.tls_private_key = *private_key;
    }
  }
  if (ShardEndpoints::IsCluster(options.target)) {
    absl::StatusOr<std::unique_ptr<ShardedClient>> cluster = ShardedClient::Create(
        {.targets = options.target, .shard = options, .replication = absl::GetFlag(FLAGS_replication)});
    if (!cluster.ok()) return Fail(cluster.status());
    if (command == "stats" || command == "health") {
      bool all_serving = true;
      std::string out = "{\"shards\": [";
      const std::vector<ShardStatus> shards = (*cluster)->Shards();
      for (size_t i = 0; i < shards.size(); ++i) {
        const ShardStatus& st = shards[i];
        std::string body;
        bool serving = false;
        if (!st.id.empty()) {
          for (const auto& [id, client] : (*cluster)->ShardClients()) {
            if (id != st.id) continue;
            if (command == "stats") {
              absl::StatusOr<v1::StatsResponse> s = client->Stats();
              serving = s.ok();
              body = s.ok() ? ToJson(*s) : absl::StrCat("\"", s.status().ToString(), "\"");
            } else {
              absl::StatusOr<bool> ok = client->Healthy();
              serving = ok.ok() && *ok;
              body = ok.ok() ? (*ok ? "\"SERVING\"" : "\"NOT_SERVING\"")
                             : absl::StrCat("\"", ok.status().ToString(), "\"");
            }
          }
        } else {
          body = "\"never answered\"";
        }
        all_serving = all_serving && serving;
        absl::StrAppend(&out, i ? ", " : "", "{\"target\": \"", st.target, "\", \"id\": \"",
                        st.id, "\", \"", command, "\": ", body, "}");
      }
      std::cout << out << "]}\n";
      return all_serving && !shards.empty() ? 0 : 1;
    }
    if (command == "lookup") return Lookup(**cluster);
    if (command == "put") return Put(**cluster);
    if (command == "get") return Get(**cluster);
    if (command == "watch") {
      std::cerr << "kvtierctl: watch follows one store: pass one shard's HOST:PORT\n";
      return 2;
    }
    std::cerr << "kvtierctl: unknown command \"" << command << "\"\n"
              << absl::ProgramUsageMessage() << "\n";
    return 2;
  }
  CacheStoreClient client(options);
  if (command == "stats") {
    absl::StatusOr<v1::StatsResponse> s = client.Stats();
    if (!s.ok()) return Fail(s.status());
    std::cout << ToJson(*s);
    return 0;
  }
  if (command == "health") {
    absl::StatusOr<bool> ok = client.Healthy();
    if (!ok.ok()) return Fail(ok.status());
    std::cout << (*ok ? "SERVING" : "NOT_SERVING") << "\n";
    return *ok ? 0 : 1;
  }
  if (command == "lookup") return Lookup(client);
  if (command == "put") return Put(client);
  if (command == "get") return Get(client);
  if (command == "watch") return Watch(client);
  std::cerr << "kvtierctl: unknown command \"" << command << "\"\n"
            << absl::ProgramUsageMessage() << "\n";
  return 2;
}

}  // namespace
}  // namespace kvtier

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "kvtierctl [--target=HOST:PORT] COMMAND  (stats | health | lookup | put | get | watch)");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  return kvtier::Main(args);
}
