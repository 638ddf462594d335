// Point-to-point send/recv over both channel kinds: ring exchange in every Data form
// and size, all pairs, several messages in order, 0-byte messages.
#include "buffers.h"
#include "harness.h"

namespace fmitest {
namespace {

struct Param {
  Kind kind;
  peer_num n;
};

void PrintTo(const Param& p, std::ostream* os) {
  *os << kind_name(p.kind) << ", " << p.n << " peers";
}

std::string param_name(const ::testing::TestParamInfo<Param>& i) {
  return std::string(kind_name(i.param.kind)) + "_n" + std::to_string(i.param.n);
}

class SendRecv : public ::testing::TestWithParam<Param> {};

std::vector<SizeCase> sizes(peer_num n) {
  std::vector<SizeCase> v = {
      {"one_int", Form::ints, sizeof(int)},
      {"1_byte", Form::chars, 1},
      {"3_bytes", Form::chars, 3},
      {"1001_bytes", Form::chars, 1001},
      {"raw_1001_bytes", Form::raw, 1001},
      {"125_doubles", Form::doubles, 1000},
      {"empty", Form::chars, 0},
      {"raw_empty", Form::raw, 0},
  };
  if (big_for(n)) v.push_back({"4MiB", Form::raw, kBig});
  return v;
}

// Peer p sends to p+1 and receives from p-1 (odd/even order: no reliance on
// buffering of sends).
TEST_P(SendRecv, Ring) {
  const auto [kind, n] = GetParam();
  if (n < 2) GTEST_SKIP() << "a ring needs two peers";
  for (const SizeCase& s : sizes(n)) {
    run_peers(n, kind, [&](FMI::Communicator& c) {
      const peer_num p = c.peer_id();
      const peer_num next = (p + 1) % n, prev = (p + n - 1) % n;
      auto out = make_buf(s.form, s.unit);
      auto in = make_buf(s.form, s.unit);
      fill_pattern(bytes(*out), p, next);
      auto do_send = [&] { std::visit([&](auto& d) { c.send(d, next); }, out->d); };
      auto do_recv = [&] { std::visit([&](auto& d) { c.recv(d, prev); }, in->d); };
      if (p % 2 == 0) {
        do_send();
        do_recv();
      } else {
        do_recv();
        do_send();
      }
      std::vector<std::byte> e(s.unit);
      fill_pattern(e, prev, p);
      EXPECT_TRUE(bytes_equal(bytes(*in), e)) << "size case " << s.name << ", peer " << p;
    });
  }
}

// Every ordered pair exchanges one message; pairs are visited in one global order,
// so this cannot deadlock even if sends were synchronous.
TEST_P(SendRecv, AllPairs) {
  const auto [kind, n] = GetParam();
  run_peers(n, kind, [&](FMI::Communicator& c) {
    const peer_num p = c.peer_id();
    for (peer_num a = 0; a < n; ++a)
      for (peer_num b = a + 1; b < n; ++b) {
        if (p != a && p != b) continue;
        const peer_num other = p == a ? b : a;
        Data<std::vector<char>> out(std::vector<char>(17 + a + b)), in(17 + a + b);
        fill_pattern({reinterpret_cast<std::byte*>(out.data()), out.size_in_bytes()}, p, other);
        if (p == a) {
          c.send(out, other);
          c.recv(in, other);
        } else {
          c.recv(in, other);
          c.send(out, other);
        }
        std::vector<std::byte> e(17 + a + b);
        fill_pattern(e, other, p);
        EXPECT_TRUE(bytes_equal({reinterpret_cast<std::byte*>(in.data()), in.size_in_bytes()}, e))
            << "message from " << other << " to " << p;
      }
  });
}

// Several messages of different sizes and types between one pair arrive in order.
TEST_P(SendRecv, SeveralMessagesInOrder) {
  const auto [kind, n] = GetParam();
  if (n < 2) GTEST_SKIP() << "needs two peers";
  const peer_num last = n - 1;
  run_peers(n, kind, [&](FMI::Communicator& c) {
    const peer_num p = c.peer_id();
    const std::size_t lens[] = {5, 0, 1, 1001, 3, 0, 64, 2};
    if (p == 0) {
      for (int k = 0; k < 8; ++k) {
        Data<std::vector<char>> m(lens[k]);
        for (std::size_t i = 0; i < lens[k]; ++i) m.ref()[i] = static_cast<char>(k * 16 + i);
        c.send(m, last);
      }
      for (int k = 0; k < 10; ++k) {
        Data<int> v = k * 3 + 1;
        c.send(v, last);
      }
      Data<double> d;
      c.recv(d, last);
      EXPECT_EQ(d.get(), 2.5);
    } else if (p == last) {
      for (int k = 0; k < 8; ++k) {
        Data<std::vector<char>> m(lens[k]);
        c.recv(m, 0);
        for (std::size_t i = 0; i < lens[k]; ++i)
          ASSERT_EQ(m.get()[i], static_cast<char>(k * 16 + i)) << "message " << k << " byte " << i;
      }
      for (int k = 0; k < 10; ++k) {
        Data<int> v;
        c.recv(v, 0);
        EXPECT_EQ(v.get(), k * 3 + 1) << "int message " << k;
      }
      Data<double> d = 2.5;
      c.send(d, 0);
    }
  });
}

// Point-to-point messages and collectives interleaved, received in the order sent.
TEST_P(SendRecv, InterleavedWithCollectives) {
  const auto [kind, n] = GetParam();
  if (n < 2) GTEST_SKIP() << "needs two peers";
  run_peers(n, kind, [&](FMI::Communicator& c) {
    const peer_num p = c.peer_id();
    for (int round = 0; round < 3; ++round) {
      Data<int> b = p == 0 ? 1000 + round : -1;
      if (p == 0) {
        Data<int> m = round;
        c.send(m, 1);
      }
      if (p == 1) {
        Data<int> m = -1;
        c.recv(m, 0);
        EXPECT_EQ(m.get(), round);
      }
      c.bcast(b, 0);
      EXPECT_EQ(b.get(), 1000 + round);
    }
  });
}

// The receiver enters a collective before receiving a message that its sender sent
// before the collective (legal in MPI: messages are matched by tag, not by arrival).
// Collectives must not take the point-to-point message, nor fail because of it.
TEST_P(SendRecv, CollectiveBeforeReceivingEarlierMessage) {
  const auto [kind, n] = GetParam();
  if (n < 2) GTEST_SKIP() << "needs two peers";
  run_peers(n, kind, [&](FMI::Communicator& c) {
    const peer_num p = c.peer_id();
    for (int round = 0; round < 3; ++round) {
      Data<int> b = p == 0 ? 1000 + round : -1;
      if (p == 0) {
        Data<int> m = round;
        c.send(m, 1);
      }
      c.bcast(b, 0);
      EXPECT_EQ(b.get(), 1000 + round);
      if (p == 1) {
        Data<int> m = -1;
        c.recv(m, 0);
        EXPECT_EQ(m.get(), round);
      }
    }
  });
}

std::vector<Param> params() {
  std::vector<Param> v;
  for (Kind k : {Kind::p2p, Kind::store})
    for (peer_num n : kPeerCounts) v.push_back({k, n});
  return v;
}

INSTANTIATE_TEST_SUITE_P(All, SendRecv, ::testing::ValuesIn(params()), param_name);

// Sends up to 100 bytes take the point-to-point channel, larger ones the store.
class BySize : public FMI::Utils::ChannelPolicy {
 public:
  std::string get_channel(const FMI::Utils::OperationInfo& info,
                          const FMI::Utils::ChannelMap&) override {
    return info.data_size <= 100 ? "p2p" : "store";
  }
};

// With two channels an any-source receive cannot know which one its message took
// (the sender's policy chose by size): probe asks both, and recv takes the message
// from where probe found it. Peers 1..4 each send a small and then a large message
// to peer 0, whose probes see each source's small one first (per-pair order across
// channels), then its large one.
TEST(AnySourceTwoChannels, ProbeFindsTheChannelTheSenderChose) {
  const peer_num n = 5;
  FMI::Comm::InProcessHub hub(n, std::chrono::milliseconds(10000));
  auto errors = run_threads(n, [&](unsigned me) {
    FMI::Communicator c(me, n, FMI::Config{}, "two-channels");
    c.register_channel("p2p", hub.p2p_endpoint());
    c.register_channel("store", hub.store_endpoint());
    c.set_channel_policy(std::make_shared<BySize>());
    auto size = [](unsigned p, int k) { return k == 0 ? std::size_t(p * 4) : 1000 + p; };
    if (me != 0) {
      for (int k = 0; k < 2; ++k) {
        std::vector<char> m(size(me, k), char('a' + me + k));
        Data<std::vector<char>> d(m);
        c.send(d, 0);
      }
    } else {
      std::vector<int> next(n, 0);
      for (unsigned i = 0; i < 2 * (n - 1); ++i) {
        const FMI::Status st = c.probe(FMI::any_source);
        PEER_CHECK(st.source > 0 && st.source < n && next[st.source] < 2, "source ", st.source);
        PEER_CHECK(st.bytes == size(st.source, next[st.source]), "peer ", st.source, " message ",
                   next[st.source], ": ", st.bytes, " bytes");
        Data<std::vector<char>> d(std::vector<char>(st.bytes));
        // From st.source: an any-source recv could match a message that arrived since.
        const FMI::Status r = c.recv(d, st.source);
        PEER_CHECK(r.source == st.source && r.bytes == st.bytes, "recv after probe: peer ",
                   r.source);
        for (char ch : d.get())
          PEER_CHECK(ch == char('a' + r.source + next[r.source]), "content from ", r.source);
        ++next[r.source];
      }
      PEER_CHECK(!c.iprobe(FMI::any_source), "a message is left");
    }
    c.barrier();
  });
  expect_no_errors(errors, "AnySourceTwoChannels");
}

}  // namespace
}  // namespace fmitest
