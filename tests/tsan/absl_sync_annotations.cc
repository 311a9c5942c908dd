// ThreadSanitizer builds only (make test-tsan). Debian's Abseil is a shared library built
// without TSan, so the happens-before edges its Mutex, CondVar, Notification and
// BlockingCounter create (atomics and futexes inside the library) are invisible to TSan,
// which would report every access guarded by an absl::Mutex as a race. This file defines
// those methods in the executable: each calls the library's own (found with
// dlsym(RTLD_NEXT)) and tells TSan what it did (__tsan_acquire / __tsan_release on the
// object). Executables' definitions take precedence over the library's, also for calls
// from other shared libraries (gRPC locks with absl::Mutex too), so every lock is seen.
// Conditions passed to Await and LockWhen are wrapped so that their evaluation inside the
// library is ordered too. The edges are exactly those the primitives promise (unlock
// before the next lock; notify before a wait that returns notified), so no real race is
// hidden.
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "tests/tsan/library_definition.h"

namespace {

// The library's implementation of a member function, as a plain function of `this`.
#define KVTIER_REAL(type, symbol, ...) \
  static const auto real =             \
      reinterpret_cast<type (*)(__VA_ARGS__)>(kvtier::tsan::NextDefinition("Abseil", symbol))

void Acquire(const void* p) { __tsan_acquire(const_cast<void*>(p)); }
void Release(const void* p) { __tsan_release(const_cast<void*>(p)); }

// Await and LockWhen evaluate the caller's condition inside the library, with the mutex
// held, and (when it is false) release the mutex there: for TSan the evaluation acquires
// the mutex before and releases it after, so the condition's reads are ordered after the
// previous holders' writes and before the next holders'.
struct GuardedCondition {
  const absl::Mutex* mu;
  const absl::Condition* cond;
};
bool EvalGuarded(GuardedCondition* g) {
  Acquire(g->mu);
  const bool met = g->cond->Eval();
  Release(g->mu);
  return met;
}
// Calls the library's Await/LockWhen variant `real` with the caller's condition guarded.
template <typename R, typename... Args>
R WithGuardedCondition(R (*real)(absl::Mutex*, const absl::Condition&, Args...), absl::Mutex* mu,
                       const absl::Condition& cond, Args... args) {
  GuardedCondition guarded{mu, &cond};
  return real(mu, absl::Condition(&EvalGuarded, &guarded), args...);
}

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

void Mutex::Lock() {
  KVTIER_REAL(void, "_ZN4absl7debian35Mutex4LockEv", Mutex*);
  real(this);
  Acquire(this);
}
void Mutex::Unlock() {
  KVTIER_REAL(void, "_ZN4absl7debian35Mutex6UnlockEv", Mutex*);
  Release(this);
  real(this);
}
bool Mutex::TryLock() {
  KVTIER_REAL(bool, "_ZN4absl7debian35Mutex7TryLockEv", Mutex*);
  const bool locked = real(this);
  if (locked) Acquire(this);
  return locked;
}
void Mutex::ReaderLock() {
  KVTIER_REAL(void, "_ZN4absl7debian35Mutex10ReaderLockEv", Mutex*);
  real(this);
  Acquire(this);
}
void Mutex::ReaderUnlock() {
  KVTIER_REAL(void, "_ZN4absl7debian35Mutex12ReaderUnlockEv", Mutex*);
  Release(this);
  real(this);
}
bool Mutex::ReaderTryLock() {
  KVTIER_REAL(bool, "_ZN4absl7debian35Mutex13ReaderTryLockEv", Mutex*);
  const bool locked = real(this);
  if (locked) Acquire(this);
  return locked;
}
// Await and LockWhen release and retake the mutex inside the library.
void Mutex::Await(const Condition& cond) {
  KVTIER_REAL(void, "_ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE", Mutex*, const Condition&);
  Release(this);
  WithGuardedCondition(real, this, cond);
  Acquire(this);
}
bool Mutex::AwaitWithTimeout(const Condition& cond, absl::Duration timeout) {
  KVTIER_REAL(bool, "_ZN4absl7debian35Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE",
              Mutex*, const Condition&, absl::Duration);
  Release(this);
  const bool met = WithGuardedCondition(real, this, cond, timeout);
  Acquire(this);
  return met;
}
void Mutex::LockWhen(const Condition& cond) {
  KVTIER_REAL(void, "_ZN4absl7debian35Mutex8LockWhenERKNS0_9ConditionE", Mutex*, const Condition&);
  WithGuardedCondition(real, this, cond);
  Acquire(this);
}
bool Mutex::AwaitWithDeadline(const Condition& cond, absl::Time deadline) {
  KVTIER_REAL(bool, "_ZN4absl7debian35Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE", Mutex*,
              const Condition&, absl::Time);
  Release(this);
  const bool met = WithGuardedCondition(real, this, cond, deadline);
  Acquire(this);
  return met;
}
void Mutex::ReaderLockWhen(const Condition& cond) {
  KVTIER_REAL(void, "_ZN4absl7debian35Mutex14ReaderLockWhenERKNS0_9ConditionE", Mutex*,
              const Condition&);
  WithGuardedCondition(real, this, cond);
  Acquire(this);
}
// These hold the mutex on return whether or not the condition was met.
bool Mutex::LockWhenWithTimeout(const Condition& cond, absl::Duration timeout) {
  KVTIER_REAL(bool, "_ZN4absl7debian35Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE",
              Mutex*, const Condition&, absl::Duration);
  const bool met = WithGuardedCondition(real, this, cond, timeout);
  Acquire(this);
  return met;
}
bool Mutex::LockWhenWithDeadline(const Condition& cond, absl::Time deadline) {
  KVTIER_REAL(bool, "_ZN4absl7debian35Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE",
              Mutex*, const Condition&, absl::Time);
  const bool met = WithGuardedCondition(real, this, cond, deadline);
  Acquire(this);
  return met;
}

void CondVar::Wait(Mutex* mu) {
  KVTIER_REAL(void, "_ZN4absl7debian37CondVar4WaitEPNS0_5MutexE", CondVar*, Mutex*);
  Release(mu);
  real(this, mu);
  Acquire(mu);
}
bool CondVar::WaitWithTimeout(Mutex* mu, absl::Duration timeout) {
  KVTIER_REAL(bool, "_ZN4absl7debian37CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE",
              CondVar*, Mutex*, absl::Duration);
  Release(mu);
  const bool timed_out = real(this, mu, timeout);
  Acquire(mu);
  return timed_out;
}
bool CondVar::WaitWithDeadline(Mutex* mu, absl::Time deadline) {
  KVTIER_REAL(bool, "_ZN4absl7debian37CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE", CondVar*,
              Mutex*, absl::Time);
  Release(mu);
  const bool timed_out = real(this, mu, deadline);
  Acquire(mu);
  return timed_out;
}

void Notification::Notify() {
  KVTIER_REAL(void, "_ZN4absl7debian312Notification6NotifyEv", Notification*);
  Release(this);
  // HasBeenNotified() is an inline acquire load of the flag after the mutex: the same edge.
  Release(reinterpret_cast<const char*>(this) + sizeof(Mutex));
  real(this);
}
void Notification::WaitForNotification() const {
  KVTIER_REAL(void, "_ZNK4absl7debian312Notification19WaitForNotificationEv", const Notification*);
  real(this);
  Acquire(this);
}
bool Notification::WaitForNotificationWithTimeout(absl::Duration timeout) const {
  KVTIER_REAL(bool,
              "_ZNK4absl7debian312Notification30WaitForNotificationWithTimeoutENS0_8DurationE",
              const Notification*, absl::Duration);
  const bool notified = real(this, timeout);
  if (notified) Acquire(this);
  return notified;
}

bool Notification::WaitForNotificationWithDeadline(absl::Time deadline) const {
  KVTIER_REAL(bool, "_ZNK4absl7debian312Notification31WaitForNotificationWithDeadlineENS0_4TimeE",
              const Notification*, absl::Time);
  const bool notified = real(this, deadline);
  if (notified) Acquire(this);
  return notified;
}

bool BlockingCounter::DecrementCount() {
  KVTIER_REAL(bool, "_ZN4absl7debian315BlockingCounter14DecrementCountEv", BlockingCounter*);
  Release(this);
  return real(this);
}
void BlockingCounter::Wait() {
  KVTIER_REAL(void, "_ZN4absl7debian315BlockingCounter4WaitEv", BlockingCounter*);
  real(this);
  Acquire(this);
}

ABSL_NAMESPACE_END
}  // namespace absl
