#include "wire/protocol.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <iterator>

#include "fmi/errors.h"

namespace FMI::Wire::proto {

namespace {

class Writer {
 public:
  void u8(std::uint8_t v) { buf_.push_back(std::byte{v}); }
  void u16(std::uint16_t v) {
    u8(std::uint8_t(v >> 8));
    u8(std::uint8_t(v));
  }
  void u32(std::uint32_t v) {
    u16(std::uint16_t(v >> 16));
    u16(std::uint16_t(v));
  }
  void u64(std::uint64_t v) {
    u32(std::uint32_t(v >> 32));
    u32(std::uint32_t(v));
  }
  void bytes(const std::uint8_t* p, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) u8(p[i]);
  }
  // Strings are length-prefixed with a u16; callers check the limits first.
  void str(const std::string& s, std::size_t max, const char* what) {
    if (s.size() > max)
      FMI_THROW(UsageError, "Direct protocol: ", what, " is ", s.size(), " bytes, limit ", max);
    u16(std::uint16_t(s.size()));
    bytes(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
  }
  template <std::size_t N>
  void fixed(const std::array<std::uint8_t, N>& a) {
    bytes(a.data(), N);
  }
  void proof(const std::optional<Proof>& p) {
    u8(p ? 1 : 0);
    if (p) {
      fixed(p->nonce);
      fixed(p->mac);
    }
  }
  void endpoint(const Endpoint& e) {
    u8(e.v6 ? 6 : 4);
    bytes(e.addr.data(), e.v6 ? 16 : 4);
    u16(e.port);
  }
  std::vector<std::byte>& buf() { return buf_; }

 private:
  std::vector<std::byte> buf_;
};

class Reader {
 public:
  Reader(std::span<const std::byte> b, const char* msg) : b_(b), msg_(msg) {}
  std::uint8_t u8() {
    need(1);
    return std::to_integer<std::uint8_t>(b_[pos_++]);
  }
  std::uint16_t u16() {
    std::uint16_t hi = u8();
    return std::uint16_t((hi << 8) | u8());
  }
  std::uint32_t u32() {
    std::uint32_t hi = u16();
    return (hi << 16) | u16();
  }
  std::uint64_t u64() {
    std::uint64_t hi = u32();
    return (hi << 32) | u32();
  }
  std::string str(std::size_t max, const char* what) {
    std::size_t n = u16();
    if (n > max) fail(what, " of ", n, " bytes exceeds the limit of ", max);
    need(n);
    std::string s(reinterpret_cast<const char*>(b_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  Endpoint endpoint(const char* what) {
    Endpoint e;
    std::uint8_t fam = u8();
    if (fam != 4 && fam != 6) fail(what, " has address family ", int(fam), " (expected 4 or 6)");
    e.v6 = fam == 6;
    std::size_t n = e.v6 ? 16 : 4;
    need(n);
    std::memcpy(e.addr.data(), b_.data() + pos_, n);
    pos_ += n;
    e.port = u16();
    return e;
  }
  template <std::size_t N>
  std::array<std::uint8_t, N> fixed() {
    need(N);
    std::array<std::uint8_t, N> a;
    std::memcpy(a.data(), b_.data() + pos_, N);
    pos_ += N;
    return a;
  }
  std::uint8_t flag(const char* what) {
    std::uint8_t v = u8();
    if (v > 1) fail(what, " flag ", int(v), " is not 0 or 1");
    return v;
  }
  std::optional<Proof> proof() {
    if (!flag("proof")) return std::nullopt;
    Proof p;
    p.nonce = fixed<kNonceSize>();
    p.mac = fixed<kMacSize>();
    return p;
  }
  void done() {
    if (pos_ != b_.size()) fail(b_.size() - pos_, " trailing bytes");
  }
  template <typename... A>
  [[noreturn]] void fail(const A&... a) {
    FMI_THROW(ChannelError, "Direct protocol: malformed ", msg_, " message: ", a...);
  }

 private:
  void need(std::size_t n) {
    if (b_.size() - pos_ < n) fail("truncated (needs ", n, " more bytes at offset ", pos_, ")");
  }
  std::span<const std::byte> b_;
  std::size_t pos_ = 0;
  const char* msg_;
};

MsgType type_of(const Message& m) {
  static constexpr MsgType types[] = {MsgType::reg,   MsgType::registered,  MsgType::table,
                                      MsgType::error, MsgType::hello,       MsgType::decide,
                                      MsgType::relay, MsgType::relay_ready, MsgType::challenge,
                                      MsgType::proof};
  static_assert(std::size(types) == std::variant_size_v<Message>);
  return types[m.index()];
}

}  // namespace

bool Endpoint::same_address(const Endpoint& o) const {
  return v6 == o.v6 && std::memcmp(addr.data(), o.addr.data(), v6 ? 16 : 4) == 0;
}

std::string Endpoint::str() const {
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(v6 ? AF_INET6 : AF_INET, addr.data(), text, sizeof text);
  return v6 ? "[" + std::string(text) + "]:" + std::to_string(port)
            : std::string(text) + ":" + std::to_string(port);
}

Endpoint Endpoint::from_sockaddr(const sockaddr* sa) {
  Endpoint e;
  if (sa->sa_family == AF_INET6) {
    auto* s6 = reinterpret_cast<const sockaddr_in6*>(sa);
    e.v6 = true;
    std::memcpy(e.addr.data(), &s6->sin6_addr, 16);
    e.port = ntohs(s6->sin6_port);
  } else {
    auto* s4 = reinterpret_cast<const sockaddr_in*>(sa);
    std::memcpy(e.addr.data(), &s4->sin_addr, 4);
    e.port = ntohs(s4->sin_port);
  }
  return e;
}

unsigned Endpoint::to_sockaddr(sockaddr_storage& ss) const {
  std::memset(&ss, 0, sizeof ss);
  if (v6) {
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
    s6->sin6_family = AF_INET6;
    std::memcpy(&s6->sin6_addr, addr.data(), 16);
    s6->sin6_port = htons(port);
    return sizeof(sockaddr_in6);
  }
  auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
  s4->sin_family = AF_INET;
  std::memcpy(&s4->sin_addr, addr.data(), 4);
  s4->sin_port = htons(port);
  return sizeof(sockaddr_in);
}

const char* to_string(MsgType t) {
  switch (t) {
    case MsgType::reg: return "REGISTER";
    case MsgType::registered: return "REGISTERED";
    case MsgType::table: return "TABLE";
    case MsgType::error: return "ERROR";
    case MsgType::hello: return "HELLO";
    case MsgType::decide: return "DECIDE";
    case MsgType::relay: return "RELAY";
    case MsgType::relay_ready: return "RELAY_READY";
    case MsgType::challenge: return "CHALLENGE";
    case MsgType::proof: return "PROOF";
  }
  return "UNKNOWN";
}

const char* to_string(ErrorCode c) {
  switch (c) {
    case ErrorCode::bad_request: return "bad request";
    case ErrorCode::bad_version: return "unsupported version";
    case ErrorCode::num_peers_mismatch: return "num_peers mismatch";
    case ErrorCode::replaced: return "replaced";
    case ErrorCode::expired: return "expired";
    case ErrorCode::overloaded: return "overloaded";
    case ErrorCode::shutdown: return "server shutting down";
    case ErrorCode::auth_failed: return "authentication failed";
  }
  return "unknown error";
}

std::vector<std::byte> encode(const Message& m) {
  Writer w;
  for (auto b : kMagic) w.u8(b);
  w.u8(kVersion);
  w.u8(std::uint8_t(type_of(m)));
  w.u32(0);  // length, patched below
  std::visit(
      [&](const auto& msg) {
        using T = std::decay_t<decltype(msg)>;
        if constexpr (std::is_same_v<T, Register>) {
          w.str(msg.comm, kMaxCommName, "communicator name");
          w.u32(msg.peer_id);
          w.u32(msg.num_peers);
          w.u64(msg.session);
          w.endpoint(msg.private_ep);
          w.proof(msg.proof);
        } else if constexpr (std::is_same_v<T, Registered>) {
          w.endpoint(msg.public_ep);
        } else if constexpr (std::is_same_v<T, Table>) {
          w.u32(std::uint32_t(msg.peers.size()));
          for (const auto& p : msg.peers) {
            w.endpoint(p.public_ep);
            w.endpoint(p.private_ep);
            w.u64(p.session);
          }
        } else if constexpr (std::is_same_v<T, ErrorMsg>) {
          w.u16(std::uint16_t(msg.code));
          std::string t = msg.text.substr(0, kMaxErrorText);
          w.str(t, kMaxErrorText, "error text");
        } else if constexpr (std::is_same_v<T, Relay>) {
          w.str(msg.comm, kMaxCommName, "communicator name");
          w.u32(msg.from);
          w.u32(msg.to);
          w.u64(msg.from_session);
          w.u64(msg.to_session);
          w.proof(msg.proof);
        } else if constexpr (std::is_same_v<T, RelayReady>) {
          // empty payload
        } else if constexpr (std::is_same_v<T, Hello>) {
          w.str(msg.comm, kMaxCommName, "communicator name");
          w.u32(msg.peer_id);
          w.u64(msg.session);
          w.u8(msg.auth ? 1 : 0);
          w.fixed(msg.nonce);
          // The cipher byte before the key share, so that a HELLO still ends with
          // its key share (0 without one).
          w.u8(msg.key_share ? msg.cipher : 0);
          w.u8(msg.key_share ? 1 : 0);
          if (msg.key_share) w.fixed(*msg.key_share);
        } else if constexpr (std::is_same_v<T, Challenge>) {
          w.u8(msg.auth ? 1 : 0);
          w.fixed(msg.nonce);
        } else if constexpr (std::is_same_v<T, PeerProof>) {
          w.fixed(msg.mac);
        } else {
          static_assert(std::is_same_v<T, Decide>);
          w.u8(msg.accept ? 1 : 0);
        }
      },
      m);
  auto& b = w.buf();
  std::uint32_t len = std::uint32_t(b.size() - kHeaderSize);
  for (int i = 0; i < 4; ++i) b[6 + i] = std::byte(std::uint8_t(len >> (24 - 8 * i)));
  return std::move(b);
}

Header decode_header(std::span<const std::byte> bytes, std::size_t max_payload) {
  Reader r(bytes.first(kHeaderSize), "frame header of a");
  for (auto m : kMagic)
    if (r.u8() != m) r.fail("bad magic (not an FMI rendezvous/handshake frame)");
  Header h;
  h.version = r.u8();
  h.type = MsgType(r.u8());
  h.length = r.u32();
  if (h.length > max_payload)
    r.fail("payload length ", h.length, " exceeds the limit of ", max_payload);
  return h;
}

Message decode_payload(MsgType type, std::span<const std::byte> payload) {
  Reader r(payload, to_string(type));
  switch (type) {
    case MsgType::reg: {
      Register m;
      m.comm = r.str(kMaxCommName, "communicator name");
      if (m.comm.empty()) r.fail("empty communicator name");
      m.peer_id = r.u32();
      m.num_peers = r.u32();
      if (m.num_peers == 0 || m.num_peers > kMaxPeers)
        r.fail("num_peers ", m.num_peers, " outside 1..", kMaxPeers);
      if (m.peer_id >= m.num_peers) r.fail("peer id ", m.peer_id, " >= num_peers ", m.num_peers);
      m.session = r.u64();
      m.private_ep = r.endpoint("private endpoint");
      m.proof = r.proof();
      r.done();
      return m;
    }
    case MsgType::registered: {
      Registered m;
      m.public_ep = r.endpoint("public endpoint");
      r.done();
      return m;
    }
    case MsgType::table: {
      Table m;
      std::uint32_t n = r.u32();
      if (n == 0 || n > kMaxPeers) r.fail("peer count ", n, " outside 1..", kMaxPeers);
      m.peers.resize(n);
      for (auto& p : m.peers) {
        p.public_ep = r.endpoint("public endpoint");
        p.private_ep = r.endpoint("private endpoint");
        p.session = r.u64();
      }
      r.done();
      return m;
    }
    case MsgType::error: {
      ErrorMsg m;
      m.code = ErrorCode(r.u16());
      m.text = r.str(kMaxErrorText, "error text");
      r.done();
      return m;
    }
    case MsgType::hello: {
      Hello m;
      m.comm = r.str(kMaxCommName, "communicator name");
      m.peer_id = r.u32();
      m.session = r.u64();
      m.auth = r.flag("auth") == 1;
      m.nonce = r.fixed<kNonceSize>();
      m.cipher = r.u8();
      if (r.flag("key share")) m.key_share = r.fixed<kKeyShareSize>();
      if (!m.key_share && m.cipher != 0)
        r.fail("cipher byte ", unsigned(m.cipher), " without a key share");
      r.done();
      return m;
    }
    case MsgType::relay: {
      Relay m;
      m.comm = r.str(kMaxCommName, "communicator name");
      if (m.comm.empty()) r.fail("empty communicator name");
      m.from = r.u32();
      m.to = r.u32();
      if (m.from >= kMaxPeers || m.to >= kMaxPeers || m.from == m.to)
        r.fail("peer ids ", m.from, " -> ", m.to, " are not two distinct ids below ", kMaxPeers);
      m.from_session = r.u64();
      m.to_session = r.u64();
      m.proof = r.proof();
      r.done();
      return m;
    }
    case MsgType::relay_ready: {
      r.done();
      return RelayReady{};
    }
    case MsgType::challenge: {
      Challenge m;
      m.auth = r.flag("auth") == 1;
      m.nonce = r.fixed<kNonceSize>();
      r.done();
      return m;
    }
    case MsgType::proof: {
      PeerProof m;
      m.mac = r.fixed<kMacSize>();
      r.done();
      return m;
    }
    case MsgType::decide: {
      Decide m;
      std::uint8_t v = r.u8();
      if (v > 1) r.fail("accept flag ", int(v), " is not 0 or 1");
      m.accept = v == 1;
      r.done();
      return m;
    }
  }
  r.fail("unknown message type ", int(type));
}

std::optional<Message> try_decode(std::span<const std::byte> buf, std::size_t max_payload,
                                  std::size_t& consumed) {
  consumed = 0;
  if (buf.size() < kHeaderSize) {
    // Reject garbage as early as its first bytes, not only once 10 have arrived.
    for (std::size_t i = 0; i < buf.size() && i < kMagic.size(); ++i)
      if (std::to_integer<std::uint8_t>(buf[i]) != kMagic[i])
        FMI_THROW(ChannelError,
                  "Direct protocol: bad magic (not an FMI rendezvous/handshake frame)");
    return std::nullopt;
  }
  Header h = decode_header(buf, max_payload);
  if (h.version != kVersion)
    FMI_THROW(ChannelError, "Direct protocol: unsupported version ", int(h.version),
              " (this side speaks version ", int(kVersion), ")");
  if (buf.size() - kHeaderSize < h.length) return std::nullopt;
  Message m = decode_payload(h.type, buf.subspan(kHeaderSize, h.length));
  consumed = kHeaderSize + h.length;
  return m;
}

}  // namespace FMI::Wire::proto
