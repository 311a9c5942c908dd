// ThreadSanitizer builds only (make test-tsan). gRPC's C++ API is header code, compiled
// into kvtier and instrumented, but it hands every operation batch to Debian's
// uninstrumented libgrpc: the batch is started on one thread (grpc_call_start_batch) and
// its completion - a reactor's OnReadDone/OnWriteDone, a callback tag's Run, a sync call's
// Pluck - runs on another, ordered by the library's queues, which TSan cannot see. TSan
// would then report every reactor field written before a StartRead and read in the next
// OnReadDone. This file defines the C core's entry points in the executable (calls from
// libgrpc++ resolve to the executable first) and tells TSan about the edge gRPC promises:
// starting a batch (release on its tag) happens before its completion (acquire on the same
// tag). Callback tags complete through their functor, so the functor of gRPC's two callback
// tag classes is pointed at a trampoline that acquires and then runs the original.
#include <grpc/grpc.h>
#include <grpcpp/support/callback_common.h>

#include <cstdint>
#include <cstring>

#include "tests/tsan/library_definition.h"

namespace {

using FunctorRun = void (*)(grpc_completion_queue_functor*, int);

void* Next(const char* symbol) { return kvtier::tsan::NextDefinition("gRPC", symbol); }

// Tags are pointers to gRPC objects; anything else (a small integer used as a tag) is left
// alone, since TSan can only track application memory.
bool IsObject(const void* tag) { return reinterpret_cast<uintptr_t>(tag) >= 4096; }
void Acquire(void* tag) {
  if (IsObject(tag)) __tsan_acquire(tag);
}
void Release(void* tag) {
  if (IsObject(tag)) __tsan_release(tag);
}

// The StaticRun functions of gRPC's callback tags are private; an explicit instantiation
// may name private members, and this one stores their addresses at start-up.
FunctorRun success_run = nullptr;
FunctorRun status_run = nullptr;
template <FunctorRun* Slot, FunctorRun Run>
struct StoreRun {
  static inline const bool stored = (*Slot = Run, true);
};
template struct StoreRun<&success_run, &grpc::internal::CallbackWithSuccessTag::StaticRun>;
template struct StoreRun<&status_run, &grpc::internal::CallbackWithStatusTag::StaticRun>;

void AcquireThenRunSuccess(grpc_completion_queue_functor* functor, int ok) {
  Acquire(functor);
  success_run(functor, ok);
}
void AcquireThenRunStatus(grpc_completion_queue_functor* functor, int ok) {
  Acquire(functor);
  status_run(functor, ok);
}

// A callback tag's first member is its functor_run (grpc_completion_queue_functor comes
// first); any other tag gRPC's headers start a batch with is a CallOpSet, whose first word
// is its vtable pointer, so comparing the first word tells them apart.
void PointAtTrampoline(void* tag) {
  if (!IsObject(tag)) return;
  FunctorRun first;
  std::memcpy(&first, tag, sizeof(first));
  auto* functor = static_cast<grpc_completion_queue_functor*>(tag);
  if (first == success_run) functor->functor_run = &AcquireThenRunSuccess;
  if (first == status_run) functor->functor_run = &AcquireThenRunStatus;
}

}  // namespace

extern "C" grpc_call_error grpc_call_start_batch(grpc_call* call, const grpc_op* ops, size_t nops,
                                                 void* tag, void* reserved) {
  static const auto real =
      reinterpret_cast<grpc_call_error (*)(grpc_call*, const grpc_op*, size_t, void*, void*)>(
          Next("grpc_call_start_batch"));
  PointAtTrampoline(tag);
  Release(tag);
  return real(call, ops, nops, tag, reserved);
}

extern "C" grpc_event grpc_completion_queue_pluck(grpc_completion_queue* cq, void* tag,
                                                  gpr_timespec deadline, void* reserved) {
  static const auto real =
      reinterpret_cast<grpc_event (*)(grpc_completion_queue*, void*, gpr_timespec, void*)>(
          Next("grpc_completion_queue_pluck"));
  const grpc_event event = real(cq, tag, deadline, reserved);
  if (event.type == GRPC_OP_COMPLETE) Acquire(event.tag);
  return event;
}

extern "C" grpc_event grpc_completion_queue_next(grpc_completion_queue* cq, gpr_timespec deadline,
                                                 void* reserved) {
  static const auto real =
      reinterpret_cast<grpc_event (*)(grpc_completion_queue*, gpr_timespec, void*)>(
          Next("grpc_completion_queue_next"));
  const grpc_event event = real(cq, deadline, reserved);
  if (event.type == GRPC_OP_COMPLETE) Acquire(event.tag);
  return event;
}
