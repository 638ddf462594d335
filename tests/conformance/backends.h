// The channels under test of the conformance suite (tests/README.md), each behind
// one small interface, so that every contract and collective test is written once:
//
//   InProcP2P    the in-process point-to-point channel       (threads)
//   InProcStore  the in-process object store                 (threads)
//   Direct       TCP through a real fmi-rendezvous            (forked processes)
//   Redis        a real redis-server                          (threads, one channel each)
//   S3           a real S3 server (moto)                      (threads, one channel each)
//
// Direct peers are forked: a Direct channel owns sockets, a poll loop and the
// FMI_DIRECT_* environment, and functions are processes in production. Redis and
// S3 channels hold nothing but their connection, so peers as threads (each with its
// own channel, as functions would have) test the same thing and are cheaper.
//
// A server is started once per test process, on first use, and stopped at its end
// (ConformanceEnvironment); each backend's ctest is a process of its own.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "channel_factory.h"
#include "fmi/fmi.h"
#include "harness.h"

namespace fmitest::conformance {

using namespace std::chrono_literals;
using FMI::Utils::Clock;

inline FMI::Utils::Deadline in(std::chrono::milliseconds d) { return Clock::now() + d; }

/// The channels of one run: n peers of one communicator.
class Group {
 public:
  Group(unsigned n, std::string comm) : n_(n), comm_(std::move(comm)) {}
  virtual ~Group() = default;
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  /// A new, not initialised channel for `rank` (for Communicator::register_channel).
  virtual std::shared_ptr<FMI::Comm::Channel> make(unsigned rank) = 0;
  /// Objects in the store now; nullopt when the channel keeps none.
  virtual std::optional<std::size_t> objects() { return std::nullopt; }
  /// Everything the channels left in the store (objects and their bookkeeping,
  /// e.g. Redis's per-communicator index); must be 0 once every peer finalized.
  virtual std::optional<std::size_t> leftovers() { return objects(); }

  /// A channel for `rank`, initialised for this group.
  std::shared_ptr<FMI::Comm::Channel> open(unsigned rank, const std::string& comm = {}) {
    auto ch = make(rank);
    ch->init(FMI::Comm::ChannelContext{rank, n_, comm.empty() ? comm_ : comm, 128});
    return ch;
  }
  std::shared_ptr<FMI::Comm::PeerToPeerChannel> open_p2p(unsigned rank,
                                                         const std::string& comm = {});
  std::shared_ptr<FMI::Comm::ObjectStoreChannel> open_store(unsigned rank,
                                                            const std::string& comm = {});

  unsigned size() const { return n_; }
  const std::string& comm() const { return comm_; }

 private:
  unsigned n_;
  std::string comm_;
};

/// The axes a backend runs the collective suite on (see the table in
/// collectives_test.cpp and tests/README.md for why each one is cut where it is).
struct Axes {
  std::vector<unsigned> peers;            // peer counts
  std::vector<std::size_t> block_bytes;   // data movement: bytes per block
  std::vector<std::size_t> reduce_elems;  // reductions: uint64 elements per peer/block
  bool every_root = true;                 // {0, n/2, n-1}; otherwise {n-1}
  bool every_function = true;             // reductions: also the non-commutative ones
  std::size_t large_elems = 0;            // Communicator suite: the large count (int64)
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual FMI::Comm::ChannelKind kind() const = 0;
  virtual bool forked() const { return false; }
  /// The max_timeout the backend's channels are configured with.
  virtual std::chrono::milliseconds max_timeout() const = 0;
  /// Whether get() deletes an object after its last reader (else: at finalize).
  virtual bool counts_readers() const { return true; }
  /// Whether a receive whose size does not match leaves the buffer untouched
  /// (the in-process channel promises it; Direct has read into it by then).
  virtual bool keeps_buffer_on_mismatch() const { return false; }
  /// Bytes of the contract's "large message".
  virtual std::size_t large_message() const { return std::size_t(64) << 20; }
  virtual Axes axes() const = 0;
  /// A new group of n peers; starts the backend's server on first use.
  virtual std::unique_ptr<Group> group(unsigned n, const std::string& comm) = 0;
  /// For tests that wait out a timeout on purpose: a group whose channels time out
  /// after short_timeout() (Direct's max_timeout is long for its forked peers'
  /// set-up under the sanitizers; the others' are short already).
  virtual std::chrono::milliseconds short_timeout() const { return max_timeout(); }
  virtual std::unique_ptr<Group> short_group(unsigned n, const std::string& comm) {
    return group(n, comm);
  }
};

/// The backend called `name` ("InProcP2P", "InProcStore", "Direct", "Redis", "S3").
Backend& backend(const std::string& name);
/// The backends of this build (FMI_WITH_*), by kind.
std::vector<std::string> p2p_backends();
std::vector<std::string> store_backends();
std::vector<std::string> all_backends();

/// Runs body(rank, group) on every peer of a group of n on backend b: as threads or
/// as forked processes (backend.forked()); every failure names its peer.
void run(Backend& b, unsigned n, const std::function<void(unsigned, Group&)>& body,
         const std::string& comm = comm_name());
/// As run, on a group the caller made (to look at it after the peers are done).
void run_on(Backend& b, Group& g, const std::function<void(unsigned, Group&)>& body);

/// gtest parameter names: only [A-Za-z0-9_].
std::string param_name(std::string s);

}  // namespace fmitest::conformance
