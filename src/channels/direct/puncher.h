// The peer-to-peer half of the Direct channel's control plane: connection
// attempts from our port to a peer's endpoints (hole punching), connections the
// listener accepts or the server relays, and the handshake on every such
// candidate, until exactly one connection per pair is kept.
//
// Why a class of its own: it only ever talks to peers. What it needs from the
// rendezvous server is the endpoint table (given once by on_table()) and the
// relayed sockets (given to new_candidate() like any other candidate), so the
// handshake and its authentication are the same whichever way a TCP connection
// formed, and the server's protocol stays in server_session.h. When to punch and
// when to fall back to the relay is decided by the mesh (mesh.h), which composes
// both.
//
// The handshake on every candidate (several can form for one pair: public and
// private endpoints, accept and connect, relay):
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
// With encryption (the default, secure.h) every HELLO also carries an ephemeral
// X25519 key share and PROOF is sent with or without a secret: it is then the key
// confirmation of the keys derived from the exchange (salted with the secret when
// there is one), so it also fails when anything in the HELLOs was altered.
//
// Only the lower peer id decides, and the higher one keeps exactly the candidate
// it was told to accept, so both sides agree on one connection per pair.
//
// Strangers on the listener (docs/security.md, row 14): an accepted connection is
// "unverified" until its HELLO named our comm, a valid peer id and that peer's
// session. We answer only after its HELLO (the connecting side always speaks first,
// so nothing waits on us), which costs an idle stranger an accept and one recv,
// no key pair. Unverified connections have kHelloTimeout to complete their HELLO;
// beyond kMaxUnverifiedPerAddress from one address a new one that has not already
// said a complete HELLO is closed at once (counted, logged once per address and
// 10 s); beyond kMaxUnverified in total the oldest is closed, so strangers from
// many addresses cannot lock a real peer out, whose HELLO arrives within a round
// trip. Running out of descriptors pauses the listener instead of spinning on it.
#pragma once

#include <poll.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "channels/direct/options.h"
#include "channels/direct/secure.h"

namespace FMI::Direct {

class Puncher {
 public:
  /// `listener` listens on our port (bound by the server session); `bind_addr` is
  /// the wildcard address with that port, which every attempt binds too.
  /// `on_connected(p)` runs when the connection to peer p is settled.
  Puncher(const MeshOptions& opt, std::uint64_t session, proto::Endpoint bind_addr, Socket listener,
          std::function<void(std::uint32_t)> on_connected);
  Puncher(const Puncher&) = delete;
  Puncher& operator=(const Puncher&) = delete;

  /// The established connection to `peer`, or -1.
  int fd(std::uint32_t peer) const { return peers_[peer].conn.fd(); }
  /// The keys of that connection (null with encryption off).
  secure::Link* link(std::uint32_t peer) const { return peers_[peer].link.get(); }
  /// Closes the connection to `peer` after a failure; later calls that need it
  /// throw PeerError with `why`.
  void mark_broken(std::uint32_t peer, const std::string& why);
  /// Why the connection to `peer` is broken ("" when it is not).
  const std::string& broken(std::uint32_t peer) const { return peers_[peer].broken; }
  /// Every other peer has a connection or a broken one: nothing is left to set up.
  bool settled() const { return settled_ + 1 == peers_.size(); }
  /// Established connections (not broken).
  std::size_t open_connections() const { return open_; }
  /// Hands the established connection to `peer` over (the channel closes it cleanly,
  /// docs/direct.md "Connection budget"): the pair is unconnected again, not broken,
  /// and the next want() punches a new connection.
  struct Detached {
    Socket sock;
    std::unique_ptr<secure::Link> link;
  };
  Detached detach(std::uint32_t peer);

  /// The endpoint table arrived (it must outlive the puncher): validates the
  /// HELLOs that waited for it.
  void on_table(const proto::Table& table);

  /// Starts attempts towards `p`'s endpoints, unless some are still in flight or
  /// the backoff since the last round has not passed.
  void punch(std::uint32_t p, Clock::time_point now);
  /// When the next round of attempts towards `p` may start.
  Clock::time_point next_round(std::uint32_t p) const { return peers_[p].next_attempt; }
  /// Abandons attempts without an answer and handshakes that take too long.
  void expire(Clock::time_point now);
  /// The earliest time expire() has something to do.
  Clock::time_point next_expiry() const;

  /// Runs the handshake on a connection to `peer` (-1: not known yet, from HELLO).
  void new_candidate(Socket s, std::int64_t peer, const std::string& remote);

  /// The connection budget (docs/direct.md): with a gate set, a connection the
  /// listener accepted gets our HELLO only once `admit(peer)` says there is room
  /// (until then it waits, unread); retry_held() asks again.
  void set_admit(std::function<bool(std::uint32_t)> admit) { admit_ = std::move(admit); }
  /// The connection budget's close (docs/direct.md): while `closing(peer)` the pair's
  /// old connection is being closed and the peer may still hold it, so no new one
  /// forms: no attempts (mesh.cpp), and the decider rejects candidates.
  void set_closing(std::function<bool(std::uint32_t)> closing) { closing_ = std::move(closing); }
  bool closing(std::uint32_t peer) const { return closing_ && closing_(peer); }
  void retry_held();
  /// Accepted connections admitted and still in their handshake (they will count).
  std::size_t admitted() const;

