#include "client/shm_attach.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "kvtier/v1/same_node.pb.h"

namespace kvtier {
namespace {

absl::StatusOr<int> Connect(const std::string& socket_path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.empty() || socket_path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad same-node socket path '", socket_path, "'"));
  }
  std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::UnavailableError(
        absl::StrCat("no store's same-node socket at ", socket_path, ": ", std::strerror(err)));
  }
  return fd;
}

// Sends the request with `memfd` attached and waits for the response.
absl::StatusOr<v1::ShmAttachResponse> Exchange(int connection, int memfd,
                                               const v1::ShmAttachRequest& request,
                                               absl::Duration timeout) {
  std::string bytes = request.SerializeAsString();
  iovec iov{.iov_base = bytes.data(), .iov_len = bytes.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  cmsghdr* cm = CMSG_FIRSTHDR(&msg);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(cm), &memfd, sizeof(int));
  if (::sendmsg(connection, &msg, MSG_NOSIGNAL) < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot send the attach request: ", std::strerror(errno)));
  }
  pollfd p{.fd = connection, .events = POLLIN, .revents = 0};
  const int ready = ::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
  if (ready <= 0) return absl::DeadlineExceededError("the store did not answer the attach");
  char reply[4096];
  const ssize_t n = ::recv(connection, reply, sizeof(reply), 0);
  if (n <= 0) return absl::UnavailableError("the store closed the attach connection");
  v1::ShmAttachResponse response;
  if (!response.ParseFromArray(reply, static_cast<int>(n))) {
    return absl::InternalError("the store sent a malformed ShmAttachResponse");
  }
  return response;
}

}  // namespace

absl::StatusOr<ShmAttachment> AttachMemfd(const std::string& socket_path, int memfd,
                                          const std::string& tenant, const std::string& auth_token,
                                          absl::Duration timeout) {
  absl::StatusOr<int> connection = Connect(socket_path);
  if (!connection.ok()) return connection.status();
  v1::ShmAttachRequest request;
  request.set_version(1);
  request.set_tenant(tenant);
  request.set_auth_token(auth_token);
  absl::StatusOr<v1::ShmAttachResponse> response = Exchange(*connection, memfd, request, timeout);
  if (!response.ok() || response->code() != 0) {
    ::close(*connection);
    if (!response.ok()) return response.status();
    return absl::Status(static_cast<absl::StatusCode>(response->code()),
                        absl::StrCat("the store refused the region: ", response->message()));
  }
  return ShmAttachment{.connection = *connection,
                       .region_id = response->region_id(),
                       .size_bytes = response->size_bytes()};
}

}  // namespace kvtier
