#include "client/cache_store_client.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <algorithm>
#include <cstring>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cache_store/checksum.h"
#include "client/fetch_receiver.h"
#include "client/raw_stream_call.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "proto/payload_wire.h"
#include "proto/wire_convert.h"

namespace kvtier {

namespace {

const std::string kPutMethod = "/" + std::string(v1::CacheStore::service_full_name()) + "/Put";
const std::string kFetchMethod = "/" + std::string(v1::CacheStore::service_full_name()) + "/Fetch";

}  // namespace

std::shared_ptr<grpc::Channel> MakeStoreChannel(const ClientOptions& options) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options.max_message_bytes);
  args.SetMaxSendMessageSize(options.max_message_bytes);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  if (options.own_connection) args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // A store that restarts is used again within seconds, not after gRPC's default backoff
  // of up to two minutes: a cache shard that is back is worth its hits.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  if (options.tls) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.tls_root_certs;
    ssl.pem_cert_chain = options.tls_cert_chain;
    ssl.pem_private_key = options.tls_private_key;
    return grpc::CreateCustomChannel(options.target, grpc::SslCredentials(ssl), args);
  }
  return grpc::CreateCustomChannel(options.target, grpc::InsecureChannelCredentials(), args);
}

CacheStoreClient::CacheStoreClient(const ClientOptions& options)
    : CacheStoreClient(MakeStoreChannel(options), options) {}

CacheStoreClient::CacheStoreClient(std::shared_ptr<grpc::Channel> channel, ClientOptions options)
    : options_(std::move(options)),
      channel_(std::move(channel)),
      stub_(v1::CacheStore::NewStub(channel_)),
      generic_(channel_) {}

void CacheStoreClient::PrepareContext(grpc::ClientContext& ctx, absl::Time deadline) const {
  ctx.set_deadline(absl::ToChronoTime(deadline));
  if (!options_.tenant.empty()) ctx.AddMetadata("x-kvtier-tenant", options_.tenant);
  if (!options_.auth_token.empty()) {
    ctx.AddMetadata("authorization", "Bearer " + options_.auth_token);
  }
}

absl::Status CacheStoreClient::WithRetries(
    const std::function<grpc::Status(grpc::ClientContext&)>& attempt, absl::Time deadline) {
  absl::BitGen bitgen;
  absl::Duration backoff = options_.initial_backoff;
  grpc::Status status;
  for (int i = 1;; ++i) {
    grpc::ClientContext ctx;
    PrepareContext(ctx, deadline);
    status = attempt(ctx);
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE || i >= options_.max_attempts) {
      break;
    }
    // Full jitter: sleep uniformly in [backoff/2, backoff].
    const absl::Duration sleep =
        backoff / 2 + absl::Nanoseconds(absl::Uniform<int64_t>(
                          bitgen, 0, absl::ToInt64Nanoseconds(backoff / 2) + 1));
    if (absl::Now() + sleep >= deadline) break;
    absl::SleepFor(sleep);
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
  return FromGrpcStatus(status);
}

absl::StatusOr<LookupReply> CacheStoreClient::Lookup(const KvLayout& layout,
                                                     std::span<const uint32_t> tokens,
                                                     const LookupParams& params) {
  v1::LookupRequest request;
  *request.mutable_layout() = LayoutToProto(layout);
  request.mutable_token_ids()->Add(tokens.begin(), tokens.end());
  request.set_cache_salt(params.salt);
  request.set_no_lease(!params.lease);
  request.set_lease_ttl_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(params.lease_ttl)));
  request.set_packed_keys(true);
  request.set_report_present(params.report_present);
  v1::LookupResponse response;
  absl::Status s =
      WithRetries([&](grpc::ClientContext& ctx) { return stub_->Lookup(&ctx, request, &response); },
                  DeadlineFromNow());
  if (!s.ok()) return s;
  LookupReply reply;
  reply.matched_blocks = response.matched_blocks();
  reply.total_blocks = response.total_blocks();
  const std::string& packed = response.packed_block_keys();
  if (packed.size() % BlockKey::kSize != 0 || (!packed.empty() && response.block_keys_size() > 0)) {
    return absl::InternalError("the store sent malformed packed block keys");
  }
  if (!packed.empty()) {
    reply.keys.resize(packed.size() / BlockKey::kSize);
    for (size_t i = 0; i < reply.keys.size(); ++i) {
      std::memcpy(reply.keys[i].bytes.data(), packed.data() + i * BlockKey::kSize, BlockKey::kSize);
    }
  } else {
    absl::StatusOr<std::vector<BlockKey>> keys = KeysFromProto(response.block_keys());
    if (!keys.ok()) return keys.status();
    reply.keys = *std::move(keys);
  }
  const size_t described =
      params.report_present ? response.present_blocks_size() : response.matched_blocks();
  if (reply.keys.size() != described || response.tiers_size() != static_cast<int>(described)) {
    return absl::InternalError("the store's Lookup lists another number of keys than it matched");
  }
  reply.present_blocks.assign(response.present_blocks().begin(), response.present_blocks().end());
  for (int t : response.tiers()) reply.tiers.push_back(static_cast<v1::Tier>(t));
  reply.lease_id = response.lease_id();
  reply.lease_ttl = absl::Milliseconds(response.lease_ttl_ms());
  reply.block_bytes = response.block_bytes();
  return reply;
}

