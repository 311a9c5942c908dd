// Shared by the ThreadSanitizer annotation files (tests/tsan/*_sync_annotations.cc), which
// redefine functions of Debian's uninstrumented libraries in the executable: finding the
// library's own definition to call, and TSan's happens-before annotations.
#ifndef KVTIER_TESTS_TSAN_LIBRARY_DEFINITION_H_
#define KVTIER_TESTS_TSAN_LIBRARY_DEFINITION_H_

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>

extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);

namespace kvtier::tsan {

// The next definition of `symbol` after the executable's own: the library's. Aborts,
// naming `library`, when there is none (a library version whose symbols differ).
inline void* NextDefinition(const char* library, const char* symbol) {
  void* f = dlsym(RTLD_NEXT, symbol);
  if (f == nullptr) {
    std::fprintf(stderr, "tsan annotations: %s not found in %s\n", symbol, library);
    std::abort();
  }
  return f;
}

}  // namespace kvtier::tsan

#endif  // KVTIER_TESTS_TSAN_LIBRARY_DEFINITION_H_
