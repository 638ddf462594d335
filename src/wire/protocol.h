// Wire protocol of the Direct channel: the messages between a function and the
// rendezvous server (fmi-rendezvous), and the handshake two functions run on every
// candidate TCP connection. Part of the fmi_wire library (src/wire/), shared by the
// server (server/) and the channel (src/channels/direct/), and kept free of I/O so
// that it can be fuzzed on its own. The format is documented in
// docs/rendezvous-protocol.md; everything is encoded field by field in network
// byte order (never as raw structs).
//
// Frame: magic "FMIR" (4 bytes) | version u8 | type u8 | payload length u32 | payload.
//
// Version 2 added the optional shared-secret authentication (CHALLENGE, the proof
// fields of REGISTER and RELAY, the nonce of HELLO, PROOF); the MACs themselves are
// computed in auth.cpp, so that this parser needs no crypto library.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

struct sockaddr;
struct sockaddr_storage;

namespace FMI::Wire::proto {

inline constexpr std::uint8_t kVersion = 2;
inline constexpr std::array<std::uint8_t, 4> kMagic = {'F', 'M', 'I', 'R'};
inline constexpr std::size_t kHeaderSize = 10;

// Limits. A client's requests and the handshake are small; only the server's
// endpoint table grows with the communicator.
inline constexpr std::size_t kMaxCommName = 255;
inline constexpr std::size_t kMaxErrorText = 1024;
inline constexpr std::uint32_t kMaxPeers = 4096;
inline constexpr std::size_t kMaxRequestPayload = 1024;  // client -> server, peer <-> peer
inline constexpr std::size_t kMaxReplyPayload = 4 + kMaxPeers * (2 * 19 + 8);  // table
inline constexpr std::size_t kNonceSize = 32;
inline constexpr std::size_t kMacSize = 32;       // HMAC-SHA256
inline constexpr std::size_t kKeyShareSize = 32;  // X25519 public key

using Nonce = std::array<std::uint8_t, kNonceSize>;
using Mac = std::array<std::uint8_t, kMacSize>;
using KeyShare = std::array<std::uint8_t, kKeyShareSize>;

enum class MsgType : std::uint8_t {
  reg = 1,          // client -> server: Register
  registered = 2,   // server -> client: Registered
  table = 3,        // server -> client: Table
  error = 4,        // server -> client: ErrorMsg, then the server closes
  relay = 5,        // client -> server: Relay (a new connection asking to be paired)
  relay_ready = 6,  // server -> client: RelayReady; from then on bytes are forwarded
  challenge = 7,    // server -> client: Challenge, first frame on every connection (v2)
  hello = 16,       // peer <-> peer: Hello (first frame on every candidate connection)
  decide = 17,      // lower peer id -> higher: Decide
  proof = 18,       // peer <-> peer: PeerProof, after the HELLOs, when a secret is set (v2)
};

/// An IPv4 or IPv6 address and port, as the wire carries it.
struct Endpoint {
  bool v6 = false;
  std::array<std::uint8_t, 16> addr{};  // first 4 bytes used for IPv4
  std::uint16_t port = 0;

  bool same_address(const Endpoint& o) const;
  bool operator==(const Endpoint& o) const { return same_address(o) && port == o.port; }
  std::string str() const;  // "1.2.3.4:5" or "[::1]:5"

  static Endpoint from_sockaddr(const sockaddr* sa);
  /// Fills `ss`, returns the length to pass to connect/bind.
  unsigned to_sockaddr(sockaddr_storage& ss) const;
};

/// Proof of knowledge of the shared secret in a request to the server: the
/// client's fresh nonce and an HMAC that also covers the server's challenge nonce.
struct Proof {
  Nonce nonce{};
  Mac mac{};
};
struct Register {
  std::string comm;
  std::uint32_t peer_id = 0;
  std::uint32_t num_peers = 0;
  std::uint64_t session = 0;        // random per registration; identifies this incarnation
  Endpoint private_ep;              // the local address:port the function is bound to
  std::optional<Proof> proof = {};  // present when the client has a secret
};
struct Registered {
  Endpoint public_ep;  // the address:port the server sees (through NAT)
};
struct PeerEntry {
  Endpoint public_ep;
  Endpoint private_ep;
  std::uint64_t session = 0;
};
struct Table {
  std::vector<PeerEntry> peers;  // indexed by peer id
};
enum class ErrorCode : std::uint16_t {
  bad_request = 1,
  bad_version = 2,
  num_peers_mismatch = 3,
  replaced = 4,  // a newer registration of the same (comm, peer id) took over
  expired = 5,   // not every peer registered in time
  overloaded = 6,
  shutdown = 7,
  auth_failed = 8,  // missing or wrong proof of the shared secret
};
struct ErrorMsg {
  ErrorCode code = ErrorCode::bad_request;
  std::string text;
};
/// Asks the server to pair this connection with the one `to` opens towards `from`
/// and forward bytes between them (for pairs that cannot punch through their NATs).
struct Relay {
  std::string comm;
  std::uint32_t from = 0;
  std::uint32_t to = 0;
  std::uint64_t from_session = 0;
  std::uint64_t to_session = 0;
  std::optional<Proof> proof = {};
};
struct RelayReady {};
/// Sent by the server as soon as it accepts a connection. `auth` says whether it
/// requires proofs; the nonce makes every proof valid for this connection only.
struct Challenge {
  bool auth = false;
  Nonce nonce{};
};
struct Hello {
  std::string comm;
  std::uint32_t peer_id = 0;
  std::uint64_t session = 0;  // the sender's session, as in the server's table
  bool auth = false;          // the sender has a secret
  Nonce nonce{};              // fresh per candidate connection
  // The sender's ephemeral X25519 public key when it encrypts the connection
  // (backends.Direct.encryption, docs/direct.md "Encryption"); absent: plaintext.
  std::optional<KeyShare> key_share = {};
  // With a key share: the AEAD the sender prefers, bit 7 set when it insists
  // (channels/direct/secure.h, agree()); 0 without. On the wire before the key share.
  std::uint8_t cipher = 0;
};
/// HMAC over the pairing and both HELLO nonces (see auth.h); with encryption, keyed
/// by the connection's confirmation key (channels/direct/secure.h).
struct PeerProof {
  Mac mac{};
};
struct Decide {
  bool accept = false;
};

using Message = std::variant<Register, Registered, Table, ErrorMsg, Hello, Decide, Relay,
                             RelayReady, Challenge, PeerProof>;

const char* to_string(MsgType t);
const char* to_string(ErrorCode c);

/// Encodes one complete frame.
std::vector<std::byte> encode(const Message& m);

struct Header {
  std::uint8_t version = 0;
  MsgType type{};
  std::uint32_t length = 0;
};
/// Parses the fixed header (exactly kHeaderSize bytes). Throws ChannelError on a bad
/// magic, or a length above `max_payload`. The version is returned, not checked,
/// so that the server can answer an unknown version with an error.
Header decode_header(std::span<const std::byte> bytes, std::size_t max_payload);

/// Parses the payload of a frame of type `type`. Throws ChannelError on any
/// malformed content (truncation, trailing bytes, out-of-range values).
Message decode_payload(MsgType type, std::span<const std::byte> payload);

/// Extracts one frame from the front of `buf` if it is complete: returns it and
/// sets `consumed`; returns nullopt (consumed = 0) if more bytes are needed.
/// Throws ChannelError on malformed input, including an unsupported version.
std::optional<Message> try_decode(std::span<const std::byte> buf, std::size_t max_payload,
                                  std::size_t& consumed);

}  // namespace FMI::Wire::proto
