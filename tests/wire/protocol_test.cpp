// The rendezvous/handshake wire format: round trips, and rejection of malformed input.
#include <gtest/gtest.h>

#include <random>

#include "fmi/errors.h"
#include "wire/protocol.h"

using namespace FMI::Wire::proto;

namespace {

Endpoint ep(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d, std::uint16_t port) {
  Endpoint e;
  e.addr[0] = a, e.addr[1] = b, e.addr[2] = c, e.addr[3] = d;
  e.port = port;
  return e;
}

Message round_trip(const Message& m) {
  auto frame = encode(m);
  std::size_t used = 0;
  auto out = try_decode(frame, kMaxReplyPayload, used);
  EXPECT_TRUE(out.has_value());
  EXPECT_EQ(used, frame.size());
  // Every strict prefix is incomplete, never an error.
  for (std::size_t k = 0; k < frame.size(); ++k) {
    std::size_t u = 7;
    EXPECT_FALSE(try_decode(std::span(frame).first(k), kMaxReplyPayload, u).has_value());
    EXPECT_EQ(u, 0u);
  }
  return *out;
}

}  // namespace

TEST(DirectProtocol, RegisterRoundTrip) {
  Register r{"my-comm", 3, 8, 0x0123456789abcdefULL, ep(10, 0, 0, 7, 40000)};
  auto m = std::get<Register>(round_trip(r));
  EXPECT_EQ(m.comm, "my-comm");
  EXPECT_EQ(m.peer_id, 3u);
  EXPECT_EQ(m.num_peers, 8u);
  EXPECT_EQ(m.session, 0x0123456789abcdefULL);
  EXPECT_EQ(m.private_ep.str(), "10.0.0.7:40000");
}

TEST(DirectProtocol, TableRoundTripWithIPv6) {
  Table t;
  for (std::uint32_t i = 0; i < 5; ++i) {
    PeerEntry e{ep(1, 2, 3, std::uint8_t(i), std::uint16_t(1000 + i)), ep(192, 168, 0, 1, 5), i};
    if (i == 2) {
      e.public_ep.v6 = true;
      e.public_ep.addr = {};
      e.public_ep.addr[15] = 1;
    }
    t.peers.push_back(e);
  }
  auto m = std::get<Table>(round_trip(t));
  ASSERT_EQ(m.peers.size(), 5u);
  EXPECT_EQ(m.peers[2].public_ep.str(), "[::1]:1002");
  EXPECT_EQ(m.peers[4].public_ep.str(), "1.2.3.4:1004");
  EXPECT_EQ(m.peers[4].session, 4u);
}

TEST(DirectProtocol, SmallMessagesRoundTrip) {
  EXPECT_EQ(std::get<Registered>(round_trip(Registered{ep(8, 8, 4, 4, 53)})).public_ep.str(),
            "8.8.4.4:53");
  auto e = std::get<ErrorMsg>(round_trip(ErrorMsg{ErrorCode::expired, "too late"}));
  EXPECT_EQ(e.code, ErrorCode::expired);
  EXPECT_EQ(e.text, "too late");
  auto h = std::get<Hello>(round_trip(Hello{"c", 7, 99}));
  EXPECT_EQ(h.peer_id, 7u);
  EXPECT_EQ(h.session, 99u);
  auto rl = std::get<Relay>(round_trip(Relay{"c", 1, 4, 11, 44}));
  EXPECT_EQ(rl.from, 1u);
  EXPECT_EQ(rl.to, 4u);
  EXPECT_EQ(rl.to_session, 44u);
  EXPECT_TRUE(std::holds_alternative<RelayReady>(round_trip(RelayReady{})));
  EXPECT_TRUE(std::get<Decide>(round_trip(Decide{true})).accept);
  EXPECT_FALSE(std::get<Decide>(round_trip(Decide{false})).accept);
}

