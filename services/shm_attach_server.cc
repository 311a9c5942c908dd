#include "services/shm_attach_server.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cache_store/log.h"
#include "kvtier/v1/same_node.pb.h"

namespace kvtier {
namespace {

constexpr size_t kMaxRequestBytes = 8192;
constexpr int kMaxFdsPerMessage = 8;

absl::StatusOr<sockaddr_un> SocketAddress(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("--shm_socket path '", path, "' must be 1 to ",
                                                   sizeof(addr.sun_path) - 1, " characters"));
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

// Whether a server still answers on the socket at `path`.
bool SocketIsLive(const sockaddr_un& addr) {
  const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const bool live = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return live;
}

void Reply(int fd, const v1::ShmAttachResponse& response) {
  const std::string bytes = response.SerializeAsString();
  // A fresh connection's buffer holds this small message; if not, the client sees the
  // connection close instead.
  (void)::send(fd, bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
}

}  // namespace

struct ShmAttachServer::Connection {
  int fd = -1;
  absl::Time deadline;    // for the request
  std::string region_id;  // empty until attached
};

absl::StatusOr<std::unique_ptr<ShmAttachServer>> ShmAttachServer::Start(
    const ShmAttachServerOptions& options, ShmRegions* regions, const TenantAuthenticator* auth) {
  absl::StatusOr<sockaddr_un> addr = SocketAddress(options.path);
  if (!addr.ok()) return addr.status();
  struct stat st {};
  if (::lstat(options.path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat("--shm_socket ", options.path, " exists and is not a socket"));
    }
    if (SocketIsLive(*addr)) {
      return absl::FailedPreconditionError(
          absl::StrCat("--shm_socket ", options.path, " is in use by a running server"));
    }
    ::unlink(options.path.c_str());  // left behind by a store that did not stop cleanly
  }
  const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  const mode_t old_mask = ::umask(0117);  // 0660
  const int bound = ::bind(fd, reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr));
  const int bind_errno = errno;
  ::umask(old_mask);
  if (bound != 0 || ::listen(fd, 128) != 0) {
    const int err = bound != 0 ? bind_errno : errno;
    ::close(fd);
    return absl::FailedPreconditionError(
        absl::StrCat("cannot serve --shm_socket ", options.path, ": ", std::strerror(err)));
  }
  const int wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) {
    ::close(fd);
    ::unlink(options.path.c_str());
    return absl::InternalError(absl::StrCat("eventfd: ", std::strerror(errno)));
  }
  return std::unique_ptr<ShmAttachServer>(new ShmAttachServer(options, fd, wake, regions, auth));
}

ShmAttachServer::ShmAttachServer(ShmAttachServerOptions options, int listen_fd, int wake_fd,
                                 ShmRegions* regions, const TenantAuthenticator* auth)
    : options_(std::move(options)),
      listen_fd_(listen_fd),
      wake_fd_(wake_fd),
      regions_(regions),
      auth_(auth) {
  thread_ = std::thread([this] { Loop(); });
}

ShmAttachServer::~ShmAttachServer() {
  const uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof(one));
  thread_.join();
  ::close(listen_fd_);
  ::close(wake_fd_);
  ::unlink(options_.path.c_str());
}

bool ShmAttachServer::Serve(Connection& c) {
  char buf[kMaxRequestBytes];
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
  iovec iov{.iov_base = buf, .iov_len = sizeof(buf)};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  const ssize_t n = ::recvmsg(c.fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return true;
  if (n <= 0) return false;
  std::vector<int> fds;
  for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm != nullptr; cm = CMSG_NXTHDR(&msg, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
      fds.push_back(fd);
    }
  }
  auto fail = [&](const absl::Status& why) {
    for (int fd : fds) ::close(fd);
    v1::ShmAttachResponse response;
    response.set_code(static_cast<int>(why.code()));
    response.set_message(std::string(why.message()));
    Reply(c.fd, response);
    return false;
  };
  v1::ShmAttachRequest request;
  if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0 ||
      !request.ParseFromArray(buf, static_cast<int>(n))) {
    return fail(absl::InvalidArgumentError("malformed ShmAttachRequest"));
  }
  if (request.version() != 1) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat("attach protocol version ", request.version(), " is not 1")));
  }
  if (fds.size() != 1) {
    return fail(absl::InvalidArgumentError(absl::StrCat(
        "an attach request carries exactly one memfd (SCM_RIGHTS), not ", fds.size())));
  }
  absl::StatusOr<std::string> tenant = auth_->TenantFor(
      request.auth_token().empty() ? std::nullopt
                                   : std::optional<std::string_view>(request.auth_token()),
      request.tenant());
  if (!tenant.ok()) return fail(tenant.status());
  absl::StatusOr<std::string> id = regions_->Attach(fds[0], *tenant);
  if (!id.ok()) return fail(id.status());
  ::close(fds[0]);  // the mapping keeps the memory
  fds.clear();
  c.region_id = *id;
  v1::ShmAttachResponse response;
  response.set_region_id(*id);
  absl::StatusOr<std::shared_ptr<const AttachedRegion>> region = regions_->Find(*tenant, *id);
  if (region.ok()) response.set_size_bytes((*region)->size());
  Reply(c.fd, response);
  return true;
}

void ShmAttachServer::Loop() {
  std::vector<Connection> conns;
  auto close_connection = [&](Connection& c) {
    if (!c.region_id.empty()) regions_->Detach(c.region_id);
    ::close(c.fd);
    c.fd = -1;
  };
  while (true) {
    std::vector<pollfd> polls = {{.fd = wake_fd_, .events = POLLIN, .revents = 0},
                                 {.fd = listen_fd_, .events = POLLIN, .revents = 0}};
    absl::Time next_deadline = absl::InfiniteFuture();
    for (const Connection& c : conns) {
      polls.push_back({.fd = c.fd, .events = POLLIN | POLLRDHUP, .revents = 0});
      if (c.region_id.empty()) next_deadline = std::min(next_deadline, c.deadline);
    }
    const int timeout_ms =
        next_deadline == absl::InfiniteFuture()
            ? -1
            : static_cast<int>(
                  std::max<int64_t>(0, absl::ToInt64Milliseconds(next_deadline - absl::Now()) + 1));
    if (::poll(polls.data(), polls.size(), timeout_ms) < 0 && errno != EINTR) {
      KVTIER_LOG(ERROR) << "shm attach socket: poll failed: " << std::strerror(errno);
      absl::SleepFor(absl::Milliseconds(100));
      continue;
    }
    if (polls[0].revents != 0) break;  // shutting down
    const absl::Time now = absl::Now();
    for (size_t i = 0; i < conns.size(); ++i) {
      Connection& c = conns[i];
      const short ev = polls[i + 2].revents;
      if (c.region_id.empty()) {
        if ((ev & POLLIN) != 0) {
          if (!Serve(c)) close_connection(c);
        } else if ((ev & (POLLHUP | POLLERR | POLLRDHUP)) != 0 || now >= c.deadline) {
          close_connection(c);
        }
      } else if (ev != 0) {
        // An attached connection only ever closes; anything else is a protocol error.
        close_connection(c);
      }
    }
    std::erase_if(conns, [](const Connection& c) { return c.fd < 0; });
    if ((polls[1].revents & POLLIN) != 0) {
      while (true) {
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) break;
        if (conns.size() >= options_.max_connections) {
          ::close(fd);
          continue;
        }
        conns.push_back({.fd = fd, .deadline = now + options_.request_timeout, .region_id = ""});
      }
    }
  }
  for (Connection& c : conns) close_connection(c);
}

}  // namespace kvtier
