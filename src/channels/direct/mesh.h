// The control plane of the Direct channel: registers once with the rendezvous
// server, then opens exactly one TCP connection per pair of peers.
//
// Every function binds one local port P (SO_REUSEADDR + SO_REUSEPORT) and uses it
// for everything: its connection to the server (so the server sees, and tells the
// others, the public address:port that P maps to on the function's NAT), a
// listening socket, and every outgoing connection attempt to another peer. Both
// peers of a pair connect to each other's public endpoint at the same time: each
// side's SYN opens its own NAT for the other's, and the TCP connection forms either
// by simultaneous open or by an accept. Pairs whose NATs cannot be punched have
// their bytes relayed by the server.
//
// The mesh is two parts and the policy between them:
//   - ServerSession (server_session.h): registration, the endpoint table and relay
//     requests, everything said to the rendezvous server;
//   - Puncher (puncher.h): attempts, candidates, the handshake and its
//     authentication, everything said to other peers;
//   - Mesh (here): which pairs are wanted, when to punch and when to fall back to
//     the relay (both sides compute it from the same table), the deadline, and the
//     errors that explain a failure with what both parts saw.
//
// No global state; one Mesh per channel instance; not thread-safe: the channel
// calls it under its lock, and only the thread that drives progress (the leader,
// direct_channel.h) polls and handles its descriptors. Nothing here blocks: a
// caller that needs connections says so with want() and waits in the channel's
// progress loop, which calls timers()/handle() and checks ready().
#pragma once

#include <poll.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "channels/direct/options.h"
#include "channels/direct/puncher.h"
#include "channels/direct/server_session.h"

namespace FMI::Direct {

class Mesh {
 public:
  /// Binds the local port, listens on it, connects to the rendezvous server and
  /// sends the registration. Does not wait for the other peers (that happens on
  /// first use). Throws ChannelError (server unreachable) or TimeoutError.
  Mesh(MeshOptions opt, Deadline deadline);
  ~Mesh();
  Mesh(const Mesh&) = delete;
  Mesh& operator=(const Mesh&) = delete;

  /// The established connection to `peer`, or -1.
  int fd(std::uint32_t peer) const { return puncher_.fd(peer); }
  /// The keys of that connection (null with encryption off).
  secure::Link* link(std::uint32_t peer) const { return puncher_.link(peer); }

  /// Starts wanting connections to `peers` (counted: every want() is paired with
  /// an unwant() by the same caller): while some caller wants a peer that has no
  /// connection yet, timers() punches towards it and falls back to the relay.
  void want(std::span<const std::uint32_t> peers);
  void unwant(std::span<const std::uint32_t> peers);
  /// True when every peer in `peers` has a connection. Throws PeerError (a
  /// connection broken earlier) or ChannelError (the server refused the
  /// registration); `op` names the caller.
  bool ready(std::span<const std::uint32_t> peers, const char* op) const;
  /// Throws the error that explains why the wait for `peers` that began at `start`
  /// ran out of time (no table, authentication, handshake, punching, relay).
  /// `full_wait` false: the call had a deadline shorter than max_timeout; a
  /// connection still being opened with no attempt failed is then its
  /// TimeoutError, not a punching failure.
  [[noreturn]] void connect_timed_out(std::span<const std::uint32_t> peers, Clock::time_point start,
                                      const char* op, bool full_wait = true) const;
  /// Punching rounds, relay fallbacks and handshake expiry that are due by `now`;
  /// next_timer() is when the next one is.
  void timers(Clock::time_point now);
  Clock::time_point next_timer() const;
  /// When a handshake in progress next expires (strangers on the listener that
  /// never complete their HELLO): a wait that watches the control plane wakes up
  /// then, connecting or not.
  Clock::time_point next_expiry() const { return puncher_.next_expiry(); }

  /// True once every other peer has a connection (or a broken one) and no relay
  /// request is on its way: the control plane has nothing left to do, and data
  /// waits need not watch it. A request started by a data wait's timers (a
  /// receive whose connection was closed under the budget) is read only if the
  /// wait watches it; unwatched, it never reached the server and the pair, relayed
  /// only when both sides ask, stalled until the deadline.
  bool complete() const { return puncher_.settled() && !session_.any_relay_pending(); }

  /// Appends the descriptors the mesh needs watched while the channel waits for
  /// data (listener, handshakes in progress, server, relay requests): connections
  /// from other peers keep being accepted, so a peer never waits on one that
  /// waits for data.
  void add_pollfds(std::vector<pollfd>& fds) const;
  /// Processes the revents of the `n` entries add_pollfds appended at `first`.
  void handle(const pollfd* first, std::size_t n);

  /// Closes the connection to `peer` after a failure; later calls that need it
  /// throw PeerError with `why`.
  void mark_broken(std::uint32_t peer, const std::string& why) { puncher_.mark_broken(peer, why); }
  /// Why the connection to `peer` is broken ("" when it is not).
  const std::string& broken(std::uint32_t peer) const { return puncher_.broken(peer); }
  /// Takes the established connection to `peer` out of the mesh (closed cleanly by
  /// the channel); the pair can be connected again (want()).
  Puncher::Detached detach(std::uint32_t peer);
  /// Established connections.
  std::size_t open_connections() const { return puncher_.open_connections(); }
  /// Connections on their way: pairs wanted without a connection yet, and accepted
  /// connections admitted into their handshake (the budget counts both).
  std::size_t pending_connections() const;
  /// Of those, the accepted ones admitted into their handshake.
  std::size_t admitted() const { return puncher_.admitted(); }
  /// The budget's gate on accepted connections (puncher.h).
  void set_admit(std::function<bool(std::uint32_t)> admit) { puncher_.set_admit(std::move(admit)); }
  void retry_held() { puncher_.retry_held(); }
  /// Pairs whose old connection is being closed: not punched or relayed until it is
  /// gone on both sides (puncher.h).
  void set_closing(std::function<bool(std::uint32_t)> closing) {
    puncher_.set_closing(std::move(closing));
  }
  /// Some caller wants a connection to `peer` (want() without its unwant() yet).
  bool wanted(std::uint32_t peer) const { return want_[peer].wanted > 0; }

  const proto::Endpoint& local() const { return session_.local(); }
  std::string server_str() const { return session_.server_str(); }

 private:
  struct Want {
    unsigned wanted = 0;                // callers waiting for this pair
    Clock::time_point first_attempt{};  // when punching this pair started
    Clock::time_point relay_retry{};    // a relay that ended unconnected is asked again then
  };

  static constexpr auto kRelayRetry = std::chrono::milliseconds(50);
  // How long after a TCP connection to a peer last formed, with no handshake left,
  // the pair still waits for punching before it asks for the relay (relay_time).
  static constexpr auto kTcpGrace = std::chrono::seconds(5);

  Clock::time_point relay_time(std::uint32_t p) const;
  bool relay_due(std::uint32_t p) const;

  MeshOptions opt_;  // before session_ and puncher_, which keep a reference
  ServerSession session_;
  Puncher puncher_;
  std::vector<Want> want_;                       // per peer
  std::vector<ServerSession::Relayed> relayed_;  // reused by handle()
};

}  // namespace FMI::Direct
