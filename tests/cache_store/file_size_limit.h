// FileSizeLimit: lowers RLIMIT_FSIZE for the life of the object, so that writes past the
// limit fail with EFBIG (SIGXFSZ is ignored): a full disk, for tests.
#ifndef KVTIER_TESTS_CACHE_STORE_FILE_SIZE_LIMIT_H_
#define KVTIER_TESTS_CACHE_STORE_FILE_SIZE_LIMIT_H_

#include <sys/resource.h>

#include <csignal>

namespace kvtier::testing {

class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    std::signal(SIGXFSZ, SIG_IGN);
    getrlimit(RLIMIT_FSIZE, &saved_);
    rlimit lim = saved_;
    lim.rlim_cur = bytes;
    setrlimit(RLIMIT_FSIZE, &lim);
  }
  ~FileSizeLimit() { setrlimit(RLIMIT_FSIZE, &saved_); }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;

 private:
  rlimit saved_{};
};

}  // namespace kvtier::testing

#endif  // KVTIER_TESTS_CACHE_STORE_FILE_SIZE_LIMIT_H_
