// Small socket steps of the control plane used by the server session, the puncher
// and the mesh alike (internal to src/channels/direct/).
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <time.h>

#include <cerrno>
#include <string>
#include <vector>

#include "channels/direct/options.h"
#include "fmi/errors.h"

namespace FMI::Direct {

/// ppoll until `until` (at once if it passed). EINTR counts as "nothing ready".
inline int poll_until(std::vector<pollfd>& fds, Deadline until) {
  auto left = until - Clock::now();
  if (left < Clock::duration::zero()) left = Clock::duration::zero();
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
  timespec ts{time_t(ns / 1000000000), long(ns % 1000000000)};
  int r = ::ppoll(fds.data(), fds.size(), &ts, nullptr);
  if (r < 0 && errno != EINTR) FMI_THROW(ChannelError, "Direct: poll failed: ", errno_text(errno));
  return r;
}

/// Writes one whole frame without blocking; false when it did not all go out.
inline bool send_frame(int fd, const proto::Message& m) {
  auto frame = proto::encode(m);
  // Control frames are tens of bytes on a fresh connection whose send buffer is
  // empty: a short write means the connection is unusable, never "try later".
  ssize_t w;
  do {
    w = ::send(fd, frame.data(), frame.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (w < 0 && errno == EINTR);
  return w == ssize_t(frame.size());
}

inline std::string ms_text(Clock::duration d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()) + " ms";
}

}  // namespace FMI::Direct
