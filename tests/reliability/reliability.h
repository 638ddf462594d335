// Shared helpers of the reliability tests (bad input, faults, soak):
//  - expect_error<E>(call, {"part", ...}): the call throws exactly E (not another
//    FMI::Error), whose message contains every part;
//  - run_some(): peers as threads where some peers never arrive;
//  - RedisProcess: tests/support/redis_server.h's RedisServer (kill, restart on
//    the same port);
//  - SilentServer: a TCP port that accepts connections and never answers;
//  - process counters: open file descriptors and resident memory; mix() (splitmix64).
// moto (the S3 server) comes from tests/support/moto_server.h.
#pragma once

#include <dirent.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fmi/fmi.h"
#include "harness.h"
#include "moto_server.h"
#ifdef FMI_WITH_REDIS
#include "redis_server.h"
#endif

namespace fmirel {

using namespace std::chrono_literals;
using FMI::Utils::peer_num;
using fmitest::describe;
using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

/// Fails unless `call` throws exactly E with a message containing every part.
template <typename E, typename F>
::testing::AssertionResult throws(F&& call, std::initializer_list<std::string> parts,
                                  std::string* message = nullptr) {
  try {
    call();
  } catch (const E& e) {
    const std::string m = e.what();
    if (message) *message = m;
    // A subclass of E (e.g. TimeoutError when Error was asked) must be asked for by name.
    if (typeid(e) != typeid(E))
      return ::testing::AssertionFailure()
             << "threw " << describe(std::current_exception()) << ", not exactly the expected type";
    for (const auto& p : parts)
      if (m.find(p) == std::string::npos)
        return ::testing::AssertionFailure() << "message \"" << m << "\" lacks \"" << p << "\"";
    return ::testing::AssertionSuccess() << m;
  } catch (...) {
    return ::testing::AssertionFailure() << "threw " << describe(std::current_exception());
  }
  return ::testing::AssertionFailure() << "did not throw";
}

/// The error class of an exception, for tables ("TimeoutError", "PeerError", ...).
inline std::string type_of(std::exception_ptr e) {
  if (!e) return "none";
  const std::string d = describe(e);
  return d.substr(0, d.find(':'));
}

/// What one peer of run_some ended with and when.
struct PeerOutcome {
  std::exception_ptr error;
  double seconds = 0;  // from the start of the run to the end of the peer's body
  Clock::time_point end{};
};

/// Runs body(comm) for peers 0..present-1 of a communicator of `total` peers: the
/// others never arrive. `make_channel(i)` gives peer i's channel (registered as
/// "ch") or nullptr when the config's own channels are used.
inline std::vector<PeerOutcome> run_some(
    peer_num present, peer_num total, const FMI::Config& cfg, const std::string& name,
    const std::function<std::shared_ptr<FMI::Comm::Channel>(peer_num)>& make_channel,
    const std::function<void(FMI::Communicator&)>& body) {
  std::vector<PeerOutcome> out(present);
  std::vector<std::thread> ts;
  const auto t0 = Clock::now();
  for (peer_num i = 0; i < present; ++i)
    ts.emplace_back([&, i] {
      try {
        FMI::Communicator comm(i, total, cfg, name);
        if (make_channel) comm.register_channel("ch", make_channel(i));
        try {
          body(comm);
        } catch (...) {
          out[i].end = Clock::now();
          out[i].seconds = seconds_since(t0);
          throw;
        }
        out[i].end = Clock::now();
        out[i].seconds = seconds_since(t0);
      } catch (...) {
        out[i].error = std::current_exception();
      }
    });
  for (auto& t : ts) t.join();
  return out;
}

/// A port that accepts TCP connections (the kernel completes the handshake from the
/// backlog) and never reads or answers: a server that hangs.
class SilentServer {
 public:
  SilentServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(fd_, 64) != 0 || ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      throw std::runtime_error("SilentServer: cannot listen on 127.0.0.1");
    port_ = ntohs(a.sin_port);
  }
  ~SilentServer() { ::close(fd_); }
  SilentServer(const SilentServer&) = delete;
  SilentServer& operator=(const SilentServer&) = delete;
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

#ifdef FMI_WITH_REDIS
/// A redis-server that can be killed and started again on the same port.
using RedisProcess = fmitest::RedisServer;
#endif

/// splitmix64's finaliser: a well-mixed 64-bit value from a counter (checksums and
/// deterministic data).
inline std::uint64_t mix(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

/// Open file descriptors of this process.
inline int open_fds() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') ++n;
    ::closedir(d);
    --n;  // the directory stream itself
  }
  return n;
}

/// Resident set size of this process in bytes.
inline std::size_t rss_bytes() {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return static_cast<std::size_t>(resident) * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

/// Test credentials for moto (it accepts any SigV4 signature).
inline void set_test_aws_env() {
  ::setenv("AWS_ACCESS_KEY_ID", "testing", 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", "testing", 1);
  ::unsetenv("AWS_SESSION_TOKEN");
}

}  // namespace fmirel