bool IsSameNodeRefusal(const absl::Status& status) {
  return absl::IsFailedPrecondition(status) || absl::IsNotFound(status);
}

absl::StatusOr<std::string> CacheStoreClient::RegionId(const SharedMemoryRegion& region) const {
  if (options_.shm_socket.empty()) {
    return absl::FailedPreconditionError(
        "no same-node socket is configured (ClientOptions::shm_socket)");
  }
  absl::StatusOr<std::string> id =
      region.AttachTo(options_.shm_socket, options_.tenant, options_.auth_token,
                      std::min(options_.timeout, absl::Seconds(5)));
  if (absl::IsUnavailable(id.status()) || absl::IsDeadlineExceeded(id.status())) {
    // No store answers on that socket (not on this node, say): same-node is not available.
    return absl::FailedPreconditionError(
        absl::StrCat("same-node data plane unavailable: ", id.status().message()));
  }
  return id;
}

absl::StatusOr<v1::SharedMemoryBlocks> CacheStoreClient::ShmBlocks(
    const SharedMemoryRegion& region, std::span<const std::span<const uint8_t>> blocks) const {
  v1::SharedMemoryBlocks shm;
  for (size_t b = 0; b < blocks.size(); ++b) {
    const int64_t offset = region.OffsetOf(blocks[b]);
    if (offset < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("block ", b, " of a same-node call is not inside the region"));
    }
    shm.add_offsets(static_cast<uint64_t>(offset));
  }
  absl::StatusOr<std::string> id = RegionId(region);
  if (!id.ok()) return id.status();
  shm.set_region_id(*id);
  return shm;
}

absl::StatusOr<PutReply> CacheStoreClient::PutBlocks(
    const KvLayout& layout, std::span<const uint32_t> tokens, uint32_t first_block,
    std::span<const std::span<const uint8_t>> blocks, const PutParams& params) {
  if (absl::Status s = layout.Validate(); !s.ok()) return s;
  const uint64_t block_bytes = layout.BlockBytes();
  if (blocks.empty()) return absl::InvalidArgumentError("a Put carries at least one block");
  for (size_t b = 0; b < blocks.size(); ++b) {
    if (blocks[b].size() != block_bytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "block ", b, " of the Put has ", blocks[b].size(), " bytes, not ", block_bytes));
    }
  }
  v1::PutRequest header;
  v1::PutHeader* h = header.mutable_header();
  *h->mutable_layout() = LayoutToProto(layout);
  h->mutable_token_ids()->Add(tokens.begin(), tokens.end());
  h->set_cache_salt(params.salt);
  h->set_last_block_partial(params.last_block_partial);
  h->set_output_tokens(params.output_tokens);
  h->set_first_block(first_block);
  h->set_num_blocks(static_cast<uint32_t>(blocks.size()));
  if (!params.block_indices.empty()) {
    if (params.block_indices.size() != blocks.size()) {
      return absl::InvalidArgumentError(absl::StrCat("the Put names ", params.block_indices.size(),
                                                     " block indices for ", blocks.size(),
                                                     " blocks"));
    }
    h->mutable_block_indices()->Add(params.block_indices.begin(), params.block_indices.end());
  }
  if (params.shm != nullptr) {
    // The store reads the blocks where they are and hashes them as they land in T1; there
    // is no transit to check.
    absl::StatusOr<v1::SharedMemoryBlocks> shm = ShmBlocks(*params.shm, blocks);
    if (!shm.ok()) return shm.status();
    *h->mutable_shm() = *std::move(shm);
  } else {
    // One pass over the payload: the store checks every layer against these.
    h->mutable_layer_checksums()->Resize(static_cast<int>(blocks.size() * layout.num_layers), 0);
    uint64_t* sums = h->mutable_layer_checksums()->mutable_data();
    for (size_t b = 0; b < blocks.size(); ++b) {
      ComputeLayerChecksums(blocks[b].data(), layout.LayerBytes(),
                            std::span(sums + b * layout.num_layers, layout.num_layers));
    }
  }
  const grpc::ByteBuffer header_message = EncodeMessage(header);
  v1::PutResponse response;
  absl::Status s = WithRetries(
      [&](grpc::ClientContext& ctx) -> grpc::Status {
        RawStreamCall call(generic_, ctx, kPutMethod);
        bool ok = call.Write(header_message);
        // The payload is the blocks concatenated; each message references block memory.
        for (size_t b = 0; ok && params.shm == nullptr && b < blocks.size(); ++b) {
          for (uint64_t off = 0; ok && off < block_bytes; off += options_.put_chunk_bytes) {
            const uint64_t n = std::min<uint64_t>(options_.put_chunk_bytes, block_bytes - off);
            ok = call.Write(EncodePutData(blocks[b].subspan(off, n)));
          }
        }
        grpc::ByteBuffer reply;
        ok = ok && call.WritesDone() && call.Read(&reply);
        // A failed operation means the server already ended the call; Finish says why.
        grpc::Status status = call.Finish();
        if (!status.ok()) return status;
        if (!ok) return grpc::Status(grpc::StatusCode::INTERNAL, "the store sent no PutResponse");
        return ToGrpcStatus(DecodeMessage(reply, &response));
      },
      DeadlineFromNow());
  if (!s.ok()) return s;
  PutReply reply;
  reply.stored_blocks = response.stored_blocks();
  reply.existing_blocks = response.existing_blocks();
  absl::StatusOr<std::vector<BlockKey>> keys = KeysFromProto(response.block_keys());
  if (!keys.ok()) return keys.status();
  reply.keys = *std::move(keys);
  return reply;
}

