#include "client/cache_store_client.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <algorithm>
#include <cstring>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cache_store/checksum.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "proto/wire_convert.h"

namespace kvtier {

std::shared_ptr<grpc::Channel> MakeStoreChannel(const ClientOptions& options) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options.max_message_bytes);
  args.SetMaxSendMessageSize(options.max_message_bytes);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  return grpc::CreateCustomChannel(options.target, grpc::InsecureChannelCredentials(), args);
}

CacheStoreClient::CacheStoreClient(const ClientOptions& options)
    : CacheStoreClient(MakeStoreChannel(options), options) {}

CacheStoreClient::CacheStoreClient(std::shared_ptr<grpc::Channel> channel, ClientOptions options)
    : options_(std::move(options)),
      channel_(std::move(channel)),
      stub_(v1::CacheStore::NewStub(channel_)) {}

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
  v1::LookupResponse response;
  absl::Status s =
      WithRetries([&](grpc::ClientContext& ctx) { return stub_->Lookup(&ctx, request, &response); },
                  DeadlineFromNow());
  if (!s.ok()) return s;
  LookupReply reply;
  reply.matched_blocks = response.matched_blocks();
  reply.total_blocks = response.total_blocks();
  absl::StatusOr<std::vector<BlockKey>> keys = KeysFromProto(response.block_keys());
  if (!keys.ok()) return keys.status();
  reply.keys = *std::move(keys);
  for (int t : response.tiers()) reply.tiers.push_back(static_cast<v1::Tier>(t));
  reply.lease_id = response.lease_id();
  reply.lease_ttl = absl::Milliseconds(response.lease_ttl_ms());
  reply.block_bytes = response.block_bytes();
  return reply;
}