TEST(DirectProtocol, AuthenticationFieldsRoundTrip) {
  Proof proof;
  for (std::size_t i = 0; i < kNonceSize; ++i) {
    proof.nonce[i] = std::uint8_t(i);
    proof.mac[i] = std::uint8_t(255 - i);
  }
  auto r = std::get<Register>(round_trip(Register{"c", 1, 2, 3, ep(1, 2, 3, 4, 5), proof}));
  ASSERT_TRUE(r.proof);
  EXPECT_EQ(r.proof->nonce, proof.nonce);
  EXPECT_EQ(r.proof->mac, proof.mac);
  EXPECT_FALSE(std::get<Register>(round_trip(Register{"c", 1, 2, 3, ep(1, 2, 3, 4, 5)})).proof);
  auto rl = std::get<Relay>(round_trip(Relay{"c", 1, 4, 11, 44, proof}));
  ASSERT_TRUE(rl.proof);
  EXPECT_EQ(rl.proof->mac, proof.mac);
  auto ch = std::get<Challenge>(round_trip(Challenge{true, proof.nonce}));
  EXPECT_TRUE(ch.auth);
  EXPECT_EQ(ch.nonce, proof.nonce);
  auto h = std::get<Hello>(round_trip(Hello{"c", 7, 99, true, proof.nonce}));
  EXPECT_TRUE(h.auth);
  EXPECT_EQ(h.nonce, proof.nonce);
  EXPECT_EQ(std::get<PeerProof>(round_trip(PeerProof{proof.mac})).mac, proof.mac);
  // A flag other than 0/1 is malformed.
  auto bad = encode(Challenge{true, proof.nonce});
  bad[kHeaderSize] = std::byte{2};
  std::size_t used;
  EXPECT_THROW(try_decode(bad, kMaxRequestPayload, used), FMI::ChannelError);
}

TEST(DirectProtocol, RejectsMalformedInput) {
  std::size_t used;
  auto frame = encode(Register{"c", 0, 2, 1, ep(1, 1, 1, 1, 1)});
  // Bad magic is rejected from the first byte on.
  std::vector<std::byte> bad{std::byte{'G'}, std::byte{'E'}};
  EXPECT_THROW(try_decode(bad, kMaxRequestPayload, used), FMI::ChannelError);
  // Unsupported version (1: before authentication was added).
  auto v1 = frame;
  v1[4] = std::byte{1};
  EXPECT_THROW(try_decode(v1, kMaxRequestPayload, used), FMI::ChannelError);
  // Oversized length prefix: rejected from the header alone.
  auto big = frame;
  big[6] = std::byte{0x7f};
  EXPECT_THROW(try_decode(std::span(big).first(kHeaderSize), kMaxRequestPayload, used),
               FMI::ChannelError);
  // Peer id out of range, zero peers, trailing bytes, unknown type, bad family.
  EXPECT_THROW(try_decode(encode(Register{"c", 2, 2, 1, {}}), kMaxRequestPayload, used),
               FMI::ChannelError);
  EXPECT_THROW(try_decode(encode(Register{"c", 0, 0, 1, {}}), kMaxRequestPayload, used),
               FMI::ChannelError);
  EXPECT_THROW(try_decode(encode(Relay{"c", 3, 3, 1, 1}), kMaxRequestPayload, used),
               FMI::ChannelError);
  auto trailing = frame;
  trailing.push_back(std::byte{0});
  trailing[9] = std::byte(std::to_integer<int>(trailing[9]) + 1);
  EXPECT_THROW(try_decode(trailing, kMaxRequestPayload, used), FMI::ChannelError);
  auto type = frame;
  type[5] = std::byte{99};
  EXPECT_THROW(try_decode(type, kMaxRequestPayload, used), FMI::ChannelError);
  auto fam = encode(Registered{ep(1, 2, 3, 4, 5)});
  fam[kHeaderSize] = std::byte{5};
  EXPECT_THROW(try_decode(fam, kMaxRequestPayload, used), FMI::ChannelError);
  EXPECT_THROW(encode(Hello{std::string(300, 'x'), 0, 0}), FMI::UsageError);
}

TEST(DirectProtocol, RandomBytesNeverCrash) {
  std::mt19937 rng(42);
  std::size_t rejected = 0;
  for (int i = 0; i < 20000; ++i) {
    std::vector<std::byte> buf(rng() % 64);
    for (auto& b : buf) b = std::byte(rng());
    // Half the time, a valid header so that the payload parsers get random input.
    if (i % 2 && buf.size() >= kHeaderSize) {
      auto h = encode(Decide{true});
      std::copy(h.begin(), h.begin() + 6, buf.begin());
      std::uint32_t len = std::uint32_t(buf.size() - kHeaderSize);
      for (int k = 0; k < 4; ++k) buf[6 + k] = std::byte(std::uint8_t(len >> (24 - 8 * k)));
      buf[5] = std::byte(std::uint8_t(1 + rng() % 6));
    }
    std::size_t used;
    try {
      (void)try_decode(buf, kMaxReplyPayload, used);
    } catch (const FMI::ChannelError&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 0u);
}