absl::StatusOr<FetchReply> CacheStoreClient::Fetch(const FetchTarget& target,
                                                   std::span<const std::span<uint8_t>> out,
                                                   const FetchParams& params) {
  v1::FetchRequest request;
  request.set_lease_id(target.lease_id);
  KeysToProto(target.keys, request.mutable_block_keys());
  request.set_order(params.order);
  request.set_max_chunk_bytes(params.max_chunk_bytes);
  if (params.shm != nullptr) {
    const std::vector<std::span<const uint8_t>> blocks(out.begin(), out.end());
    absl::StatusOr<v1::SharedMemoryBlocks> shm = ShmBlocks(*params.shm, blocks);
    if (!shm.ok()) return shm.status();
    *request.mutable_shm() = *std::move(shm);
  }
  const grpc::ByteBuffer request_message = EncodeMessage(request);
  FetchReply reply;
  // A problem with what arrived (not the call) is reported as is and never retried.
  absl::Status local_error;
  absl::Status s = WithRetries(
      [&](grpc::ClientContext& ctx) -> grpc::Status {
        FetchReceiver receiver(out, params.shm != nullptr, params.on_chunk);
        local_error = absl::OkStatus();
        RawStreamCall call(generic_, ctx, kFetchMethod);
        grpc::ByteBuffer message;
        bool first = true;
        if (call.Write(request_message) && call.WritesDone()) {
          while (local_error.ok() && call.Read(&message)) {
            local_error = first ? receiver.OnBlockList(message) : receiver.OnMessage(message);
            first = false;
          }
        }
        reply.blocks = receiver.blocks();
        reply.bytes = receiver.verified_bytes();
        if (!local_error.ok()) {
          ctx.TryCancel();
          call.Finish();
          return grpc::Status::OK;
        }
        grpc::Status status = call.Finish();
        if (!status.ok() && reply.bytes > 0 && params.on_chunk) {
          // The caller may already be using what on_chunk reported: a retry would rewrite
          // those bytes under it, so the error stands.
          local_error = FromGrpcStatus(status);
          return grpc::Status::OK;
        }
        if (!status.ok()) return status;
        if (first) return grpc::Status(grpc::StatusCode::INTERNAL, "empty fetch stream");
        return ToGrpcStatus(receiver.Complete());
      },
      DeadlineFromNow());
  if (!local_error.ok()) return local_error;
  if (!s.ok()) return s;
  return reply;
}

absl::Status CacheStoreClient::Release(uint64_t lease_id) {
  v1::ReleaseRequest request;
  request.set_lease_id(lease_id);
  v1::ReleaseResponse response;
  return WithRetries(
      [&](grpc::ClientContext& ctx) { return stub_->Release(&ctx, request, &response); },
      DeadlineFromNow());
}

