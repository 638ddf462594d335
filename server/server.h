// fmi-rendezvous: the server that lets functions behind NAT find each other.
// One epoll loop, one thread. See docs/rendezvous-protocol.md for the protocol and
// docs/direct.md for how the Direct channel uses it.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "wire/net.h"
#include "wire/protocol.h"

namespace FMI::Rendezvous {

namespace proto = Wire::proto;

struct Options {
  std::string bind = "0.0.0.0";
  std::uint16_t port = 10000;
  std::size_t max_connections = 4096;
  /// Open connections from one IP address at most (0: no limit). Generous, because
  /// every function of a job behind one NAT gateway comes from the same address,
  /// but below max_connections, so that one stranger cannot hold every slot.
  std::size_t max_per_address = 1024;
  /// A relay on which no byte moved either way for this long is closed (a pair that
  /// stopped reading cannot hold its slots and buffers forever).
  std::chrono::milliseconds relay_idle{600000};
  /// Bytes one relay forwards (both directions together) at most; 0: no cap.
  std::uint64_t relay_max_bytes = std::uint64_t(16) << 30;
  /// How long after sending a communicator's table the server still relays its
  /// pairs (Direct connects pairs on first use, which may be long after the table).
  std::chrono::milliseconds relay_window{std::chrono::hours(24)};
  /// How long the listener is left alone after accept ran out of descriptors.
  std::chrono::milliseconds accept_backoff{250};
  /// A connection must deliver its REGISTER within this time (slow/half-open peers).
  std::chrono::milliseconds hello_timeout{5000};
  /// A registration not completed into a table within this time expires.
  std::chrono::milliseconds registration_ttl{60000};
  /// A reply the client does not read within this time drops the connection.
  std::chrono::milliseconds write_timeout{10000};
  bool quiet = false;  // log only errors and start/stop
  /// Shared secret (empty: no authentication). When set, REGISTER and RELAY must
  /// carry an HMAC over the request and this connection's CHALLENGE nonce.
  std::string secret;
};

class Server {
 public:
  explicit Server(Options opt);
  ~Server();
  /// The port actually bound (useful with port 0).
  std::uint16_t port() const { return port_; }
  /// Runs until SIGTERM/SIGINT (blocked and read through a signalfd) or stop().
  void run();

 private:
  using Clock = std::chrono::steady_clock;
  enum class State { awaiting_register, registered, closing, relay_waiting, relaying };
  struct Conn {
    Wire::Socket sock;
    // Unique for the server's lifetime, carried in the epoll events with the
    // descriptor (event_key): a descriptor closed while handling one batch of events
    // can be reused by an accept in the same batch, and the old connection's pending
    // event (a hang-up, say) must not be applied to the new one.
    std::uint32_t id = 0;
    std::string addr;  // public address:port as seen here
    std::string ip;    // the address without the port (per-address limit)
    proto::Endpoint public_ep;
    State state = State::awaiting_register;
    std::vector<std::byte> in;
    std::vector<std::byte> out;
    std::size_t out_off = 0;
    // A frame encoded once and shared by every recipient (the endpoint table: a
    // 4,096-peer table sent to 4,096 functions is one buffer, not 4,096 copies),
    // written after `out`.
    std::shared_ptr<const std::vector<std::byte>> shared;
    std::size_t shared_off = 0;
    Clock::time_point deadline;  // hello/ttl/write deadline depending on state
    std::string comm;
    std::uint32_t peer_id = 0;
    bool want_write = false;
    // Relay: the paired connection, and flow control of the forwarded stream.
    int partner = -1;
    std::string relay_key;
    bool read_closed = false;  // EOF received; forwarded to the partner once flushed
    bool paused = false;       // not reading: the partner's output buffer is full
    bool want_read = true;
    bool in_epoll = true;  // false while it wants no event at all (see update_events)
    std::uint64_t relayed = 0;
    Clock::time_point last_moved;  // relay: last byte read or written (idle timeout)
    proto::Nonce nonce{};          // of the CHALLENGE sent on this connection
  };
  // Sparse: a REGISTER announcing 4096 peers costs the server one entry, not 4096
  // (memory proportional to the bytes received).
  struct Member {
    int fd = -1;
    proto::PeerEntry entry;
  };
  struct Group {
    std::uint32_t num_peers = 0;
    std::map<std::uint32_t, Member> members;  // by peer id, registered ones only
    std::uint32_t count() const { return std::uint32_t(members.size()); }
  };
  /// A table the server sent: the sessions of its peers, which a RELAY must name.
  struct SentTable {
    std::vector<std::uint64_t> sessions;  // by peer id
    Clock::time_point until;
  };

  static std::string missing_peers(const Group& g);
  void accept_all();
  void on_readable(Conn& c);
  void on_writable(Conn& c);
  void handle(Conn& c, const proto::Message& m);
  void handle_register(Conn& c, const proto::Register& r);
  void handle_relay(Conn& c, const proto::Relay& r);
  /// False (after answering ERROR auth_failed and logging) if the proof is missing
  /// or wrong; true if valid or no secret is configured.
  bool authenticate(Conn& c, const std::optional<proto::Proof>& proof, const proto::Mac& expected,
                    const std::string& who);
  void relay_read(Conn& c);
  void relay_flushed(Conn& c);
  void queue(Conn& c, const proto::Message& m);
  void queue_shared(Conn& c, std::shared_ptr<const std::vector<std::byte>> frame);
  /// Writes `buf` from `off` on until done or the socket is full; false if it
  /// closed `c` (write error).
  bool write_some(Conn& c, const std::vector<std::byte>& buf, std::size_t& off);
  void fail(Conn& c, proto::ErrorCode code, const std::string& text);
  static std::uint64_t event_key(const Conn& c);
  void close_conn(int fd, const std::string& why);
  void leave_group(Conn& c);
  void update_events(Conn& c);
  void sweep();
  void forget_oldest_table();
  void pause_accepting(int err);
  void refuse(int fd, const std::string& key, const std::string& text, const std::string& reply);
  template <typename... A>
  void log(bool important, const A&... a);
  /// Logs at most once per `key` every few seconds (and says how many were left
  /// out since): what a stranger can trigger at will must not flood the log.
  template <typename... A>
  void log_limited(const std::string& key, const A&... a);

  Options opt_;
  Wire::Socket listener_;
  Wire::Socket epoll_;
  Wire::Socket signal_;
  std::uint16_t port_ = 0;
  std::unordered_map<int, std::unique_ptr<Conn>> conns_;
  std::uint32_t next_conn_id_ = 0;
  std::map<std::string, Group> groups_;
  std::map<std::string, int> relay_waiting_;      // relay key -> fd
  std::map<std::string, SentTable> sent_tables_;  // comm -> its last table
  // Tables in the order they were sent (= the order they expire), for the sweep and
  // for evicting the oldest when they hold more than kMaxTableSessions sessions.
  std::deque<std::pair<Clock::time_point, std::string>> table_order_;
  std::size_t table_sessions_ = 0;
  std::map<std::string, std::size_t> per_address_;  // ip -> open connections
  struct Limited {
    Clock::time_point last;
    std::uint64_t dropped = 0;
  };
  std::map<std::string, Limited> log_limits_;
  Clock::time_point accept_paused_until_{};  // EMFILE back-off; epoch: accepting
  bool stopping_ = false;
  // What relay_read receives into before appending to the partner's buffer.
  std::vector<std::byte> relay_scratch_;
};

}  // namespace FMI::Rendezvous
