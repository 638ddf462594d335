// Encryption of Direct connections (docs/direct.md "Encryption", docs/security.md):
// the key exchange the puncher runs inside HELLO/PROOF, and the records every
// message is sealed into.
//
// Key schedule, per candidate connection (both sides compute the same):
//   each side: a fresh X25519 key pair; its public key and its cipher byte (below)
//   ride in its HELLO.
//   th  = SHA-256("FMI direct v2" || for each field u32be(len) || bytes) over comm,
//         lower id, higher id, their sessions, their HELLO nonces, their key shares,
//         their cipher bytes
//   prk = HKDF-Extract(salt = shared secret, or empty without one, X25519(own, peer))
//   okm = HKDF-Expand(prk, "FMI direct keys" || th, 120 bytes) =
//         key lower->higher (32) | key higher->lower (32) | IV l->h (12) | IV h->l (12)
//         | confirmation key (32)
//   PROOF = HMAC-SHA256(confirmation key, "FMI direct confirm" || u32be(sender) || th)
// A peer that sees other HELLOs than its partner sent (a key substituted or a cipher
// byte changed on the way) gets another th and other keys, and without the secret
// nobody can compute the confirmation key of a given key exchange: the PROOF fails,
// and with it the candidate.
//
// Cipher: AES-256-GCM, or ChaCha20-Poly1305 when a side has no AES instructions
// (agree() below; FMI_DIRECT_CIPHER forces one).
//
// Records: a message is its 16-byte header (tag, length; in clear) followed by its
// payload cut into records of kRecord bytes (the last one shorter; an empty payload
// is one empty record), each sealed with the AEAD and followed by its 16-byte tag.
// Every record has the header as additional data and the nonce IV xor u64be(sequence
// number of the record in its direction), so a flipped bit (payload or header), a
// replayed, reordered or dropped record fails the tag of the record where it happens.
//
// Overlap: a record is sealed and opened in pieces (the AEAD is a stream cipher
// with a MAC over the stream), so the sender writes the first 16 KiB of a record
// while it seals the next piece and the receiver decrypts every read as it arrives;
// the record's tag is checked when it is in, and a message is delivered only once
// every tag of it verified. The wire format does not depend on the pieces.
#pragma once

#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "wire/protocol.h"

typedef struct evp_pkey_st EVP_PKEY;
typedef struct evp_cipher_ctx_st EVP_CIPHER_CTX;
typedef struct evp_cipher_st EVP_CIPHER;

namespace FMI::Direct::secure {

inline constexpr std::size_t kHeader = 16;  // the message header (additional data)
inline constexpr std::size_t kTag = 16;     // AEAD tag per record
inline constexpr std::size_t kRecord = std::size_t(256) << 10;  // plaintext bytes per record
// The sender seals a message in pieces of kFirstPiece bytes at first, growing to
// kPiece and shrinking again at the end: the first bytes leave after a short seal,
// the receiver's last decryption is short, and the pieces between cost one send
// per 128 KiB (half a record: while the socket is full, the other half can be sealed
// ahead; docs/direct.md "Encryption").
inline constexpr std::size_t kFirstPiece = std::size_t(16) << 10;
inline constexpr std::size_t kPiece = std::size_t(128) << 10;

/// The AEAD of a connection. The numbers are the cipher byte of HELLO (low bits).
enum class Cipher : std::uint8_t { aes_256_gcm = 1, chacha20_poly1305 = 2 };
const char* name(Cipher c);
/// This process's cipher byte for its HELLOs: the cipher it prefers (AES-256-GCM
/// when the CPU has AES instructions, else ChaCha20-Poly1305), with bit 7 set when
/// FMI_DIRECT_CIPHER forces it. ConfigError for a FMI_DIRECT_CIPHER that is not
/// aes-256-gcm or chacha20-poly1305, or a FMI_DIRECT_AES that is not openssl or
/// ipsec-mb.
std::uint8_t local_cipher();
/// The cipher two HELLOs' cipher bytes agree on: the common preference; a forced
/// one over a preference; ChaCha20-Poly1305 when the preferences differ (one side
/// has no AES instructions, and ChaCha20 is fast on both). Empty when both force
/// different ciphers or a byte is not a known cipher; `why` then says so.
std::optional<Cipher> agree(std::uint8_t own, std::uint8_t peer, std::string& why);

/// Records of a payload of `size` bytes (at least one: it authenticates the header).
inline std::size_t records(std::size_t size) {
  return size == 0 ? 1 : (size + kRecord - 1) / kRecord;
}
/// Bytes on the wire after the header.
inline std::size_t body_size(std::size_t size) { return size + kTag * records(size); }
/// Plaintext bytes of record `i`.
inline std::size_t record_len(std::size_t size, std::size_t i) {
  return std::min(kRecord, size - std::min(size, i * kRecord));
}

/// An ephemeral X25519 key pair (one per candidate connection).
class KeyPair {
 public:
  KeyPair();
  ~KeyPair();
  KeyPair(const KeyPair&) = delete;
  KeyPair& operator=(const KeyPair&) = delete;
  const Wire::proto::KeyShare& share() const { return share_; }
  EVP_PKEY* pkey() const { return key_; }

