// One exception hierarchy for all of FMI. Policy (docs/errors.md): every failure
// that the caller can act on is thrown as an FMI::Error subclass whose message says
// what failed, where (operation, peer, address, config field) and, for timeouts,
// after how long. Nothing is only logged.
#pragma once

#include <chrono>
#include <stdexcept>
#include <string>

namespace FMI {

/// Root of every exception FMI throws. Catch this to handle any FMI failure.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A blocking call passed its deadline (message names operation, peer, duration).
class TimeoutError : public Error {
 public:
  using Error::Error;
};

/// The configuration file is missing, unparsable, or a field is missing or ill-typed.
class ConfigError : public Error {
 public:
  using Error::Error;
};

/// Invalid arguments to an API call: a peer id or root out of range, buffer sizes
/// that do not match. Thrown before anything is sent or written.
class UsageError : public Error {
 public:
  using Error::Error;
};

/// A peer misbehaved or went away (connection closed, mismatched message).
class PeerError : public Error {
 public:
  using Error::Error;
};

/// A channel's transport failed: a server unreachable, an error reply, an I/O error.
class ChannelError : public Error {
 public:
  using Error::Error;
};

namespace Utils {
/// Name kept from the original FMI API so existing `catch (FMI::Utils::Timeout&)` works.
using Timeout = TimeoutError;
}  // namespace Utils

/// "1.5 s" / "250 ms": durations in error messages.
std::string format_duration(std::chrono::nanoseconds d);

}  // namespace FMI

#include <sstream>

namespace FMI::detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace FMI::detail

/// Throws ExcType with a message built by streaming the arguments:
/// FMI_THROW(UsageError, "gather: recv buffer holds ", n, " bytes, needs ", m).
#define FMI_THROW(ExcType, ...) throw ExcType(::FMI::detail::concat(__VA_ARGS__))
