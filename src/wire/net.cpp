#include "wire/net.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include "fmi/errors.h"

namespace FMI::Wire {

void Socket::reset() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

std::string errno_text(int err) {
  char buf[256];
  // GNU strerror_r returns the message pointer (maybe not buf).
  return strerror_r(err, buf, sizeof buf);
}

void set_nonblocking(int fd) {
  int fl = ::fcntl(fd, F_GETFL, 0);
  if (fl < 0 || ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
    FMI_THROW(ChannelError, "Direct: fcntl(O_NONBLOCK) failed: ", errno_text(errno));
}

void set_nodelay(int fd) {
  int one = 1;
  if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
    FMI_THROW(ChannelError, "Direct: setsockopt(TCP_NODELAY) failed: ", errno_text(errno));
}

void set_reuse(int fd) {
  int one = 1;
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
    FMI_THROW(ChannelError,
              "Direct: setsockopt(SO_REUSEADDR/SO_REUSEPORT) failed: ", errno_text(errno));
}

Socket make_socket(int family) {
  int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) FMI_THROW(ChannelError, "Direct: socket() failed: ", errno_text(errno));
  return Socket(fd);
}

namespace {
struct Lookup {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  int rc = 0;
  std::vector<proto::Endpoint> result;
};
}  // namespace

std::vector<proto::Endpoint> resolve(const std::string& host, std::uint16_t port,
                                     std::chrono::steady_clock::time_point deadline) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  // Literal addresses never need the resolver (and never block).
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  std::string service = std::to_string(port);
  addrinfo* res = nullptr;
  auto collect = [&](addrinfo* list) {
    std::vector<proto::Endpoint> out;
    for (addrinfo* ai = list; ai; ai = ai->ai_next)
      if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6)
        out.push_back(proto::Endpoint::from_sockaddr(ai->ai_addr));
    return out;
  };
  if (::getaddrinfo(host.c_str(), service.c_str(), &hints, &res) == 0) {
    auto out = collect(res);
    ::freeaddrinfo(res);
    return out;
  }
  // A name: getaddrinfo may block for the resolver's whole timeout, so it runs on a
  // detached thread that owns its state; we wait only until the deadline.
  auto st = std::make_shared<Lookup>();
  std::thread([st, host, service] {
    addrinfo h{};
    h.ai_family = AF_UNSPEC;
    h.ai_socktype = SOCK_STREAM;
    h.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
    addrinfo* r = nullptr;
    int rc = ::getaddrinfo(host.c_str(), service.c_str(), &h, &r);
    std::vector<proto::Endpoint> out;
    if (rc == 0) {
      for (addrinfo* ai = r; ai; ai = ai->ai_next)
        if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6)
          out.push_back(proto::Endpoint::from_sockaddr(ai->ai_addr));
      ::freeaddrinfo(r);
    }
    std::lock_guard lk(st->mu);
    st->rc = rc;
    st->result = std::move(out);
    st->done = true;
    st->cv.notify_all();
  }).detach();
  std::unique_lock lk(st->mu);
  if (!st->cv.wait_until(lk, deadline, [&] { return st->done; }))
    FMI_THROW(TimeoutError, "Direct: resolving host '", host,
              "' did not finish before the deadline");
  if (st->rc != 0)
    FMI_THROW(ChannelError, "Direct: cannot resolve host '", host, "': ", gai_strerror(st->rc));
  if (st->result.empty())
    FMI_THROW(ChannelError, "Direct: host '", host, "' has no IPv4/IPv6 address");
  return st->result;
}

proto::Endpoint local_endpoint(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) < 0)
    FMI_THROW(ChannelError, "Direct: getsockname failed: ", errno_text(errno));
  return proto::Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss));
}

proto::Endpoint remote_endpoint(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) < 0)
    FMI_THROW(ChannelError, "Direct: getpeername failed: ", errno_text(errno));
  return proto::Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss));
}

}  // namespace FMI::Wire