absl::StatusOr<PutReply> CacheStoreClient::Put(const KvLayout& layout,
                                               std::span<const uint32_t> tokens,
                                               uint32_t first_block,
                                               std::span<const uint8_t> payload,
                                               const std::string& salt) {
  if (absl::Status s = layout.Validate(); !s.ok()) return s;
  const uint64_t block_bytes = layout.BlockBytes();
  if (payload.empty() || payload.size() % block_bytes != 0) {
    return absl::InvalidArgumentError(absl::StrCat("a Put payload is a whole number of ",
                                                   block_bytes, "-byte blocks; got ",
                                                   payload.size(), " bytes"));
  }
  const uint32_t num_blocks = static_cast<uint32_t>(payload.size() / block_bytes);
  v1::PutRequest header;
  v1::PutHeader* h = header.mutable_header();
  *h->mutable_layout() = LayoutToProto(layout);
  h->mutable_token_ids()->Add(tokens.begin(), tokens.end());
  h->set_cache_salt(salt);
  h->set_first_block(first_block);
  h->set_num_blocks(num_blocks);
  for (uint32_t b = 0; b < num_blocks; ++b) {
    h->add_checksums(BlockChecksum(payload.data() + b * block_bytes, block_bytes));
  }
  v1::PutResponse response;
  absl::Status s = WithRetries(
      [&](grpc::ClientContext& ctx) {
        std::unique_ptr<grpc::ClientWriter<v1::PutRequest>> writer = stub_->Put(&ctx, &response);
        bool ok = writer->Write(header);
        v1::PutRequest chunk;
        for (uint64_t off = 0; ok && off < payload.size(); off += options_.put_chunk_bytes) {
          const uint64_t n = std::min<uint64_t>(options_.put_chunk_bytes, payload.size() - off);
          chunk.set_data(payload.data() + off, n);
          ok = writer->Write(chunk);
        }
        // A failed Write means the server already finished the call; Finish says why.
        writer->WritesDone();
        return writer->Finish();
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
  FetchReply reply;
  absl::Status local_error;
  absl::Status s = WithRetries(
      [&](grpc::ClientContext& ctx) -> grpc::Status {
        reply = FetchReply{};
        std::unique_ptr<grpc::ClientReader<v1::FetchResponse>> reader = stub_->Fetch(&ctx, request);
        v1::FetchResponse message;
        std::vector<uint64_t> received;
        bool first = true;
        while (reader->Read(&message)) {
          if (first) {
            first = false;
            reply.blocks.assign(message.blocks().begin(), message.blocks().end());
            if (reply.blocks.size() > out.size()) {
              local_error = absl::InvalidArgumentError(
                  absl::StrCat("the fetch returns ", reply.blocks.size(), " blocks but only ",
                               out.size(), " buffers were given"));
            }
            for (size_t b = 0; local_error.ok() && b < reply.blocks.size(); ++b) {
              if (reply.blocks[b].size_bytes() > out[b].size()) {
                local_error = absl::InvalidArgumentError(
                    absl::StrCat("block ", b, " is ", reply.blocks[b].size_bytes(),
                                 " bytes; its buffer holds ", out[b].size()));
              }
            }
            received.assign(reply.blocks.size(), 0);
            if (!local_error.ok()) {
              ctx.TryCancel();
              break;
            }
            continue;
          }
          const uint32_t b = message.block();
          const std::string& data = message.data();
          if (b >= reply.blocks.size() ||
              message.offset() + data.size() > reply.blocks[b].size_bytes()) {
            local_error = absl::InternalError("the server sent a chunk outside its blocks");
            ctx.TryCancel();
            break;
          }
          std::memcpy(out[b].data() + message.offset(), data.data(), data.size());
          received[b] += data.size();
          reply.bytes += data.size();
          if (params.on_chunk) params.on_chunk(b, message.offset(), data.size());
        }
        grpc::Status status = reader->Finish();
        if (!local_error.ok()) return grpc::Status::OK;  // reported below, not retried
        if (!status.ok()) return status;
        if (first) return grpc::Status(grpc::StatusCode::INTERNAL, "empty fetch stream");
        for (size_t b = 0; b < reply.blocks.size(); ++b) {
          if (received[b] != reply.blocks[b].size_bytes()) {
            return grpc::Status(grpc::StatusCode::DATA_LOSS,
                                absl::StrCat("block ", b, " arrived incomplete"));
          }
        }
        return grpc::Status::OK;
      },
      DeadlineFromNow());
  if (!local_error.ok()) return local_error;
  if (!s.ok()) return s;
  for (size_t b = 0; b < reply.blocks.size(); ++b) {
    const uint64_t sum = BlockChecksum(out[b].data(), reply.blocks[b].size_bytes());
    if (sum != reply.blocks[b].checksum()) {
      return absl::DataLossError(
          absl::StrFormat("block %d failed its checksum after transfer (%016x, expected %016x)", b,
                          sum, reply.blocks[b].checksum()));
    }
  }
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
  v1::PinRequest request;
  KeysToProto(keys, request.mutable_block_keys());
  request.set_ttl_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(ttl)));
  v1::PinResponse response;
  absl::Status s =
      WithRetries([&](grpc::ClientContext& ctx) { return stub_->Pin(&ctx, request, &response); },
                  DeadlineFromNow());
  if (!s.ok()) return s;
  return absl::Milliseconds(response.ttl_ms());
}

absl::StatusOr<uint32_t> CacheStoreClient::Unpin(std::span<const BlockKey> keys) {
  v1::UnpinRequest request;
  KeysToProto(keys, request.mutable_block_keys());
  v1::UnpinResponse response;
  absl::Status s =
      WithRetries([&](grpc::ClientContext& ctx) { return stub_->Unpin(&ctx, request, &response); },
                  DeadlineFromNow());
  if (!s.ok()) return s;
  return response.unpinned_blocks();
}

absl::StatusOr<uint32_t> CacheStoreClient::Delete(std::span<const BlockKey> keys) {
  v1::DeleteRequest request;
  KeysToProto(keys, request.mutable_block_keys());
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
