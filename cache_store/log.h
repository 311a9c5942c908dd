// Minimal logging for kvtier processes: one line per message on stderr, with time and
// severity. (Debian's Abseil 20220623 predates absl/log.) Thread-safe: each message is
// written with a single write().
//
//   KVTIER_LOG(INFO) << "listening on " << addr;
//   KVTIER_CHECK(ptr != nullptr) << "why it cannot be null";  // aborts when false
#ifndef KVTIER_CACHE_STORE_LOG_H_
#define KVTIER_CACHE_STORE_LOG_H_

#include <sstream>

namespace kvtier {

enum class LogSeverity { kInfo, kWarning, kError, kFatal };

class LogMessage {
 public:
  LogMessage(LogSeverity severity, const char* file, int line);
  ~LogMessage();  // writes the line; aborts for kFatal
  LogMessage(const LogMessage&) = delete;
  LogMessage& operator=(const LogMessage&) = delete;
  std::ostream& stream() { return stream_; }

 private:
  LogSeverity severity_;
  std::ostringstream stream_;
};

// Turns a streamed expression into void so that it can sit in a conditional.
struct LogVoidify {
  void operator&(std::ostream&) {}
};

}  // namespace kvtier

#define KVTIER_LOG_SEVERITY_INFO ::kvtier::LogSeverity::kInfo
#define KVTIER_LOG_SEVERITY_WARNING ::kvtier::LogSeverity::kWarning
#define KVTIER_LOG_SEVERITY_ERROR ::kvtier::LogSeverity::kError
#define KVTIER_LOG_SEVERITY_FATAL ::kvtier::LogSeverity::kFatal

#define KVTIER_LOG(severity) \
  ::kvtier::LogMessage(KVTIER_LOG_SEVERITY_##severity, __FILE__, __LINE__).stream()

// The expansion must stay an unparenthesised stream expression so that `<< ...` binds.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define KVTIER_CHECK(cond) \
  (cond) ? (void)0 : ::kvtier::LogVoidify() & KVTIER_LOG(FATAL) << "check failed: " #cond " "
// NOLINTEND(bugprone-macro-parentheses)

#endif  // KVTIER_CACHE_STORE_LOG_H_
