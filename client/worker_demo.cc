// kvtier-worker-demo: a multi-turn conversation through a running kvtier-worker (which
// restores from and offloads to a kvtier-store). Each turn appends a user message to the
// conversation, generates an answer, and prints where the prompt's K/V came from (the
// worker's own pages, the store, or recomputed) and the time to first token, next to the
// time to first token of the same prompt with every token recomputed (no_cache).
//
// Token ids only: the reference decoder has seeded weights and no tokenizer. Run it twice
// with a worker restart in between to see the prefix come back from the store.
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "kvtier/v1/decode_worker.grpc.pb.h"

ABSL_FLAG(std::string, worker, "127.0.0.1:50061", "kvtier-worker address, HOST:PORT.");
ABSL_FLAG(uint32_t, turns, 4, "Conversation turns.");
ABSL_FLAG(uint32_t, system_tokens, 300, "Tokens of the shared system prompt.");
ABSL_FLAG(uint32_t, user_tokens, 40, "Tokens per user message.");
ABSL_FLAG(uint32_t, answer_tokens, 24, "Tokens generated per turn.");
ABSL_FLAG(uint32_t, vocab, 512, "Vocabulary size of the worker's model.");
ABSL_FLAG(uint32_t, conversation, 0, "Which conversation (a different system prompt each).");

namespace kvtier {
namespace {

std::vector<uint32_t> Message(uint32_t n, uint32_t salt, uint32_t vocab) {
  std::vector<uint32_t> t(n);
  for (uint32_t i = 0; i < n; ++i) t[i] = (i * 131 + salt * 977 + 7) % vocab;
  return t;
}

struct Turn {
  v1::PrefixSources sources;
  double ttft = 0;
  std::vector<uint32_t> tokens;
};

bool Generate(v1::DecodeWorker::Stub& stub, const std::vector<uint32_t>& prompt, uint32_t n,
              bool no_cache, Turn* out) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(5));
  v1::GenerateRequest request;
  request.mutable_token_ids()->Assign(prompt.begin(), prompt.end());
  request.set_max_new_tokens(n);
  request.set_no_cache(no_cache);
  auto reader = stub.Generate(&ctx, request);
  v1::GenerateResponse message;
  bool first = true;
  while (reader->Read(&message)) {
    if (first) {
      out->sources = message.sources();
      out->ttft = message.time_to_first_token_seconds();
      first = false;
    }
    out->tokens.insert(out->tokens.end(), message.token_ids().begin(), message.token_ids().end());
  }
  const grpc::Status status = reader->Finish();
  if (!status.ok()) {
    std::fprintf(stderr, "Generate failed: %s\n", status.error_message().c_str());
    return false;
  }
  return true;
}

int Run() {
  auto stub = v1::DecodeWorker::NewStub(
      grpc::CreateChannel(absl::GetFlag(FLAGS_worker), grpc::InsecureChannelCredentials()));
  const uint32_t vocab = absl::GetFlag(FLAGS_vocab);
  const uint32_t seed = absl::GetFlag(FLAGS_conversation) * 1000;
  std::vector<uint32_t> conversation = Message(absl::GetFlag(FLAGS_system_tokens), seed, vocab);
  std::printf("%-5s %8s %8s %8s %9s %14s %16s  %s\n", "turn", "prompt", "local", "store",
              "computed", "ttft_ms_cached", "ttft_ms_no_cache", "first answer tokens");
  for (uint32_t turn = 1; turn <= absl::GetFlag(FLAGS_turns); ++turn) {
    const std::vector<uint32_t> user =
        Message(absl::GetFlag(FLAGS_user_tokens), seed + turn, vocab);
    conversation.insert(conversation.end(), user.begin(), user.end());
    Turn cached, baseline;
    if (!Generate(*stub, conversation, absl::GetFlag(FLAGS_answer_tokens), false, &cached) ||
        !Generate(*stub, conversation, 1, true, &baseline)) {
      return 1;
    }
    if (baseline.tokens.empty() || cached.tokens.empty() ||
        baseline.tokens[0] != cached.tokens[0]) {
      std::fprintf(stderr, "turn %u: the cached and recomputed first tokens differ\n", turn);
      return 1;
    }
    std::string head;
    for (size_t i = 0; i < std::min<size_t>(6, cached.tokens.size()); ++i) {
      absl::StrAppendFormat(&head, "%d ", cached.tokens[i]);
    }
    std::printf("%-5u %8u %8u %8u %9u %14.1f %16.1f  %s...\n", turn, cached.sources.prompt_tokens(),
                cached.sources.local_tokens(), cached.sources.store_tokens(),
                cached.sources.computed_tokens(), cached.ttft * 1e3, baseline.ttft * 1e3,
                head.c_str());
    conversation.insert(conversation.end(), cached.tokens.begin(), cached.tokens.end());
  }
  return 0;
}

}  // namespace
}  // namespace kvtier

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return kvtier::Run();
}