  /// Appends the listener, the handshakes in progress and the attempts.
  void add_pollfds(std::vector<pollfd>& fds) const;
  /// Processes the revents of those of the `n` entries at `first` that are ours.
  void handle(const pollfd* first, std::size_t n);

  // For error messages: what happened with `p` so far.
  bool tcp_ever(std::uint32_t p) const { return peers_[p].tcp_ever; }
  /// When a TCP connection to `p` last formed (epoch: never).
  Clock::time_point tcp_seen(std::uint32_t p) const { return peers_[p].tcp_seen; }
  /// A handshake with `p` is in progress (a candidate known to be p's).
  bool handshaking(std::uint32_t p) const;
  const std::string& last_error(std::uint32_t p) const { return peers_[p].last_error; }
  const std::string& auth_error(std::uint32_t p) const { return peers_[p].auth_error; }

 private:
  enum class CState { hello, hello_pending_table, held, proof, decide };
  struct Candidate {
    Socket sock;
    std::int64_t peer = -1;  // known for outgoing attempts, from HELLO for accepted ones
    CState state = CState::hello;
    std::vector<std::byte> in;
    std::size_t need = proto::kHeaderSize;
    bool header_done = false;
    proto::Hello hello;
    proto::Nonce nonce{};                       // ours, sent in our HELLO
    std::unique_ptr<secure::KeyPair> kp;        // with encryption: our ephemeral key
    std::unique_ptr<secure::SessionKeys> keys;  // derived once both HELLOs are known
    Clock::time_point started;
    std::string remote;
    bool accepted = false;    // from our listener: we send our HELLO after theirs
    bool said_hello = false;  // held (under the budget's gate): ours waits for room
    proto::Endpoint source;   // accepted: where from
  };
  struct Attempt {
    Socket sock;
    std::uint32_t peer = 0;
    proto::Endpoint target;
    Clock::time_point started;
    Clock::duration timeout{};
  };
  // How long a connection our listener accepted may take to complete its HELLO.
  static constexpr auto kHelloTimeout = std::chrono::seconds(3);
  static constexpr std::size_t kMaxUnverified = 32;
  static constexpr std::size_t kMaxUnverifiedPerAddress = 8;
  struct PeerState {
    Socket conn;
    std::unique_ptr<secure::Link> link;  // with encryption: the keys of conn
    std::string broken;
    bool tcp_ever = false;         // a TCP connection formed at least once (handshake pending)
    Clock::time_point tcp_seen{};  // when one last formed
    Clock::time_point next_attempt{};
    std::chrono::milliseconds backoff{5};
    std::chrono::milliseconds attempt_timeout{250};
    std::string last_error;
    std::string auth_error;  // why the last candidate failed authentication
  };

  void saw_tcp(std::uint32_t p, Clock::time_point now) {
    peers_[p].tcp_ever = true;
    peers_[p].tcp_seen = now;
  }
  void start_attempts(std::uint32_t p, Clock::time_point now);
  std::vector<proto::Endpoint> targets(std::uint32_t p) const;
  void on_attempt_event(Attempt& a);
  void accept_all();
  bool send_hello(Candidate& c);
  // Accepted and its HELLO not validated yet (it may be anybody).
  static bool unverified(const Candidate& c) {
    return c.accepted && (c.state == CState::hello || c.state == CState::hello_pending_table);
  }
  Clock::time_point expiry(const Candidate& c) const;
  void stranger_closed(const proto::Endpoint& from, const char* why);
  void log_limited(const std::string& key, const std::string& what);
  bool read_candidate(Candidate& c);  // false: drop it
  bool on_hello(Candidate& c);
  bool decide(Candidate& c);  // after HELLO (and PROOF): DECIDE, or wait for it
  void auth_failed(const Candidate& c, const std::string& why);
  void adopt(Candidate& c, std::uint32_t peer);
  bool is_settled(const PeerState& ps) const { return ps.conn || !ps.broken.empty(); }

  const MeshOptions& opt_;
  std::uint64_t session_;
  std::uint8_t cipher_ = 0;  // with encryption: our HELLOs' cipher byte (secure::local_cipher)
  proto::Endpoint bind_addr_;
  Socket listener_;
  std::function<void(std::uint32_t)> on_connected_;
  std::function<bool(std::uint32_t)> admit_;
  std::function<bool(std::uint32_t)> closing_;
  const proto::Table* table_ = nullptr;  // set by on_table
  std::vector<PeerState> peers_;
  std::size_t settled_ = 0;  // peers other than us with is_settled()
  std::size_t open_ = 0;     // peers with an established connection
  std::vector<std::unique_ptr<Candidate>> cands_;
  std::vector<Attempt> attempts_;
  Clock::time_point listener_paused_until_{};  // after EMFILE: not polled until then
  std::size_t strangers_closed_ = 0;           // accepted, closed before a complete HELLO (logged)
  std::vector<std::pair<std::string, Clock::time_point>> logged_;  // address, last log line
};

}  // namespace FMI::Direct
