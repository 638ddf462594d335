// Encryption of Direct connections, attacked as a stranger would: a forwarding
// proxy on loopback in front of fmi-rendezvous, with every pair relayed
// (FMI_DIRECT_RELAY=always), so that every byte two peers exchange passes through
// it. The proxy records what it sees (a capture), and can alter the handshake or the
// data frames of the stream it carries: flip a bit, replay a frame, cut the stream.
// Each test is one row of the threat model in docs/security.md.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <new>
#include <thread>

#include "channels/direct/direct_channel.h"
#include "channels/direct/secure.h"
#include "fmi/errors.h"
#include "rendezvous_server.h"

using FMI::Comm::Tag;
using FMI::Utils::Clock;
using FMI::Utils::Operation;
using namespace fmitest;
using namespace std::chrono_literals;

namespace {

const std::string kSecret = "an encryption test secret";  // >= 16 bytes
// What the user sends; must never be seen on the wire with encryption on.
const std::string kPattern = "USER-BYTES-THAT-MUST-NOT-LEAK-";

enum class Attack { none, flip, replay, cut, key_share };

/// A TCP forwarder 127.0.0.1:port() -> 127.0.0.1:target, in a process of its own.
/// In the direction client -> server it parses the stream (rendezvous and handshake
/// frames "FMIR...", then data frames: 16-byte header, payload, and with `sealed` one
/// 16-byte tag per record) to apply `attack` to the first data frame of every
/// connection, or to the key share of every HELLO.
// A process, not a thread of the test: the tests fork their peers (run_forked), and a
// child forked while another thread of its parent is inside the allocator inherits
// the allocator's locks held forever (AddressSanitizer's allocator has no fork
// handlers in GCC 12: seen in CI as a peer blocked in its first malloc until the
// runner killed it after 90 s). With the proxy in its own process the test process
// has one thread when it forks. What the proxy saw reaches the test through a file
// (the capture) and a shared page (the counters).
class Proxy {
 public:
  Proxy(std::uint16_t target, Attack attack, bool sealed)
      : target_(target), attack_(attack), sealed_(sealed) {
    void* page =
        ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) throw std::runtime_error("proxy: mmap failed");
    shared_ = new (page) Shared;
    char path[] = "/tmp/fmi-proxy-capture-XXXXXX";
    cap_fd_ = ::mkstemp(path);
    if (cap_fd_ < 0) throw std::runtime_error("proxy: mkstemp failed");
    ::unlink(path);  // the descriptor keeps it; nothing left behind
    lfd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(lfd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(lfd_, 64) != 0)
      throw std::runtime_error("proxy: bind/listen failed");
    socklen_t len = sizeof a;
    ::getsockname(lfd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    std::cout.flush();
    std::cerr.flush();
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("proxy: fork failed");
    if (pid_ == 0) {
      run();
      ::_exit(0);
    }
  }
  ~Proxy() {
    shared_->stop = true;
    // It checks the flag every 20 ms; a proxy that does not stop is killed.
    for (int i = 0; i < 250 && ::waitpid(pid_, nullptr, WNOHANG) == 0; ++i)
      std::this_thread::sleep_for(20ms);
    if (::waitpid(pid_, nullptr, WNOHANG) == 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::close(lfd_);
    ::close(cap_fd_);
    ::munmap(shared_, sizeof(Shared));
  }
  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;
  std::uint16_t port() const { return port_; }
  /// Every byte seen so far, both directions of every connection.
  std::string captured() const {
    std::string all;
    char buf[1 << 16];
    for (off_t at = 0;;) {
      ssize_t r = ::pread(cap_fd_, buf, sizeof buf, at);
      if (r <= 0) break;
      all.append(buf, std::size_t(r));
      at += r;
    }
    return all;
  }
  unsigned attacked() const { return shared_->attacked; }

 private:
  // Lives in a shared anonymous page: written by the proxy process, read by the test.
  struct Shared {
    std::atomic<bool> stop{false};
    std::atomic<unsigned> attacked{0};
  };

  struct Conn {
    int client = -1, server = -1;
    std::string up;  // client -> server bytes not yet forwarded
    bool data = false;
    unsigned frames = 0;
  };

  static void write_all(int fd, const char* p, std::size_t n) {
    while (n > 0) {
      ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
      if (w <= 0) return;
      p += w;
      n -= std::size_t(w);
    }
  }
  static void write_all_file(int fd, const char* p, std::size_t n) {
    while (n > 0) {
      ssize_t w = ::write(fd, p, n);
      if (w <= 0) return;
      p += w;
      n -= std::size_t(w);
    }
  }
  static void close_conn(Conn& c) {
    if (c.client >= 0) ::close(c.client);
    if (c.server >= 0) ::close(c.server);
    c.client = c.server = -1;
  }
  static std::uint64_t be(const std::string& s, std::size_t at, int bytes) {
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v = (v << 8) | std::uint8_t(s[at + std::size_t(i)]);
    return v;
  }

  // Forwards every complete unit of c.up, altered as the attack says. False: cut.
  bool forward_up(Conn& c) {
    std::size_t cur = 0;
    for (;;) {
      std::size_t avail = c.up.size() - cur;
      if (!c.data) {
        if (avail < 4) break;
        if (c.up.compare(cur, 4, "FMIR") != 0) {
          c.data = true;
          continue;
        }
        if (avail < 10) break;
        std::size_t len = be(c.up, cur + 6, 4);
        if (avail < 10 + len) break;
        // HELLO (type 16) ends with its key share: flag 1, then 32 bytes.
        if (attack_ == Attack::key_share && std::uint8_t(c.up[cur + 5]) == 16 && len >= 33 &&
            c.up[cur + 10 + len - 33] == 1) {
          c.up[cur + 10 + len - 1] ^= 1;
          ++shared_->attacked;
        }
        write_all(c.server, c.up.data() + cur, 10 + len);
        cur += 10 + len;
        continue;
      }
      if (avail < 16) break;
      std::size_t len = be(c.up, cur + 8, 8);
      std::size_t total = 16 + (sealed_ ? FMI::Direct::secure::body_size(len) : len);
      if (avail < total) break;
      const bool first = c.frames++ == 0;
      if (first && attack_ == Attack::flip) {
        c.up[cur + 16 + len / 2] ^= 0x20;  // a bit in the middle of the payload
        ++shared_->attacked;
      }
      write_all(c.server, c.up.data() + cur, total);
      if (first && attack_ == Attack::replay) {
        write_all(c.server, c.up.data() + cur, total);
        ++shared_->attacked;
      }
      if (first && attack_ == Attack::cut) {
        ++shared_->attacked;
        return false;
      }
      cur += total;
    }
    c.up.erase(0, cur);
    return true;
  }

  void run() {
    char buf[1 << 16];
    while (!shared_->stop) {
      std::vector<pollfd> fds{{lfd_, POLLIN, 0}};
      for (auto& c : conns_)
        if (c.client >= 0) {
          fds.push_back({c.client, POLLIN, 0});
          fds.push_back({c.server, POLLIN, 0});
        }
      const int ready = ::poll(fds.data(), fds.size(), 20);
      if (ready <= 0) continue;
      if (fds[0].revents) {
        int cl = ::accept4(lfd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (cl >= 0) {
          int sv = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
          sockaddr_in a{};
          a.sin_family = AF_INET;
          a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
          a.sin_port = htons(target_);
          if (::connect(sv, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
            ::close(cl);
            ::close(sv);
          } else {
            conns_.push_back({cl, sv});
          }
        }
      }
      for (std::size_t k = 1; k < fds.size(); ++k) {
        if (!fds[k].revents) continue;
        for (auto& c : conns_) {
          if (c.client < 0 || (fds[k].fd != c.client && fds[k].fd != c.server)) continue;
          bool up = fds[k].fd == c.client;
          ssize_t r = ::recv(fds[k].fd, buf, sizeof buf, 0);
          if (r <= 0) {
            if (up && !c.up.empty()) write_all(c.server, c.up.data(), c.up.size());
            close_conn(c);
            break;
          }
          write_all_file(cap_fd_, buf, std::size_t(r));
          if (!up) {
            write_all(c.client, buf, std::size_t(r));
          } else {
            c.up.append(buf, std::size_t(r));
            if (!forward_up(c)) close_conn(c);
          }
          break;
        }
      }
    }
  }

  std::uint16_t target_;
  Attack attack_;
  bool sealed_;
  int lfd_ = -1;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
  Shared* shared_ = nullptr;
  int cap_fd_ = -1;          // the capture: every byte seen, appended by the proxy
  std::vector<Conn> conns_;  // the proxy process's own
};

std::unique_ptr<FMI::Comm::DirectChannel> channel(std::uint16_t port, unsigned me, bool encryption,
                                                  const std::string& secret,
                                                  std::chrono::milliseconds timeout = 20s) {
  ::setenv("FMI_DIRECT_RELAY", "always", 1);
  FMI::Comm::DirectConfig d;
  d.enabled = true;
  d.host = "127.0.0.1";
  d.port = port;
  d.max_timeout = timeout;
  d.secret = secret;
  d.encryption = encryption;
  auto ch = std::make_unique<FMI::Comm::DirectChannel>(d);
  ch->init({me, 2, comm_name(), 128});
  return ch;
}

std::vector<std::byte> user_bytes(std::size_t n) {
  std::vector<std::byte> v(n);
  for (std::size_t k = 0; k < n; ++k) v[k] = std::byte(kPattern[k % kPattern.size()]);
  return v;
}

auto deadline(std::chrono::milliseconds d = 20s) { return Clock::now() + d; }
Tag tag(std::uint32_t seq) { return Tag{Operation::send, seq}; }

/// The PeerError of opening the connection to the other peer within 3 s ("" when
/// it opened): what a failed handshake says.
std::string handshake_error(FMI::Comm::DirectChannel& ch) {
  try {
    ch.connect_all(deadline(3s));
  } catch (const FMI::PeerError& e) {
    return e.what();
  }
  return "";
}

/// Peer 0 sends `sizes` (one message each) to peer 1, which checks every byte; then
/// peer 1 answers one byte. Returns the results of both peers. `cipher[me]`, when
/// given and not empty, is peer me's FMI_DIRECT_CIPHER.
std::vector<PeerResult> transfer(std::uint16_t port, bool encryption, const std::string& secret,
                                 std::vector<std::size_t> sizes,
                                 std::vector<std::string> cipher = {}) {
  return run_forked(2, [&](unsigned me) {
    if (me < cipher.size() && !cipher[me].empty())
      ::setenv("FMI_DIRECT_CIPHER", cipher[me].c_str(), 1);
    auto ch = channel(port, me, encryption, secret);
    std::byte ack[1] = {std::byte{1}};
    for (std::uint32_t i = 0; i < sizes.size(); ++i) {
      auto v = user_bytes(sizes[i]);
      if (me == 0) {
        ch->send(1, v, tag(i), deadline());
      } else {
        std::vector<std::byte> in(v.size());
        ch->recv(0, in, tag(i), deadline());
        PEER_CHECK(in == v, "message ", i, " arrived altered");
      }
    }
    if (me == 1)
      ch->send(0, ack, tag(100), deadline());
    else
      ch->recv(1, ack, tag(100), deadline());
  });
}

/// Peer 0 sends one or two messages of `size`; peer 1 must get a PeerError that
/// names peer 0 and says `what`, no later than at its second receive.
void expect_detected(std::uint16_t port, const std::string& secret, std::size_t size,
                     const std::string& what) {
  auto res = run_forked(2, [&](unsigned me) {
    auto ch = channel(port, me, true, secret);
    auto v = user_bytes(size);
    if (me == 0) {
      // What is checked is the receiver's detection. The sender may see the attack
      // too: once the receiver gives the connection up, a send still in progress
      // fails with a PeerError (EPIPE), depending on timing; then peer 1 exits and
      // the final recv fails. Both are expected here.
      try {
        ch->send(1, v, tag(0), deadline());
        ch->send(1, v, tag(0), deadline());
        std::byte b[1];
        ch->recv(1, b, tag(100), deadline());
      } catch (const FMI::PeerError&) {
      }
      return;
    }
    std::vector<std::byte> in(size);
    std::string error;
    try {
      ch->recv(0, in, tag(0), deadline());
      ch->recv(0, in, tag(0), deadline());
    } catch (const FMI::PeerError& e) {
      error = e.what();
    }
    PEER_CHECK(!error.empty(), "the attack went unnoticed");
    PEER_CHECK(error.find("peer 0") != std::string::npos, error);
    PEER_CHECK(error.find(what) != std::string::npos, error);
  });
  expect_all_ok(res);
}

}  // namespace

// Row "passive observer": with encryption (the default), no secret, nothing the user
// sent is on the wire; the same capture with encryption off shows it (so the
// capture does see the data).
TEST(DirectEncryption, CaptureShowsNoUserBytes) {
  RendezvousServer server;
  {
    Proxy proxy(server.port(), Attack::none, true);
    expect_all_ok(transfer(proxy.port(), true, "", {40, 100000, (std::size_t(1) << 20) + 5}));
    auto cap = proxy.captured();
    EXPECT_GT(cap.size(), std::size_t(1) << 20) << "the proxy did not carry the messages";
    EXPECT_EQ(cap.find(kPattern.substr(0, 12)), std::string::npos)
        << "user bytes in clear on the wire";
  }
  {
    Proxy proxy(server.port(), Attack::none, false);
    expect_all_ok(transfer(proxy.port(), false, "", {40, 100000}));
    EXPECT_NE(proxy.captured().find(kPattern), std::string::npos)
        << "encryption: false should leave the bytes visible to this capture";
  }
}

// Row "passive observer, with a secret": same, through the secret's HKDF salt.
TEST(DirectEncryption, CaptureWithSecretShowsNoUserBytes) {
  SecretFile sf(kSecret);
  RendezvousServer server({"--secret-file", sf.path()});
  Proxy proxy(server.port(), Attack::none, true);
  expect_all_ok(transfer(proxy.port(), true, kSecret, {8, 300000}));
  EXPECT_EQ(proxy.captured().find(kPattern.substr(0, 12)), std::string::npos);
}

// Row "active splicer, with a secret": a key share replaced on the way (what a man
// in the middle must do to read the data) fails the handshake: PeerError naming
// the peer, authentication failed.
TEST(DirectEncryption, SubstitutedKeyShareFailsTheHandshakeWithSecret) {
  SecretFile sf(kSecret);
  RendezvousServer server({"--secret-file", sf.path()});
  Proxy proxy(server.port(), Attack::key_share, true);
  auto res = run_forked(2, [&](unsigned me) {
    auto ch = channel(proxy.port(), me, true, kSecret, 3s);
    const std::string error = handshake_error(*ch);
    unsigned other = 1 - me;
    PEER_CHECK(
        error.find("authentication failed with peer " + std::to_string(other)) != std::string::npos,
        "got: '", error, "'");
    PEER_CHECK(error.find("key confirmation") != std::string::npos, error);
  });
  expect_all_ok(res);
  EXPECT_GT(proxy.attacked(), 0u);
}

// Without a secret an altered handshake is still caught (the two transcripts
// differ, so do the keys and the confirmations). A man in the middle that runs its
// own key exchange with each side is not (docs/security.md says so).
TEST(DirectEncryption, AlteredKeyShareFailsTheHandshakeWithoutSecret) {
  RendezvousServer server;
  Proxy proxy(server.port(), Attack::key_share, true);
  auto res = run_forked(2, [&](unsigned me) {
    auto ch = channel(proxy.port(), me, true, "", 3s);
    const std::string error = handshake_error(*ch);
    PEER_CHECK(error.find("key confirmation") != std::string::npos, "got: '", error, "'");
  });
  expect_all_ok(res);
}

// Row "tampering with ciphertext": one flipped bit in a frame, without a secret.
TEST(DirectEncryption, FlippedBitRaisesPeerError) {
  RendezvousServer server;
  Proxy proxy(server.port(), Attack::flip, true);
  expect_detected(proxy.port(), "", 100000, "failed authentication");
  EXPECT_GT(proxy.attacked(), 0u);
}

TEST(DirectEncryption, FlippedBitInASmallMessageRaisesPeerError) {
  RendezvousServer server;
  Proxy proxy(server.port(), Attack::flip, true);
  expect_detected(proxy.port(), "", 8, "failed authentication");
}

// A frame sent twice: the copy is opened with the next sequence number and fails.
TEST(DirectEncryption, ReplayedFrameRaisesPeerError) {
  RendezvousServer server;
  Proxy proxy(server.port(), Attack::replay, true);
  expect_detected(proxy.port(), "", 1000, "failed authentication");
  EXPECT_GT(proxy.attacked(), 0u);
}

// The stream cut after the first frame: the receiver reports the lost connection.
TEST(DirectEncryption, CutStreamRaisesPeerError) {
  RendezvousServer server;
  Proxy proxy(server.port(), Attack::cut, true);
  expect_detected(proxy.port(), "", (std::size_t(1) << 20) + 5, "closed the connection");
}

// encryption: false on both sides still works (trusted networks); one side with
// and one without fail the handshake with a PeerError naming the other peer.
TEST(DirectEncryption, EncryptionOffInteroperatesAndMismatchFails) {
  RendezvousServer server;
  expect_all_ok(transfer(server.port(), false, "", {0, 7, 300000}));
  auto res = run_forked(2, [&](unsigned me) {
    auto ch = channel(server.port(), me, me == 0, "", 3s);
    const std::string error = handshake_error(*ch);
    PEER_CHECK(error.find("peer " + std::to_string(1 - me)) != std::string::npos, "got: '", error,
               "'");
    PEER_CHECK(error.find("backends.Direct.encryption") != std::string::npos, error);
  });
  expect_all_ok(res);
}

// The record layout and the AEAD on their own: records of every size round-trip,
// and a message opened with the wrong header (additional data) fails.
TEST(DirectEncryption, RecordsRoundTripAndBindTheHeader) {
  namespace sec = FMI::Direct::secure;
  sec::SessionKeys k;
  for (std::size_t i = 0; i < 32; ++i) k.key[0][i] = k.key[1][i] = std::uint8_t(i);
  sec::Link a(k, true), b(k, false);
  for (std::size_t size :
       {std::size_t(0), std::size_t(1), sec::kRecord, sec::kRecord + 1, 3 * sec::kRecord + 17}) {
    std::vector<std::byte> msg(size), wire, out(size);
    for (std::size_t i = 0; i < size; ++i) msg[i] = std::byte(i * 7);
    std::byte hdr[16] = {std::byte{1}, std::byte{2}};
    for (std::size_t r = 0; r < sec::records(size); ++r) {
      std::size_t off = r * sec::kRecord, n = sec::record_len(size, r);
      std::vector<std::byte> c(n + sec::kTag);
      a.tx.seal(hdr, 16, msg.data() + off, n, c.data(), c.data() + n);
      wire.insert(wire.end(), c.begin(), c.end());
    }
    ASSERT_EQ(wire.size(), sec::body_size(size));
    sec::BodyReader rd;
    rd.start(hdr, out.data(), size);
    std::size_t pos = 0;
    while (!rd.done()) {
      iovec v[2];
      int n = rd.iov(v);
      std::size_t got = 0;
      for (int j = 0; j < n; ++j) {
        std::memcpy(v[j].iov_base, wire.data() + pos + got, v[j].iov_len);
        got += v[j].iov_len;
      }
      pos += got;
      ASSERT_TRUE(rd.advance(b.rx, got)) << "size " << size << " record " << rd.record();
    }
    EXPECT_EQ(out, msg) << "size " << size;
  }
  // The header is additional data: another header, same ciphertext, fails.
  std::byte hdr[16] = {}, other[16] = {std::byte{9}};
  std::byte data[4] = {}, tagb[16];
  sec::Link c(k, true), d(k, false);
  c.tx.seal(hdr, 16, data, 4, data, tagb);
  EXPECT_FALSE(d.rx.open(other, 16, data, 4, tagb));
}

namespace {
namespace sec = FMI::Direct::secure;

sec::SessionKeys test_keys(sec::Cipher c) {
  sec::SessionKeys k;
  for (std::size_t i = 0; i < 32; ++i) k.key[0][i] = k.key[1][i] = std::uint8_t(i * 5 + 1);
  k.cipher = c;
  return k;
}

// A small deterministic generator for piece and read sizes.
struct Lcg {
  std::uint64_t s;
  std::size_t next(std::size_t mod) {
    s = s * 6364136223846793005u + 1442695040888963407u;
    return std::size_t(s >> 33) % mod;
  }
};

/// The body of a message of `size` bytes sealed by BodyWriter in pieces of varying
/// sizes (as the channel does, but with other sizes), with `room` bytes of buffer.
std::vector<std::byte> seal_in_pieces(sec::Link& link, const std::byte* hdr,
                                      const std::vector<std::byte>& msg, Lcg& rng) {
  sec::BodyWriter w;
  w.start(hdr, msg.data(), msg.size());
  std::vector<std::byte> wire, buf(sec::kRecord + sec::kTag);
  while (!w.done()) {
    const std::size_t want = 1 + rng.next(3 * sec::kPiece);
    const std::size_t room = sec::kTag + rng.next(buf.size() - sec::kTag + 1);
    const std::size_t n = w.produce(link.tx, buf.data(), room, want);
    // Only a buffer with room for the tag alone takes nothing (but an empty record).
    if (n == 0) {
      EXPECT_EQ(room, sec::kTag) << "want " << want;
      if (room != sec::kTag) break;
      continue;
    }
    wire.insert(wire.end(), buf.begin(), buf.begin() + std::ptrdiff_t(n));
  }
  return wire;
}

/// Reads `wire` through a BodyReader in short reads of varying sizes. Returns the
/// record that failed authentication, or -1 when every record opened.
long open_in_pieces(sec::Link& link, const std::byte* hdr, const std::vector<std::byte>& wire,
                    std::vector<std::byte>& out, Lcg& rng) {
  sec::BodyReader rd;
  rd.start(hdr, out.data(), out.size());
  std::size_t pos = 0;
  while (!rd.done()) {
    iovec v[2];
    const int n = rd.iov(v);
    std::size_t want = 1 + rng.next(70000), got = 0;
    for (int j = 0; j < n && got < want; ++j) {
      const std::size_t m = std::min(v[j].iov_len, want - got);
      std::memcpy(v[j].iov_base, wire.data() + pos + got, m);
      got += m;
      if (m < v[j].iov_len) break;
    }
    pos += got;
    const std::size_t rec = rd.record();
    if (!rd.advance(link.rx, got)) return long(rec);
  }
  EXPECT_EQ(pos, wire.size());
  return -1;
}
}  // namespace

// Records sealed in pieces and opened in pieces, for both ciphers, at the record
// boundaries: the wire bytes are those of sealing each record at once (the pieces
// are not part of the format), every payload comes back, and a flipped bit or a
// wrong header fails the record where it is.
TEST(DirectEncryption, PiecesMatchWholeRecordsAtEveryBoundary) {
  const std::size_t R = sec::kRecord;
  for (auto cipher : {sec::Cipher::aes_256_gcm, sec::Cipher::chacha20_poly1305}) {
    const auto k = test_keys(cipher);
    Lcg rng{std::uint64_t(cipher) * 977};
    sec::Link a(k, true), b(k, false), whole(k, true);
    for (std::size_t size : {std::size_t(0), std::size_t(1), sec::kFirstPiece - 1, R - 1, R, R + 1,
                             2 * R, 3 * R + 17, std::size_t(1000003)}) {
      SCOPED_TRACE(std::string(sec::name(cipher)) + ", " + std::to_string(size) + " bytes");
      std::vector<std::byte> msg(size), out(size, std::byte{0x55});
      for (std::size_t i = 0; i < size; ++i) msg[i] = std::byte(std::uint8_t(i * 13 + (i >> 9)));
      std::byte hdr[16] = {std::byte{3}, std::byte(size & 0xff)};
      auto wire = seal_in_pieces(a, hdr, msg, rng);
      ASSERT_EQ(wire.size(), sec::body_size(size));
      std::vector<std::byte> ref;
      for (std::size_t r = 0; r < sec::records(size); ++r) {
        const std::size_t n = sec::record_len(size, r);
        std::vector<std::byte> c(n + sec::kTag);
        whole.tx.seal(hdr, 16, msg.data() + r * R, n, c.data(), c.data() + n);
        ref.insert(ref.end(), c.begin(), c.end());
      }
      ASSERT_TRUE(wire == ref) << "pieces changed the wire bytes";
      ASSERT_EQ(open_in_pieces(b, hdr, wire, out, rng), -1);
      EXPECT_TRUE(out == msg);
    }
    // A bit flipped in record 2 (payload), then a tag of the last record: the
    // record where it happened fails. Fresh links: a failed record leaves the
    // direction's sequence out of step, as on a real connection (given up).
    const std::size_t size = 3 * R + 17;
    std::vector<std::byte> msg(size, std::byte{7}), out(size);
    std::byte hdr[16] = {};
    for (auto [at, rec] : {std::pair<std::size_t, long>{2 * (R + sec::kTag) + 1000, 2},
                           std::pair<std::size_t, long>{sec::body_size(size) - 1, 3}}) {
      sec::Link c(k, true), d(k, false);
      auto wire = seal_in_pieces(c, hdr, msg, rng);
      wire[at] ^= std::byte{0x10};
      EXPECT_EQ(open_in_pieces(d, hdr, wire, out, rng), rec) << sec::name(cipher) << " at " << at;
    }
    // Another header (additional data) fails the first record.
    sec::Link c(k, true), d(k, false);
    auto wire = seal_in_pieces(c, hdr, msg, rng);
    std::byte other[16] = {std::byte{1}};
    EXPECT_EQ(open_in_pieces(d, other, wire, out, rng), 0) << sec::name(cipher);
  }
  // The two ciphers are not interchangeable: AES-sealed bytes do not open as ChaCha20.
  sec::Link a(test_keys(sec::Cipher::aes_256_gcm), true);
  sec::Link b(test_keys(sec::Cipher::chacha20_poly1305), false);
  std::byte hdr[16] = {}, data[40] = {}, t[16];
  a.tx.seal(hdr, 16, data, sizeof data, data, t);
  EXPECT_FALSE(b.rx.open(hdr, 16, data, sizeof data, t));
}

// AES-256-GCM through ipsec-mb (where this CPU has VAES) and through OpenSSL is one
// cipher: either side of a connection may have either (one peer's CPU may lack VAES),
// so records sealed by one, in pieces of odd lengths, open with the other, byte for
// byte as OpenSSL seals them, and a flipped bit or another header fails under both.
TEST(DirectEncryption, AesGcmImplementationsInteroperate) {
  const auto k = test_keys(sec::Cipher::aes_256_gcm);
  EXPECT_STREQ(sec::Link(k, true, sec::Impl::openssl).tx.impl(), "OpenSSL");
  std::printf("AES-256-GCM on this machine: %s\n", sec::Link(k, true).tx.impl());
  Lcg rng{4711};
  const std::size_t R = sec::kRecord;
  for (auto [from, to] : {std::pair{sec::Impl::fastest, sec::Impl::openssl},
                          std::pair{sec::Impl::openssl, sec::Impl::fastest},
                          std::pair{sec::Impl::fastest, sec::Impl::fastest}}) {
    sec::Link a(k, true, from), b(k, false, to), ref(k, true, sec::Impl::openssl);
    for (std::size_t size : {std::size_t(0), std::size_t(1), std::size_t(15), std::size_t(17),
                             R - 1, R + 1, 3 * R + 4099}) {
      SCOPED_TRACE(std::string(a.tx.impl()) + " -> " + b.rx.impl() + ", " + std::to_string(size) +
                   " bytes");
      std::vector<std::byte> msg(size), out(size, std::byte{0x33});
      for (std::size_t i = 0; i < size; ++i) msg[i] = std::byte(std::uint8_t(i * 7 + (i >> 11)));
      std::byte hdr[16] = {std::byte{9}, std::byte(size & 0xff)};
      const auto wire = seal_in_pieces(a, hdr, msg, rng);
      ASSERT_TRUE(wire == seal_in_pieces(ref, hdr, msg, rng)) << "not OpenSSL's AES-256-GCM";
      ASSERT_EQ(open_in_pieces(b, hdr, wire, out, rng), -1);
      EXPECT_TRUE(out == msg);
    }
    // Fresh links for each forgery (a failed record leaves the sequence out of step).
    const std::size_t size = 3 * R + 4099;
    std::vector<std::byte> msg(size, std::byte{5}), out(size);
    std::byte hdr[16] = {};
    for (auto [at, rec] : {std::pair<std::size_t, long>{R + sec::kTag + 5, 1},
                           std::pair<std::size_t, long>{R + 3, 0},  // record 0's tag
                           std::pair<std::size_t, long>{sec::body_size(size) - 1, 3}}) {
      sec::Link c(k, true, from), d(k, false, to);
      auto wire = seal_in_pieces(c, hdr, msg, rng);
      wire[at] ^= std::byte{0x01};
      EXPECT_EQ(open_in_pieces(d, hdr, wire, out, rng), rec) << "at " << at;
    }
    sec::Link c(k, true, from), d(k, false, to);
    const auto wire = seal_in_pieces(c, hdr, msg, rng);
    std::byte other[16] = {std::byte{1}};
    EXPECT_EQ(open_in_pieces(d, other, wire, out, rng), 0);
  }
  // FMI_DIRECT_AES: openssl, ipsec-mb or unset, checked before any connection.
  for (const char* ok : {"openssl", "ipsec-mb", ""}) {
    ::setenv("FMI_DIRECT_AES", ok, 1);
    EXPECT_NO_THROW(sec::local_cipher()) << ok;
  }
  ::setenv("FMI_DIRECT_AES", "OpenSSL3", 1);
  try {
    sec::local_cipher();
    ADD_FAILURE() << "FMI_DIRECT_AES=OpenSSL3 accepted";
  } catch (const FMI::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("FMI_DIRECT_AES='OpenSSL3'"), std::string::npos)
        << e.what();
  }
  ::unsetenv("FMI_DIRECT_AES");
}

// The cipher two HELLOs agree on (docs/direct.md "Encryption"), and FMI_DIRECT_CIPHER.
TEST(DirectEncryption, CipherAgreement) {
  const std::uint8_t aes = std::uint8_t(sec::Cipher::aes_256_gcm);
  const std::uint8_t cha = std::uint8_t(sec::Cipher::chacha20_poly1305), forced = 0x80;
  std::string why;
  EXPECT_EQ(sec::agree(aes, aes, why), sec::Cipher::aes_256_gcm);
  EXPECT_EQ(sec::agree(cha, cha, why), sec::Cipher::chacha20_poly1305);
  // A side without AES instructions prefers ChaCha20: both use it.
  EXPECT_EQ(sec::agree(aes, cha, why), sec::Cipher::chacha20_poly1305);
  EXPECT_EQ(sec::agree(cha, aes, why), sec::Cipher::chacha20_poly1305);
  // A forced cipher wins over a preference, on either side.
  EXPECT_EQ(sec::agree(aes | forced, cha, why), sec::Cipher::aes_256_gcm);
  EXPECT_EQ(sec::agree(cha, aes | forced, why), sec::Cipher::aes_256_gcm);
  EXPECT_EQ(sec::agree(cha | forced, aes, why), sec::Cipher::chacha20_poly1305);
  EXPECT_EQ(sec::agree(aes | forced, aes | forced, why), sec::Cipher::aes_256_gcm);
  why.clear();
  EXPECT_FALSE(sec::agree(aes | forced, cha | forced, why));
  EXPECT_NE(why.find("it forces chacha20-poly1305 and this peer aes-256-gcm"), std::string::npos)
      << why;
  EXPECT_NE(why.find("FMI_DIRECT_CIPHER"), std::string::npos) << why;
  EXPECT_FALSE(sec::agree(aes, 0, why));
  EXPECT_FALSE(sec::agree(aes, 9, why));
  EXPECT_NE(why.find("unknown cipher"), std::string::npos) << why;

  ::setenv("FMI_DIRECT_CIPHER", "chacha20-poly1305", 1);
  EXPECT_EQ(sec::local_cipher(), cha | forced);
  ::setenv("FMI_DIRECT_CIPHER", "aes-256-gcm", 1);
  EXPECT_EQ(sec::local_cipher(), aes | forced);
  ::setenv("FMI_DIRECT_CIPHER", "aes", 1);
  try {
    sec::local_cipher();
    ADD_FAILURE() << "FMI_DIRECT_CIPHER=aes accepted";
  } catch (const FMI::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("FMI_DIRECT_CIPHER='aes'"), std::string::npos) << e.what();
  }
  ::unsetenv("FMI_DIRECT_CIPHER");
  const std::uint8_t own = sec::local_cipher();
  EXPECT_TRUE(own == aes || own == cha) << int(own);
}

// Both ciphers end to end between two peers (through the proxy, relayed), a forced
// cipher against a preference, and two forced ciphers that differ: PeerError at the
// handshake naming the other peer and FMI_DIRECT_CIPHER.
TEST(DirectEncryption, BothCiphersInteroperateAndAMismatchFails) {
  RendezvousServer server;
  Proxy proxy(server.port(), Attack::none, true);
  const std::vector<std::size_t> sizes = {
      0, 1, sec::kRecord, sec::kRecord + 1, 3 * sec::kRecord + 17, 70000};
  expect_all_ok(
      transfer(proxy.port(), true, "", sizes, {"chacha20-poly1305", "chacha20-poly1305"}));
  expect_all_ok(transfer(proxy.port(), true, kSecret, sizes, {"aes-256-gcm", "aes-256-gcm"}));
  expect_all_ok(transfer(proxy.port(), true, "", sizes, {"chacha20-poly1305", ""}));
  expect_all_ok(transfer(proxy.port(), true, "", sizes, {"", "aes-256-gcm"}));
  auto res = run_forked(2, [&](unsigned me) {
    ::setenv("FMI_DIRECT_CIPHER", me == 0 ? "aes-256-gcm" : "chacha20-poly1305", 1);
    auto ch = channel(server.port(), me, true, "", 3s);
    const std::string error = handshake_error(*ch);
    PEER_CHECK(error.find("peer " + std::to_string(1 - me)) != std::string::npos, "got: '", error,
               "'");
    PEER_CHECK(error.find("FMI_DIRECT_CIPHER") != std::string::npos, error);
  });
  expect_all_ok(res);
}

// Tampering is detected the same way with ChaCha20-Poly1305.
TEST(DirectEncryption, FlippedBitRaisesPeerErrorWithChaCha20) {
  RendezvousServer server;
  Proxy proxy(server.port(), Attack::flip, true);
  ::setenv("FMI_DIRECT_CIPHER", "chacha20-poly1305", 1);  // inherited by the forked peers
  expect_detected(proxy.port(), "", 300000, "failed authentication");
  ::unsetenv("FMI_DIRECT_CIPHER");
  EXPECT_GT(proxy.attacked(), 0u);
}