absl::StatusOr<absl::Duration> CacheStoreClient::Pin(std::span<const BlockKey> keys,
                                                     absl::Duration ttl) {
  return PinKeys(keys, ttl, /*skip_missing=*/false, nullptr);
}
absl::StatusOr<absl::Duration> CacheStoreClient::PinHeld(std::span<const BlockKey> keys,
                                                         absl::Duration ttl, uint32_t* pinned) {
  return PinKeys(keys, ttl, /*skip_missing=*/true, pinned);
}
absl::StatusOr<uint32_t> CacheStoreClient::Unpin(std::span<const BlockKey> keys) {
  return UnpinKeys(keys, /*skip_missing=*/false);
}
absl::StatusOr<uint32_t> CacheStoreClient::UnpinHeld(std::span<const BlockKey> keys) {
  return UnpinKeys(keys, /*skip_missing=*/true);
}
absl::StatusOr<uint32_t> CacheStoreClient::Delete(std::span<const BlockKey> keys) {
  return DeleteKeys(keys, /*skip_missing=*/false);
}
absl::StatusOr<uint32_t> CacheStoreClient::DeleteHeld(std::span<const BlockKey> keys) {
  return DeleteKeys(keys, /*skip_missing=*/true);
}

absl::StatusOr<absl::Duration> CacheStoreClient::PinKeys(std::span<const BlockKey> keys,
                                                         absl::Duration ttl, bool skip_missing,
                                                         uint32_t* pinned) {
  v1::PinRequest request;
  KeysToProto(keys, request.mutable_block_keys());
  request.set_ttl_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(ttl)));
  request.set_skip_missing(skip_missing);
  v1::PinResponse response;
  absl::Status s =
      WithRetries([&](grpc::ClientContext& ctx) { return stub_->Pin(&ctx, request, &response); },
                  DeadlineFromNow());
  if (!s.ok()) return s;
  if (pinned != nullptr) *pinned = response.pinned_blocks();
  return absl::Milliseconds(response.ttl_ms());
}

absl::StatusOr<uint32_t> CacheStoreClient::UnpinKeys(std::span<const BlockKey> keys,
                                                     bool skip_missing) {
  v1::UnpinRequest request;
  KeysToProto(keys, request.mutable_block_keys());
  request.set_skip_missing(skip_missing);
  v1::UnpinResponse response;
  absl::Status s =
      WithRetries([&](grpc::ClientContext& ctx) { return stub_->Unpin(&ctx, request, &response); },
                  DeadlineFromNow());
  if (!s.ok()) return s;
  return response.unpinned_blocks();
}

absl::StatusOr<uint32_t> CacheStoreClient::DeleteKeys(std::span<const BlockKey> keys,
                                                      bool skip_missing) {
  v1::DeleteRequest request;
  KeysToProto(keys, request.mutable_block_keys());
  request.set_skip_missing(skip_missing);
  v1::DeleteResponse response;
  absl::Status s =
      WithRetries([&](grpc::ClientContext& ctx) { return stub_->Delete(&ctx, request, &response); },
                  DeadlineFromNow());
  if (!s.ok()) return s;
  return response.deleted_blocks();
}

absl::StatusOr<v1::StatsResponse> CacheStoreClient::Stats() {
  v1::StatsRequest request;
  v1::StatsResponse response;
  absl::Status s =
      WithRetries([&](grpc::ClientContext& ctx) { return stub_->Stats(&ctx, request, &response); },
                  DeadlineFromNow());
  if (!s.ok()) return s;
  return response;
}

absl::StatusOr<bool> CacheStoreClient::Healthy() {
  std::unique_ptr<grpc::health::v1::Health::Stub> health =
      grpc::health::v1::Health::NewStub(channel_);
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  absl::Status s =
      WithRetries([&](grpc::ClientContext& ctx) { return health->Check(&ctx, request, &response); },
                  DeadlineFromNow());
  if (!s.ok()) return s;
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING;
}

absl::Status CacheStoreClient::WatchEvents(
    const std::function<bool(const v1::WatchEventsResponse&)>& on_message,
    absl::Duration duration) {
  grpc::ClientContext ctx;
  PrepareContext(
      ctx, duration == absl::InfiniteDuration() ? absl::InfiniteFuture() : absl::Now() + duration);
  v1::WatchEventsRequest request;
  std::unique_ptr<grpc::ClientReader<v1::WatchEventsResponse>> reader =
      stub_->WatchEvents(&ctx, request);
  v1::WatchEventsResponse message;
  bool stopped = false;
  while (reader->Read(&message)) {
    if (!on_message(message)) {
      stopped = true;
      ctx.TryCancel();
      break;
    }
  }
  grpc::Status status = reader->Finish();
  // Stopping by choice or at the end of the requested duration is a normal end.
  if (stopped || status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return absl::OkStatus();
  }
  return FromGrpcStatus(status);
}

}  // namespace kvtier
