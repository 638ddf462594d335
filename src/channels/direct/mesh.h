// The hole-punching client of the Direct channel: registers once with the
// rendezvous server, then opens exactly one TCP connection per pair of peers.
//
// Every function binds one local port P (SO_REUSEADDR + SO_REUSEPORT) and uses it
// for everything: its connection to the server (so the server sees, and tells the
// others, the public address:port that P maps to on the function's NAT), a
// listening socket, and every outgoing connection attempt to another peer. Both
// peers of a pair connect to each other's public endpoint at the same time: each
// side's SYN opens its own NAT for the other's, and the TCP connection forms either
// by simultaneous open or by an accept. Several candidate connections can form for
// one pair (public and private endpoints, accept and connect), so every candidate
// runs a handshake:
//
//   both sides:  HELLO {comm, own peer id, own session}   (validated against the table)
//   lower id:    DECIDE {accept}  on the first valid candidate, DECIDE {reject} on others
//
// With a shared secret (docs/security.md) both sides send PROOF after the HELLOs
// crossed: an HMAC over the comm, both peer ids, both sessions and both HELLO
// nonces. The lower id decides only after the other's PROOF verified, and the
// higher id waits for DECIDE only after verifying the lower's, so a stranger who
// learned an endpoint cannot take a peer's place. A failed proof drops that
// candidate only; the pair keeps trying until the deadline.
//
// Only the lower peer id decides, and the higher one keeps exactly the candidate it
// was told to accept, so both sides agree on one connection per pair.
//
// No global state; one Mesh per channel instance; not thread-safe (the channel is
// used by one thread). Every blocking step takes a deadline.
#pragma once

#include <poll.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "wire/auth.h"
#include "wire/net.h"
#include "wire/protocol.h"

namespace FMI::Direct {

// The wire library (src/wire/) under the names the channel has always used.
namespace proto = Wire::proto;
namespace auth = Wire::auth;
using Wire::errno_text;
using Wire::local_endpoint;
using Wire::make_socket;
using Wire::resolve;
using Wire::set_nodelay;
using Wire::set_reuse;
using Wire::Socket;

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;

/// When to relay a pair's traffic through the rendezvous server.
enum class RelayMode {
  automatic,  // after punching failed for a while (sooner if a NAT rewrote ports)
  always,     // never punch (tests, networks known to need it)
  never,      // punch only; a pair that cannot punch fails with ChannelError
};

struct MeshOptions {
  std::string server_host;
  std::uint16_t server_port = 10000;
  std::string comm;
  std::uint32_t peer_id = 0;
  std::uint32_t num_peers = 1;
  RelayMode relay = RelayMode::automatic;
  std::string secret;  // shared secret; empty: no authentication
};

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
  int fd(std::uint32_t peer) const { return peers_[peer].conn.fd(); }

  /// Opens connections to every peer in `peers` that has none yet (the other side
  /// must be connecting too, or already be connected to us), servicing handshakes
  /// of every other pair meanwhile. `op` names the caller in error messages.
  /// Throws PeerError (connection broken earlier), ChannelError (server error,
  /// punching failed) or TimeoutError.
  void connect(std::span<const std::uint32_t> peers, Deadline deadline, const char* op);

  /// Appends the descriptors the mesh needs watched while the channel waits for
  /// data (listener, handshakes in progress, server): connections from other
  /// peers keep being accepted, so a peer never waits on one that waits for data.
  void add_pollfds(std::vector<pollfd>& fds) const;
  /// Processes the revents of the `n` entries add_pollfds appended at `first`.
  void handle(const pollfd* first, std::size_t n);

  /// Closes the connection to `peer` after a failure; later calls that need it
  /// throw PeerError with `why`.
  void mark_broken(std::uint32_t peer, const std::string& why);
  /// Why the connection to `peer` is broken ("" when it is not).
  const std::string& broken(std::uint32_t peer) const { return peers_[peer].broken; }

  const proto::Endpoint& local() const { return local_; }
  std::string server_str() const;

 private:
  enum class CState { hello, hello_pending_table, proof, decide };
  struct Candidate {
    Socket sock;
    std::int64_t peer = -1;  // known for outgoing attempts, from HELLO for accepted ones
    CState state = CState::hello;
    std::vector<std::byte> in;
    std::size_t need = proto::kHeaderSize;
    bool header_done = false;
    proto::Hello hello;
    proto::Nonce nonce{};  // ours, sent in our HELLO (with a secret)
    Clock::time_point started;
    std::string remote;
  };
  struct Attempt {
    Socket sock;
    std::uint32_t peer = 0;
    proto::Endpoint target;
    Clock::time_point started;
    Clock::duration timeout{};
    bool relay = false;         // a connection to the server asking for a relay
    bool connected = false;     // relay: TCP connected; reading the server's frames
    bool relay_sent = false;    // RELAY written; waiting for RELAY_READY
    std::vector<std::byte> in;  // the server's frame (CHALLENGE, RELAY_READY) as it arrives
  };
  struct PeerState {
    Socket conn;
    std::string broken;
    bool wanted = false;
    bool tcp_ever = false;  // a TCP connection formed at least once (handshake pending)
    Clock::time_point next_attempt{};
    std::chrono::milliseconds backoff{5};
    std::chrono::milliseconds attempt_timeout{250};
    Clock::time_point first_attempt{};  // when punching this pair started
    bool relay_started = false;
    std::string relay_error;
    std::string last_error;
    std::string auth_error;  // why the last candidate failed authentication
  };

  bool try_register(const std::vector<proto::Endpoint>& eps, Deadline deadline,
                    std::string& last);
  void read_server();
  void on_table(proto::Table t);
  void start_attempts(std::uint32_t p, Clock::time_point now);
  void start_relay(std::uint32_t p, Clock::time_point now);
  Clock::time_point relay_time(std::uint32_t p) const;
  bool relay_step(Attempt& a);  // false: attempt finished (socket moved or closed)
  void on_attempt_event(std::size_t i, short revents);
  void new_candidate(Socket s, std::int64_t peer, const std::string& remote);
  bool read_candidate(Candidate& c);  // false: drop it
  bool on_hello(Candidate& c);
  bool decide(Candidate& c);  // after HELLO (and PROOF): DECIDE, or wait for it
  void auth_failed(const Candidate& c, const std::string& why);
  proto::Message read_one_frame(int fd, Deadline deadline, const char* what);
  void adopt(Candidate& c, std::uint32_t peer);
  void drop_pair_leftovers(std::uint32_t peer);
  void accept_all();
  void timers(Clock::time_point now);
  Clock::time_point next_timer() const;
  std::vector<proto::Endpoint> targets(std::uint32_t p) const;

  MeshOptions opt_;
  std::uint64_t session_ = 0;
  proto::Endpoint local_;       // private endpoint (the address we reach the server from)
  proto::Endpoint bind_addr_;   // wildcard address with our port
  proto::Endpoint server_ep_;
  Socket listener_;
  Socket server_;
  std::vector<std::byte> server_in_;
  std::string server_error_;
  bool have_table_ = false;
  proto::Table table_;
  std::vector<PeerState> peers_;
  std::vector<std::unique_ptr<Candidate>> cands_;
  std::vector<Attempt> attempts_;
};

}  // namespace FMI::Direct
