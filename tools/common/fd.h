// An owned POSIX file descriptor (closed on destruction; movable, not copyable),
// shared by the tools and the bench baselines: fmirun's pipes and namespaces,
// fmi-bench's temporary files and probe sockets, tcp_pingpong's sockets.
#pragma once

#include <unistd.h>

#include <utility>

namespace FMI::Tools {

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

}  // namespace FMI::Tools