 private:
  EVP_PKEY* key_ = nullptr;
  Wire::proto::KeyShare share_{};
};

/// What both sides of a connection put into the transcript, ordered by peer id.
struct Transcript {
  std::string comm;
  std::uint32_t lower = 0, higher = 0;
  std::uint64_t lower_session = 0, higher_session = 0;
  Wire::proto::Nonce lower_nonce{}, higher_nonce{};
  Wire::proto::KeyShare lower_share{}, higher_share{};
  std::uint8_t lower_cipher = 0, higher_cipher = 0;  // the HELLOs' cipher bytes
};

struct SessionKeys {
  std::array<std::uint8_t, 32> key[2]{};  // [0]: lower -> higher, [1]: higher -> lower
  std::array<std::uint8_t, 12> iv[2]{};
  std::array<std::uint8_t, 32> confirm{};
  std::array<std::uint8_t, 32> th{};  // transcript hash
  Cipher cipher = Cipher::aes_256_gcm;
};

/// The key schedule above. Throws ChannelError when the peer's share is not a valid
/// X25519 key (a low-order point gives an all-zero secret).
SessionKeys derive(const KeyPair& own, const Wire::proto::KeyShare& peer, const std::string& secret,
                   const Transcript& t);
/// The PROOF `sender` sends on this connection.
Wire::proto::Mac confirm_mac(const SessionKeys& k, std::uint32_t sender);

/// Which code runs AES-256-GCM: `fastest` is Intel's ipsec-mb library (VAES and
/// 512-bit VPCLMULQDQ: about twice OpenSSL 3.0's AES-NI code on such a CPU) where the
/// CPU has those instructions and FMI_DIRECT_AES is not "openssl", else OpenSSL
/// (FMI_DIRECT_AES: "openssl", "ipsec-mb" or unset; local_cipher() checks it).
/// Both compute the same standard AES-GCM: the wire does not depend on it.
enum class Impl : std::uint8_t { fastest, openssl };

/// The AEAD in one direction of one connection: the context is made once (key
/// schedule included) and only the nonce changes per record. A record is either
/// sealed/opened at once, or in pieces: begin(), update() any number of times (any
/// lengths), then seal_final()/open_final().
class Aead {
 public:
  Aead(Cipher c, const std::array<std::uint8_t, 32>& key, const std::array<std::uint8_t, 12>& iv,
       Impl impl = Impl::fastest);
  ~Aead();
  Aead(const Aead&) = delete;
  Aead& operator=(const Aead&) = delete;
  /// Seals `n` bytes of `in` into `out` (may be equal) and writes the tag.
  void seal(const std::byte* aad, std::size_t aad_len, const std::byte* in, std::size_t n,
            std::byte* out, std::byte* tag);
  /// Opens `n` bytes in place; false when the tag does not verify (the record was
  /// altered, replayed, reordered, or sealed with another key).
  bool open(const std::byte* aad, std::size_t aad_len, std::byte* buf, std::size_t n,
            const std::byte* tag);
  /// Starts the next record (its nonce) with its additional data.
  void begin(const std::byte* aad, std::size_t aad_len, bool sealing);
  /// Seals or opens (as begun) the next `n` bytes of the record; `out` may be `in`.
  void update(const std::byte* in, std::size_t n, std::byte* out);
  void seal_final(std::byte* tag);
  /// False when the record's tag does not verify.
  bool open_final(const std::byte* tag);
  /// "ipsec-mb" or "OpenSSL".
  const char* impl() const;

