// The one test harness of FMI (tests/README.md): how a test runs n peers.
//
//  - run_threads(n, fn): fn(rank) on n threads of this process; what each throws
//    is returned (expect_no_errors reports it naming the peer). For channels whose
//    peers may share a process as long as each has its own channel object.
//  - run_peers(n, kind, body): a communicator of n peers as n threads over the
//    in-process channels (include/fmi/inproc.h), body(comm) on each.
//  - run_forked(n, fn): fn(rank) in n forked processes, reaped with waitpid (the
//    rest killed after a limit); a peer that throws prints its error on stderr,
//    which reaches the test's output, and exits 1 (expect_all_ok reports it).
//  - PEER_CHECK(cond, ...): a check that throws with file:line, usable in any peer
//    (gtest's EXPECT_* do not reach the parent from a forked process).
//  - data patterns and comparisons that name the first differing byte.
//
// A peer can never hang a test: every channel bounds each blocked call by its
// max_timeout, so a peer whose partner failed ends with a TimeoutError, which is
// reported too; forked peers are also killed after the runner's limit.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <iostream>
#include <memory>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "fmi/fmi.h"

namespace fmitest {

using namespace std::chrono_literals;
using FMI::Utils::peer_num;

/// Throws (in any peer, thread or process) with file:line when a condition fails.
#define PEER_CHECK(cond, ...)                                                                   \
  do {                                                                                          \
    if (!(cond))                                                                                \
      throw std::runtime_error(::FMI::detail::concat(                                           \
          __FILE__, ":", __LINE__, ": check `" #cond "` failed. " __VA_OPT__(, ) __VA_ARGS__)); \
  } while (0)

enum class Kind { p2p, store };

inline const char* kind_name(Kind k) { return k == Kind::p2p ? "p2p" : "store"; }
inline void PrintTo(Kind k, std::ostream* os) { *os << kind_name(k); }

inline std::shared_ptr<FMI::Comm::Channel> endpoint(FMI::Comm::InProcessHub& hub, Kind k) {
  if (k == Kind::p2p) return hub.p2p_endpoint();
  return hub.store_endpoint();
}

/// The what() of an exception_ptr, prefixed with its FMI type.
inline std::string describe(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const FMI::TimeoutError& x) {
    return std::string("FMI::TimeoutError: ") + x.what();
  } catch (const FMI::UsageError& x) {
    return std::string("FMI::UsageError: ") + x.what();
  } catch (const FMI::PeerError& x) {
    return std::string("FMI::PeerError: ") + x.what();
  } catch (const FMI::ChannelError& x) {
    return std::string("FMI::ChannelError: ") + x.what();
  } catch (const FMI::ConfigError& x) {
    return std::string("FMI::ConfigError: ") + x.what();
  } catch (const FMI::Error& x) {
    return std::string("FMI::Error: ") + x.what();
  } catch (const std::exception& x) {
    return std::string("std::exception: ") + x.what();
  } catch (...) {
    return "unknown exception";
  }
}

struct RunOptions {
  std::chrono::milliseconds max_timeout = 10s;
  std::string comm_name = "test";
  /// Store kind: after every communicator is destroyed, the store must be empty.
  bool check_store_empty = true;
};

/// Result of one run: per peer, the exception it ended with (null if none).
struct RunResult {
  std::vector<std::exception_ptr> errors;
  std::size_t objects_left = 0;
};

/// Runs `body(comm)` on n peers (threads) and returns what each one threw.
inline RunResult run_peers_raw(peer_num n, Kind kind,
                               const std::function<void(FMI::Communicator&)>& body,
                               const RunOptions& opt = {}) {
  auto hub = std::make_shared<FMI::Comm::InProcessHub>(n, opt.max_timeout);
  RunResult r;
  r.errors.resize(n);
  std::vector<std::thread> threads;
  threads.reserve(n);
  for (peer_num i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      try {
        FMI::Config cfg;
        FMI::Communicator comm(i, n, cfg, opt.comm_name);
        comm.register_channel("inproc", endpoint(*hub, kind));
        body(comm);
      } catch (...) {
        r.errors[i] = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  r.objects_left = hub->objects_in_store();
  return r;
}

/// Runs `body` on n peers; every peer's exception becomes a test failure naming it.
inline void run_peers(peer_num n, Kind kind, const std::function<void(FMI::Communicator&)>& body,
                      const RunOptions& opt = {}) {
  RunResult r = run_peers_raw(n, kind, body, opt);
  for (peer_num i = 0; i < n; ++i) {
    if (r.errors[i]) {
      ADD_FAILURE() << "peer " << i << " of " << n << " (" << kind_name(kind) << ") threw "
                    << describe(r.errors[i]);
    }
  }
  if (kind == Kind::store && opt.check_store_empty) {
    EXPECT_EQ(r.objects_left, 0u) << "objects left in the in-process store after every "
                                     "communicator was destroyed";
  }
}

// ---- generic runners ------------------------------------------------------------

/// Runs fn(rank) on n threads; returns, per rank, what it threw (null if nothing).
inline std::vector<std::exception_ptr> run_threads(unsigned n,
                                                   const std::function<void(unsigned)>& fn) {
  std::vector<std::exception_ptr> errors(n);
  std::vector<std::thread> threads;
  threads.reserve(n);
  for (unsigned i = 0; i < n; ++i)
    threads.emplace_back([&, i] {
      try {
        fn(i);
      } catch (...) {
        errors[i] = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  return errors;
}

/// One failure per peer that threw, naming it and its exception.
inline void expect_no_errors(const std::vector<std::exception_ptr>& errors,
                             const std::string& what = {}) {
  for (std::size_t i = 0; i < errors.size(); ++i)
    if (errors[i])
      ADD_FAILURE() << "peer " << i << " of " << errors.size() << (what.empty() ? "" : " (") << what
                    << (what.empty() ? "" : ")") << " threw " << describe(errors[i]);
}

struct PeerResult {
  bool exited = false;
  int code = -1;   // exit code when exited
  int signal = 0;  // terminating signal otherwise
};

/// The body of a forked peer: runs fn(p), then exits 0, or prints the error on
/// stderr and exits 1 (never returns into the test's own code).
[[noreturn]] inline void run_peer_and_exit(unsigned p, unsigned n,
                                           const std::function<void(unsigned)>& fn) {
  int code = 0;
  try {
    fn(p);
  } catch (...) {
    std::cerr << "peer " << p << " of " << n << " failed: " << describe(std::current_exception())
              << std::endl;
    code = 1;
  }
  std::cerr.flush();
  ::_exit(code);
}

/// Prints the stack of every thread of `pid` on stderr (gdb, installed by
/// scripts/install-deps.sh), so that a peer killed for hanging says where it hung:
/// a hang in CI is otherwise a bare "killed by signal 9".
inline void dump_stacks(pid_t pid) {
  const std::string cmd = "timeout 60 gdb -p " + std::to_string(pid) +
                          " -batch -nx -ex 'thread apply all bt' </dev/null 1>&2 2>/dev/null";
  if (std::system(cmd.c_str()) != 0) std::cerr << "(no stacks: gdb failed or is missing)\n";
}

/// Runs fn(peer) in `n` forked processes and waits for all (killing the rest after
/// `limit`). A peer that throws prints the message and exits 1.
inline std::vector<PeerResult> run_forked(unsigned n, const std::function<void(unsigned)>& fn,
                                          std::chrono::seconds limit = std::chrono::seconds(90)) {
  std::cout.flush();
  std::cerr.flush();
  std::vector<pid_t> pids;
  for (unsigned p = 0; p < n; ++p) {
    pid_t pid = ::fork();
    if (pid == 0) run_peer_and_exit(p, n, fn);
    pids.push_back(pid);
  }
  std::vector<PeerResult> res(n);
  unsigned left = n;
  auto until = std::chrono::steady_clock::now() + limit;
  while (left > 0) {
    for (unsigned p = 0; p < n; ++p) {
      if (pids[p] <= 0) continue;
      int st;
      if (::waitpid(pids[p], &st, WNOHANG) == pids[p]) {
        res[p].exited = WIFEXITED(st);
        res[p].code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        res[p].signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
        pids[p] = -1;
        --left;
      }
    }
    if (left == 0) break;
    if (std::chrono::steady_clock::now() > until) {
      for (unsigned p = 0; p < n; ++p)
        if (pids[p] > 0) {
          std::cerr << "peer " << p << " still running after " << limit.count()
                    << " s: killing it; where its threads are:" << std::endl;
          dump_stacks(pids[p]);
          ::kill(pids[p], SIGKILL);
          ::waitpid(pids[p], nullptr, 0);
          res[p].signal = SIGKILL;
          pids[p] = -1;
        }
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return res;
}

/// Asserts every forked peer exited with 0 (their errors are on stderr above).
inline void expect_all_ok(const std::vector<PeerResult>& res) {
  for (std::size_t p = 0; p < res.size(); ++p) {
    EXPECT_TRUE(res[p].exited && res[p].code == 0)
        << "peer " << p << ": "
        << (res[p].exited ? "exit code " + std::to_string(res[p].code)
                          : "killed by signal " + std::to_string(res[p].signal));
  }
}

/// The running test's name, as a communicator name of its own (at most 200 bytes).
inline std::string comm_name() {
  auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string n = std::string(info->test_suite_name()) + "." + info->name();
  return n.size() > 200 ? n.substr(n.size() - 200) : n;
}

// ---- data patterns ---------------------------------------------------------------

/// A byte that depends on the peer, the block and the index, so that a block put in
/// the wrong place, shifted, or from the wrong peer is caught.
inline std::uint8_t pattern(std::uint32_t peer, std::uint32_t block, std::size_t i) {
  std::uint32_t h = (peer + 1) * 0x9E3779B1u ^ (block + 7) * 0x85EBCA77u ^
                    static_cast<std::uint32_t>(i) * 0xC2B2AE3Du ^
                    static_cast<std::uint32_t>(i >> 32);
  h ^= h >> 15;
  h *= 0x2C1B3C6Du;
  h ^= h >> 12;
  return static_cast<std::uint8_t>(h);
}

inline void fill_pattern(std::span<std::byte> out, std::uint32_t peer, std::uint32_t block) {
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = std::byte{pattern(peer, block, i)};
}

/// Compares bytes; on mismatch, one failure naming the first differing offset.
inline ::testing::AssertionResult bytes_equal(std::span<const std::byte> actual,
                                              std::span<const std::byte> expected) {
  if (actual.size() != expected.size())
    return ::testing::AssertionFailure()
           << "size " << actual.size() << " bytes, expected " << expected.size();
  if (actual.empty() || std::memcmp(actual.data(), expected.data(), actual.size()) == 0)
    return ::testing::AssertionSuccess();
  std::size_t i = 0;
  while (actual[i] == expected[i]) ++i;
  std::size_t diffs = 0;
  for (std::size_t k = i; k < actual.size(); ++k) diffs += actual[k] != expected[k];
  return ::testing::AssertionFailure()
         << "first difference at byte " << i << " of " << actual.size() << ": got "
         << int(actual[i]) << ", expected " << int(expected[i]) << " (" << diffs
         << " bytes differ)";
}

template <typename E>
::testing::AssertionResult elems_equal(const std::vector<E>& actual,
                                       const std::vector<E>& expected) {
  if (actual.size() != expected.size())
    return ::testing::AssertionFailure()
           << "size " << actual.size() << " elements, expected " << expected.size();
  for (std::size_t i = 0; i < actual.size(); ++i) {
    if (std::memcmp(&actual[i], &expected[i], sizeof(E)) != 0) {
      std::size_t diffs = 0;
      for (std::size_t k = i; k < actual.size(); ++k)
        diffs += std::memcmp(&actual[k], &expected[k], sizeof(E)) != 0;
      return ::testing::AssertionFailure()
             << "first difference at element " << i << " of " << actual.size() << ": got "
             << +actual[i] << ", expected " << +expected[i] << " (" << diffs << " elements differ)";
    }
  }
  return ::testing::AssertionSuccess();
}

/// Peer counts of the suite, and the subset that also runs 4 MiB messages.
inline const std::vector<peer_num> kPeerCounts = {1, 2, 3, 4, 5, 7, 8, 9, 16};
inline bool big_for(peer_num n) { return n == 2 || n == 3 || n == 8; }
inline constexpr std::size_t kBig = 4u << 20;

/// Roots {0, middle, last} without duplicates.
inline std::vector<peer_num> roots_for(peer_num n) {
  std::vector<peer_num> r = {0};
  if (n / 2 != 0) r.push_back(n / 2);
  if (n - 1 != 0 && n - 1 != n / 2) r.push_back(n - 1);
  return r;
}

}  // namespace fmitest
