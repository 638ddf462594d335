// A raw client of fmi-rendezvous for the server tests: a plain TCP socket that
// speaks the wire protocol frame by frame, as a stranger (or a broken client) would,
// with every read bounded by a deadline. Shared by server_test.cpp and
// server_limits_test.cpp.
#pragma once

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <stdexcept>
#include <variant>
#include <vector>

#include "wire/net.h"
#include "wire/protocol.h"

namespace fmitest::raw {

using FMI::Wire::Socket;
namespace proto = FMI::Wire::proto;
using namespace std::chrono_literals;

// Bytes received past the last frame read, per socket.
inline std::map<int, std::vector<std::byte>> pending;

/// A connection to the server on loopback; with `rcvbuf` its receive buffer (and so
/// its TCP window) is that many bytes.
inline Socket connect_raw(std::uint16_t port, int rcvbuf = 0) {
  Socket s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (rcvbuf) EXPECT_EQ(::setsockopt(s.fd(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf), 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(s.fd(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  pending.erase(s.fd());
  return s;
}

inline void send_all(int fd, const void* p, std::size_t n) {
  EXPECT_EQ(::send(fd, p, n, MSG_NOSIGNAL), ssize_t(n));
}

/// Reads one frame (blocking, at most `limit`); nullopt if the server closed.
/// The CHALLENGE every connection starts with is skipped unless `challenge`.
inline std::optional<proto::Message> read_frame(int fd, std::chrono::milliseconds limit = 10s,
                                                bool challenge = false) {
  std::vector<std::byte>& buf = pending[fd];
  auto until = std::chrono::steady_clock::now() + limit;
  for (;;) {
    std::size_t used;
    if (auto m = proto::try_decode(buf, proto::kMaxReplyPayload, used)) {
      buf.erase(buf.begin(), buf.begin() + std::ptrdiff_t(used));
      if (!challenge && std::holds_alternative<proto::Challenge>(*m)) continue;
      return m;
    }
    pollfd p{fd, POLLIN, 0};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (left.count() <= 0 || ::poll(&p, 1, int(left.count())) <= 0)
      throw std::runtime_error("no frame from the server in time");
    std::byte tmp[4096];
    ssize_t r = ::recv(fd, tmp, sizeof tmp, 0);
    if (r <= 0) {
      buf.clear();
      return std::nullopt;
    }
    buf.insert(buf.end(), tmp, tmp + r);
  }
}

/// True once the server has closed `fd` (EOF or reset) within `limit`.
inline bool closed_by_server(int fd, std::chrono::milliseconds limit = 10s) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) > 0) {
      std::byte tmp[4096];
      ssize_t r = ::recv(fd, tmp, sizeof tmp, 0);
      if (r <= 0) return true;
    }
  }
  return false;
}

inline void send_frame(int fd, const proto::Message& m) {
  auto f = proto::encode(m);
  send_all(fd, f.data(), f.size());
}

}  // namespace fmitest::raw