 private:
  void next_nonce(std::uint8_t* nonce);
  struct Vaes;  // ipsec-mb's key and record state (null: OpenSSL's context)
  std::unique_ptr<Vaes> vaes_;
  bool sealing_ = true;
  EVP_CIPHER* cipher_ = nullptr;
  EVP_CIPHER_CTX* ctx_ = nullptr;
  std::array<std::uint8_t, 12> iv_;
  std::uint64_t seq_ = 0;
};

/// Both directions of one encrypted connection and its send buffer (sealed bytes
/// not yet sent: up to one record with its header and tag, allocated once per
/// connection).
struct Link {
  static constexpr std::size_t kTxBuf = kHeader + kRecord + kTag;
  Link(const SessionKeys& k, bool lower, Impl impl = Impl::fastest);
  Aead tx, rx;
  // Not zeroed: a mesh adopts many connections at once, and its pages are touched
  // only by the sends that use them.
  std::unique_ptr<std::byte[]> txbuf;
};

/// The send side of one message body (after its header): seals the payload piece
/// by piece into the connection's send buffer, each record's tag after its last
/// piece.
class BodyWriter {
 public:
  /// `hdr` (16 bytes, additional data) and `data` must stay valid.
  void start(const std::byte* hdr, const std::byte* data, std::size_t size);
  /// Seals at most `want` more payload bytes, within the current record, into `out`
  /// (`room` bytes), followed by the record's tag if they end it. Returns the bytes
  /// written: 0 when all is sealed or `room` cannot take a byte and a tag.
  std::size_t produce(Aead& tx, std::byte* out, std::size_t room, std::size_t want);
  bool done() const { return record_ == records(size_); }
  /// Payload bytes sealed so far.
  std::size_t sealed() const { return record_ * kRecord + within_; }

 private:
  const std::byte* hdr_ = nullptr;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t record_ = 0, within_ = 0;
  bool begun_ = false;
};

/// The receive side of one message body (after its header): where the next bytes
/// of the stream go (the caller's buffer for ciphertext, decrypted in place as it
/// arrives, and a tag buffer), and checking each record's tag as it completes.
class BodyReader {
 public:
  /// `hdr` (16 bytes, additional data) must stay valid; it may be filled later, but
  /// before the first advance().
  void start(const std::byte* hdr, std::byte* data, std::size_t size);
  /// Up to two entries, exactly to the end of the current record.
  int iov(iovec* out) const;
  /// `n` bytes arrived in the entries iov() gave: decrypts them. Returns false when
  /// the record they completed fails authentication (the bytes of the message given
  /// so far are then not what the peer sent).
  bool advance(Aead& rx, std::size_t n);
  bool done() const { return done_ == body_size(size_); }
  std::size_t moved() const { return done_; }
  /// The record being read (for error messages).
  std::size_t record() const { return done_ / (kRecord + kTag); }
  /// Appends, in stream order, the first `n` bytes the last iov() received but
  /// advance() was not told about (for a header that belongs to another message).
  void spill(std::size_t n, std::vector<std::byte>& out) const;

 private:
  const std::byte* hdr_ = nullptr;
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t done_ = 0;
  bool begun_ = false;
  std::byte tag_[kTag]{};
};

}  // namespace FMI::Direct::secure
