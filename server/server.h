// fmi-rendezvous: the server that lets functions behind NAT find each other.
// One epoll loop, one thread. See docs/rendezvous-protocol.md for the protocol and
// docs/direct.md for how the Direct channel uses it.
#pragma once

#include <chrono>
#include <cstdint>
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
    std::string addr;  // public address:port as seen here
    proto::Endpoint public_ep;
    State state = State::awaiting_register;
    std::vector<std::byte> in;
    std::vector<std::byte> out;
    std::size_t out_off = 0;
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
    std::uint64_t relayed = 0;
    proto::Nonce nonce{};  // of the CHALLENGE sent on this connection
  };
  struct Group {
    std::uint32_t num_peers = 0;
    std::vector<int> members;  // fd per peer id, -1 if not registered
    std::vector<proto::PeerEntry> entries;
    std::uint32_t count = 0;
  };

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
  void fail(Conn& c, proto::ErrorCode code, const std::string& text);
  void close_conn(int fd, const std::string& why);
  void leave_group(Conn& c);
  void update_events(Conn& c);
  void sweep();
  template <typename... A>
  void log(bool important, const A&... a);

  Options opt_;
  Wire::Socket listener_;
  Wire::Socket epoll_;
  Wire::Socket signal_;
  std::uint16_t port_ = 0;
  std::unordered_map<int, std::unique_ptr<Conn>> conns_;
  std::map<std::string, Group> groups_;
  std::map<std::string, int> relay_waiting_;  // relay key -> fd
  bool stopping_ = false;
};

}  // namespace FMI::Rendezvous
