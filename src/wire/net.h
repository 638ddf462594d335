// Small POSIX socket helpers of the fmi_wire library, shared by the Direct channel
// and fmi-rendezvous: an owning file descriptor, socket options, and name
// resolution with a deadline.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "wire/protocol.h"

namespace FMI::Wire {

/// Owns one file descriptor; closes it on destruction. Move-only.
class Socket {
 public:
  Socket() = default;
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket() { reset(); }
  Socket(Socket&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Socket& operator=(Socket&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  int fd() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }
  void reset() noexcept;
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_ = -1;
};

/// "strerror(errno)" for messages.
std::string errno_text(int err);

void set_nonblocking(int fd);
void set_nodelay(int fd);
/// SO_REUSEADDR + SO_REUSEPORT: the hole-punching client binds its listener, its
/// connection to the server and every outgoing attempt to the same local port.
void set_reuse(int fd);

/// A socket of `family`, non-blocking and close-on-exec. Throws ChannelError.
Socket make_socket(int family);

/// Resolves host:port (names and literal addresses), waiting at most until
/// `deadline` (getaddrinfo itself has no timeout, so it runs on a helper thread).
/// Throws ChannelError when nothing resolves, TimeoutError when the deadline passes.
std::vector<proto::Endpoint> resolve(const std::string& host, std::uint16_t port,
                                     std::chrono::steady_clock::time_point deadline);

/// Local address of a socket.
proto::Endpoint local_endpoint(int fd);
/// Address of the other end of a connected socket.
proto::Endpoint remote_endpoint(int fd);

}  // namespace FMI::Wire
