// SIGTERM/SIGINT handling of the servers: blocked in every thread (call before any thread
// starts), then awaited by the main thread, which drains and exits.
#ifndef KVTIER_SERVICES_SHUTDOWN_SIGNALS_H_
#define KVTIER_SERVICES_SHUTDOWN_SIGNALS_H_

#include <pthread.h>
#include <signal.h>

namespace kvtier {

inline sigset_t BlockShutdownSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

// Returns the signal that arrived.
inline int AwaitShutdownSignal(const sigset_t& signals) {
  int sig = 0;
  sigwait(&signals, &sig);
  return sig;
}

}  // namespace kvtier

#endif  // KVTIER_SERVICES_SHUTDOWN_SIGNALS_H_
