// Collectives that move data without a function (bcast, gather, scatter, allgather,
// alltoall) and barrier, over both in-process channel kinds, every peer count of the
// suite, roots {0, middle, last}, and sizes from one int through odd byte counts to
// 4 MiB, in every Data form. Every byte depends on (source peer, block, index).
#include <algorithm>
#include <atomic>

#include "buffers.h"
#include "harness.h"

namespace fmitest {
namespace {

struct Param {
  Kind kind;
  peer_num n;
  peer_num root;
};

void PrintTo(const Param& p, std::ostream* os) {
  *os << kind_name(p.kind) << ", " << p.n << " peers, root " << p.root;
}

std::string param_name(const ::testing::TestParamInfo<Param>& i) {
  return std::string(kind_name(i.param.kind)) + "_n" + std::to_string(i.param.n) + "_root" +
         std::to_string(i.param.root);
}

std::vector<Param> rooted_params() {
  std::vector<Param> v;
  for (Kind k : {Kind::p2p, Kind::store})
    for (peer_num n : kPeerCounts)
      for (peer_num r : roots_for(n)) v.push_back({k, n, r});
  return v;
}

std::vector<Param> unrooted_params() {
  std::vector<Param> v;
  for (Kind k : {Kind::p2p, Kind::store})
    for (peer_num n : kPeerCounts) v.push_back({k, n, 0});
  return v;
}

/// Sizes for one run; `block_op`: the buffer holds n blocks (4 MiB is then split).
std::vector<SizeCase> size_cases(peer_num n, bool block_op) {
  std::vector<SizeCase> v = {
      {"one_int", Form::ints, sizeof(int)},
      {"1_byte", Form::chars, 1},
      {"3_bytes", Form::chars, 3},
      {"1001_bytes", Form::chars, 1001},
      {"raw_1001_bytes", Form::raw, 1001},
      {"raw_7_bytes", Form::raw, 7},
      {"125_doubles", Form::doubles, 125 * sizeof(double)},
      {"empty", Form::chars, 0},
  };
  if (big_for(n)) v.push_back({"4MiB", Form::raw, block_op ? (kBig / n) | 1 : kBig});
  return v;
}

std::string where(const SizeCase& s, peer_num p) {
  return "size case " + s.name + ", peer " + std::to_string(p);
}

std::vector<std::byte> expected_block(peer_num peer, peer_num block, std::size_t bytes) {
  std::vector<std::byte> e(bytes);
  fill_pattern(e, peer, block);
  return e;
}

void fill_sentinel(Buf& b) { std::fill(bytes(b).begin(), bytes(b).end(), std::byte{0xEE}); }

class Rooted : public ::testing::TestWithParam<Param> {};
class Unrooted : public ::testing::TestWithParam<Param> {};

TEST_P(Rooted, Bcast) {
  const auto [kind, n, root] = GetParam();
  for (const SizeCase& s : size_cases(n, false)) {
    run_peers(n, kind, [&](FMI::Communicator& c) {
      const peer_num p = c.peer_id();
      auto buf = make_buf(s.form, s.unit);
      if (p == root)
        fill_pattern(bytes(*buf), root, 0);
      else
        fill_sentinel(*buf);
      std::visit([&](auto& d) { c.bcast(d, root); }, buf->d);
      EXPECT_TRUE(bytes_equal(bytes(*buf), expected_block(root, 0, s.unit))) << where(s, p);
    });
  }
}

TEST_P(Rooted, Gather) {
  const auto [kind, n, root] = GetParam();
  for (const SizeCase& s : size_cases(n, true)) {
    run_peers(n, kind, [&](FMI::Communicator& c) {
      const peer_num p = c.peer_id();
      auto send = make_buf(s.form, s.unit);
      auto recv = make_buf(s.form, n * s.unit);
      fill_pattern(bytes(*send), p, 0);
      fill_sentinel(*recv);
      std::visit([&](auto& sd, auto& rd) { c.gather(sd, rd, root); }, send->d, recv->d);
      EXPECT_TRUE(bytes_equal(bytes(*send), expected_block(p, 0, s.unit)))
          << "send buffer modified, " << where(s, p);
      if (p == root) {
        for (peer_num q = 0; q < n; ++q)
          EXPECT_TRUE(
              bytes_equal(bytes(*recv).subspan(q * s.unit, s.unit), expected_block(q, 0, s.unit)))
              << "block of peer " << q << ", " << where(s, p);
      }
    });
  }
}

TEST_P(Rooted, Scatter) {
  const auto [kind, n, root] = GetParam();
  for (const SizeCase& s : size_cases(n, true)) {
    run_peers(n, kind, [&](FMI::Communicator& c) {
      const peer_num p = c.peer_id();
      auto send = make_buf(s.form, n * s.unit);
      auto recv = make_buf(s.form, s.unit);
      if (p == root) {
        for (peer_num j = 0; j < n; ++j)
          fill_pattern(bytes(*send).subspan(j * s.unit, s.unit), root, j);
      } else {
        fill_sentinel(*send);
      }
      fill_sentinel(*recv);
      std::vector<std::byte> send_before(bytes(*send).begin(), bytes(*send).end());
      std::visit([&](auto& sd, auto& rd) { c.scatter(sd, rd, root); }, send->d, recv->d);
      EXPECT_TRUE(bytes_equal(bytes(*recv), expected_block(root, p, s.unit))) << where(s, p);
      EXPECT_TRUE(bytes_equal(bytes(*send), send_before))
          << "send buffer modified, " << where(s, p);
    });
  }
}

TEST_P(Unrooted, Allgather) {
  const auto [kind, n, root] = GetParam();
  (void)root;
  for (const SizeCase& s : size_cases(n, true)) {
    run_peers(n, kind, [&](FMI::Communicator& c) {
      const peer_num p = c.peer_id();
      auto send = make_buf(s.form, s.unit);
      auto recv = make_buf(s.form, n * s.unit);
      fill_pattern(bytes(*send), p, 0);
      fill_sentinel(*recv);
      std::visit([&](auto& sd, auto& rd) { c.allgather(sd, rd); }, send->d, recv->d);
      for (peer_num q = 0; q < n; ++q)
        EXPECT_TRUE(
            bytes_equal(bytes(*recv).subspan(q * s.unit, s.unit), expected_block(q, 0, s.unit)))
            << "block of peer " << q << ", " << where(s, p);
      EXPECT_TRUE(bytes_equal(bytes(*send), expected_block(p, 0, s.unit)))
          << "send buffer modified, " << where(s, p);
    });
  }
}

TEST_P(Unrooted, Alltoall) {
  const auto [kind, n, root] = GetParam();
  (void)root;
  for (const SizeCase& s : size_cases(n, true)) {
    run_peers(n, kind, [&](FMI::Communicator& c) {
      const peer_num p = c.peer_id();
      auto send = make_buf(s.form, n * s.unit);
      auto recv = make_buf(s.form, n * s.unit);
      for (peer_num j = 0; j < n; ++j) fill_pattern(bytes(*send).subspan(j * s.unit, s.unit), p, j);
      fill_sentinel(*recv);
      std::vector<std::byte> send_before(bytes(*send).begin(), bytes(*send).end());
      std::visit([&](auto& sd, auto& rd) { c.alltoall(sd, rd); }, send->d, recv->d);
      for (peer_num q = 0; q < n; ++q)
        EXPECT_TRUE(
            bytes_equal(bytes(*recv).subspan(q * s.unit, s.unit), expected_block(q, p, s.unit)))
            << "block from peer " << q << ", " << where(s, p);
      EXPECT_TRUE(bytes_equal(bytes(*send), send_before))
          << "send buffer modified, " << where(s, p);
    });
  }
}

// No peer leaves barrier k before every peer has entered it: each peer counts its
// arrival before the barrier and checks the count after it.
TEST_P(Unrooted, Barrier) {
  const auto [kind, n, root] = GetParam();
  (void)root;
  constexpr int kRounds = 5;
  std::vector<std::atomic<unsigned>> arrived(kRounds);
  run_peers(n, kind, [&](FMI::Communicator& c) {
    for (int k = 0; k < kRounds; ++k) {
      // Stagger arrivals so that a barrier that does not wait is caught.
      if ((c.peer_id() + k) % 3 == 0) std::this_thread::sleep_for(2ms);
      arrived[k].fetch_add(1);
      c.barrier();
      EXPECT_EQ(arrived[k].load(), n)
          << "peer " << c.peer_id() << " left barrier " << k << " before every peer had arrived";
    }
  });
}

// A mix of collectives in one communicator: the sequence numbering must keep
// consecutive operations (of the same and of different kinds) apart.
TEST_P(Unrooted, MixedSequence) {
  const auto [kind, n, root] = GetParam();
  (void)root;
  run_peers(n, kind, [&](FMI::Communicator& c) {
    const peer_num p = c.peer_id();
    for (int round = 0; round < 3; ++round) {
      for (peer_num r = 0; r < n; ++r) {
        Data<std::vector<char>> b(std::vector<char>(5, p == r ? char('a' + r % 26) : '?'));
        c.bcast(b, r);
        EXPECT_EQ(b.get(), std::vector<char>(5, char('a' + r % 26)))
            << "round " << round << " bcast from " << r << " at peer " << p;
      }
      Data<int> mine = static_cast<int>(p * 10 + round);
      Data<std::vector<int>> all(n);
      c.allgather(mine, all);
      for (peer_num q = 0; q < n; ++q)
        EXPECT_EQ(all.get()[q], static_cast<int>(q * 10 + round)) << "allgather at peer " << p;
      c.barrier();
      Data<int> s = static_cast<int>(p + 1), tot;
      c.allreduce(s, tot, FMI::Utils::Function<int>::sum());
      EXPECT_EQ(tot.get(), static_cast<int>(n * (n + 1) / 2)) << "allreduce at peer " << p;
    }
  });
}

// Non-root peers may pass empty buffers where the API says the buffer is ignored.
TEST_P(Rooted, IgnoredBuffersMayBeEmpty) {
  const auto [kind, n, root] = GetParam();
  run_peers(n, kind, [&](FMI::Communicator& c) {
    const peer_num p = c.peer_id();
    // gather: recvbuf ignored on non-root
    Data<std::vector<char>> send(std::vector<char>(3, char(p)));
    Data<std::vector<char>> recv(p == root ? 3 * n : 0);
    c.gather(send, recv, root);
    if (p == root) {
      for (peer_num q = 0; q < n; ++q)
        for (int k = 0; k < 3; ++k) EXPECT_EQ(recv.get()[q * 3 + k], char(q)) << "gather";
    }
    // scatter: sendbuf ignored on non-root
    Data<std::vector<char>> ssend(p == root ? 3 * n : 0), srecv(3);
    if (p == root)
      for (peer_num q = 0; q < n; ++q)
        for (int k = 0; k < 3; ++k) ssend.ref()[q * 3 + k] = char(q + 1);
    c.scatter(ssend, srecv, root);
    EXPECT_EQ(srecv.get(), std::vector<char>(3, char(p + 1))) << "scatter at peer " << p;
    // reduce: recvbuf ignored on non-root
    Data<std::vector<int>> rs(std::vector<int>(2, int(p))), rr(p == root ? 2 : 0);
    c.reduce(rs, rr, root, FMI::Utils::Function<std::vector<int>>::sum());
    if (p == root) {
      EXPECT_EQ(rr.get(), std::vector<int>(2, int(n * (n - 1) / 2))) << "reduce";
    }
  });
}

INSTANTIATE_TEST_SUITE_P(All, Rooted, ::testing::ValuesIn(rooted_params()), param_name);
INSTANTIATE_TEST_SUITE_P(All, Unrooted, ::testing::ValuesIn(unrooted_params()), param_name);

}  // namespace
}  // namespace fmitest
