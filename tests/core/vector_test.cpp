// Variable-size collectives (gatherv, scatterv, allgatherv, alltoallv) over both
// in-process channel kinds, peers 1, 2, 3, 5, 8, roots {0, middle, last}, with
// uneven counts (some zero), every count zero, skewed counts (one peer holds
// everything) and large blocks (the linear and ring algorithms), in typed
// (std::vector<int>: counts in ints) and raw (void*: counts in bytes) buffers. Every
// byte depends on (source peer, destination block, index). Then every size error.
#include <algorithm>
#include <numeric>

#include "harness.h"

namespace fmitest {
namespace {

using FMI::Comm::Data;
using Counts = std::vector<std::size_t>;

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

const std::vector<peer_num> kVPeers = {1, 2, 3, 5, 8};

std::vector<Param> params() {
  std::vector<Param> v;
  for (Kind k : {Kind::p2p, Kind::store})
    for (peer_num n : kVPeers)
      for (peer_num r : roots_for(n)) v.push_back({k, n, r});
  return v;
}

// ---- counts -------------------------------------------------------------------------

enum class Shape { uneven, zeros, skewed, large };
const Shape kShapes[] = {Shape::uneven, Shape::zeros, Shape::skewed, Shape::large};

const char* shape_name(Shape s) {
  switch (s) {
    case Shape::uneven: return "uneven";
    case Shape::zeros: return "zeros";
    case Shape::skewed: return "skewed";
    case Shape::large: return "large";
  }
  return "?";
}

/// Elements block (from -> to) holds; for the rooted and all-gather operations
/// `to` is ignored (one block per peer). `heavy` is the peer that holds everything
/// in the skewed shape. Large: a mean block above coll::kLargeMessage in ints
/// (linear gather/scatter, ring allgather), only for n <= 3 to bound the run time.
std::size_t count_of(Shape s, peer_num n, peer_num from, peer_num to, peer_num heavy) {
  switch (s) {
    case Shape::uneven: return (from * 5 + to * 3) % 7 == 0 ? 0 : 1 + (from * 5 + to * 3) % 7 * 13;
    case Shape::zeros: return 0;
    case Shape::skewed: return from == heavy ? 1000 + to : 0;
    case Shape::large: return n <= 3 ? 70000 + from * 1111 + to * 7 : 3 + from;
  }
  return 0;
}

std::size_t sum(const Counts& c) { return std::accumulate(c.begin(), c.end(), std::size_t(0)); }

/// Byte offset of each block given counts in bytes.
Counts offsets(const Counts& bytes) {
  Counts d(bytes.size() + 1, 0);
  for (std::size_t i = 0; i < bytes.size(); ++i) d[i + 1] = d[i] + bytes[i];
  return d;
}

// ---- buffers in two forms --------------------------------------------------------------

/// A buffer of `elems` elements: Data<std::vector<int>> (typed) or Data<void*> over
/// `elems` bytes (raw). Visit with `with`.
struct VBuf {
  bool raw;
  std::vector<std::byte> storage;
  Data<std::vector<int>> typed;
  Data<void*> untyped;
  VBuf(bool r, std::size_t elems) : raw(r) {
    if (raw) {
      storage.assign(elems, std::byte{0xEE});
      untyped = Data<void*>(storage.data(), storage.size());
    } else {
      typed = Data<std::vector<int>>(std::vector<int>(elems, int(0xEEEEEEEE)));
    }
  }
  std::span<std::byte> bytes() {
    if (raw) return storage;
    return {static_cast<std::byte*>(typed.data()), typed.size_in_bytes()};
  }
  template <typename F>
  void with(F&& f) {
    if (raw)
      f(untyped);
    else
      f(typed);
  }
};

std::size_t elem(bool raw) { return raw ? 1 : sizeof(int); }

Counts to_bytes(const Counts& c, bool raw) {
  Counts b(c);
  for (auto& x : b) x *= elem(raw);
  return b;
}

std::vector<std::byte> expected_block(peer_num from, peer_num block, std::size_t bytes) {
  std::vector<std::byte> e(bytes);
  fill_pattern(e, from, block);
  return e;
}

std::string where(Shape s, bool raw, peer_num p) {
  return std::string(shape_name(s)) + (raw ? " raw" : " typed") + ", peer " + std::to_string(p);
}

class VCollective : public ::testing::TestWithParam<Param> {};

TEST_P(VCollective, Gatherv) {
  const auto [kind, n, root] = GetParam();
  for (Shape s : kShapes)
    for (bool raw : {false, true}) {
      Counts counts(n);
      for (peer_num p = 0; p < n; ++p) counts[p] = count_of(s, n, p, 0, n - 1);
      run_peers(n, kind, [&](FMI::Communicator& c) {
        const peer_num me = c.peer_id();
        VBuf send(raw, counts[me]);
        fill_pattern(send.bytes(), me, 0);
        VBuf recv(raw, me == root ? sum(counts) : 0);
        send.with([&](auto& sd) { recv.with([&](auto& rd) { c.gatherv(sd, rd, counts, root); }); });
        if (me != root) return;
        const Counts d = offsets(to_bytes(counts, raw));
        for (peer_num p = 0; p < n; ++p)
          EXPECT_TRUE(bytes_equal(recv.bytes().subspan(d[p], d[p + 1] - d[p]),
                                  expected_block(p, 0, d[p + 1] - d[p])))
              << where(s, raw, me) << ", block of peer " << p;
      });
    }
}

TEST_P(VCollective, Scatterv) {
  const auto [kind, n, root] = GetParam();
  for (Shape s : kShapes)
    for (bool raw : {false, true}) {
      Counts counts(n);
      // Skewed: the last peer receives everything.
      for (peer_num p = 0; p < n; ++p) counts[p] = count_of(s, n, p, 0, n - 1);
      run_peers(n, kind, [&](FMI::Communicator& c) {
        const peer_num me = c.peer_id();
        VBuf send(raw, me == root ? sum(counts) : 0);
        if (me == root) {
          const Counts d = offsets(to_bytes(counts, raw));
          for (peer_num p = 0; p < n; ++p)
            fill_pattern(send.bytes().subspan(d[p], d[p + 1] - d[p]), root, p);
        }
        VBuf recv(raw, counts[me]);
        send.with(
            [&](auto& sd) { recv.with([&](auto& rd) { c.scatterv(sd, counts, rd, root); }); });
        EXPECT_TRUE(bytes_equal(recv.bytes(), expected_block(root, me, recv.bytes().size())))
            << where(s, raw, me);
      });
    }
}

TEST_P(VCollective, Allgatherv) {
  const auto [kind, n, root] = GetParam();
  for (Shape s : kShapes)
    for (bool raw : {false, true}) {
      Counts counts(n);
      // The heavy peer is the "root" of the parameter, to vary it.
      for (peer_num p = 0; p < n; ++p) counts[p] = count_of(s, n, p, 0, root);
      run_peers(n, kind, [&](FMI::Communicator& c) {
        const peer_num me = c.peer_id();
        VBuf send(raw, counts[me]);
        fill_pattern(send.bytes(), me, 0);
        VBuf recv(raw, sum(counts));
        send.with([&](auto& sd) { recv.with([&](auto& rd) { c.allgatherv(sd, rd, counts); }); });
        const Counts d = offsets(to_bytes(counts, raw));
        for (peer_num p = 0; p < n; ++p)
          EXPECT_TRUE(bytes_equal(recv.bytes().subspan(d[p], d[p + 1] - d[p]),
                                  expected_block(p, 0, d[p + 1] - d[p])))
              << where(s, raw, me) << ", block of peer " << p;
      });
    }
}

TEST_P(VCollective, Alltoallv) {
  const auto [kind, n, root] = GetParam();
  for (Shape s : kShapes)
    for (bool raw : {false, true}) {
      // Skewed: peer `root` sends everything, the others nothing.
      auto m = [&](peer_num from, peer_num to) { return count_of(s, n, from, to, root); };
      run_peers(n, kind, [&](FMI::Communicator& c) {
        const peer_num me = c.peer_id();
        Counts sc(n), rc(n);
        for (peer_num p = 0; p < n; ++p) {
          sc[p] = m(me, p);
          rc[p] = m(p, me);
        }
        VBuf send(raw, sum(sc)), recv(raw, sum(rc));
        const Counts sd = offsets(to_bytes(sc, raw)), rd = offsets(to_bytes(rc, raw));
        for (peer_num p = 0; p < n; ++p)
          fill_pattern(send.bytes().subspan(sd[p], sd[p + 1] - sd[p]), me, p);
        send.with([&](auto& sb) { recv.with([&](auto& rb) { c.alltoallv(sb, sc, rb, rc); }); });
        for (peer_num p = 0; p < n; ++p)
          EXPECT_TRUE(bytes_equal(recv.bytes().subspan(rd[p], rd[p + 1] - rd[p]),
                                  expected_block(p, me, rd[p + 1] - rd[p])))
              << where(s, raw, me) << ", block from peer " << p;
      });
    }
}

INSTANTIATE_TEST_SUITE_P(All, VCollective, ::testing::ValuesIn(params()), param_name);

// Mixed element types: a Data<int> per peer gathered into a std::vector<int> (counts
// of one int each), and void* blocks gathered into ints (counts in ints).
TEST(VCollectiveTypes, ScalarAndRawIntoTyped) {
  for (Kind kind : {Kind::p2p, Kind::store}) {
    run_peers(3, kind, [&](FMI::Communicator& c) {
      const int me = static_cast<int>(c.peer_id());
      Data<int> one(100 + me);
      Data<std::vector<int>> all(3);
      c.allgatherv(one, all, {1, 1, 1});
      EXPECT_EQ(all.get(), (std::vector<int>{100, 101, 102}));

      std::vector<int> mine(static_cast<std::size_t>(me), me);  // peer p sends p ints
      Data<void*> raw(mine.data(), mine.size() * sizeof(int));
      Data<std::vector<int>> got(me == 2 ? 3 : 0);
      c.gatherv(raw, got, {0, 1, 2}, 2);
      if (me == 2) {
        EXPECT_EQ(got.get(), (std::vector<int>{1, 2, 2}));
      }
    });
  }
}

// ---- size errors -------------------------------------------------------------------------

/// One communicator of `n` peers with only peer `me` alive: a call that sent or
/// waited before checking would time out (or, on the store, leave an object).
struct Lonely {
  std::shared_ptr<FMI::Comm::InProcessHub> hub;
  std::unique_ptr<FMI::Communicator> comm;
  Lonely(peer_num me, peer_num n, Kind kind)
      : hub(std::make_shared<FMI::Comm::InProcessHub>(n, 1500ms)) {
    FMI::Config cfg;
    comm = std::make_unique<FMI::Communicator>(me, n, cfg, "lonely");
    comm->register_channel("inproc", endpoint(*hub, kind));
  }
};

template <typename F>
void expect_usage(Lonely& l, F&& call, std::initializer_list<std::string> words) {
  try {
    call(*l.comm);
    ADD_FAILURE() << "no exception; expected FMI::UsageError mentioning "
                  << ::testing::PrintToString(std::vector<std::string>(words));
  } catch (const FMI::UsageError& e) {
    const std::string msg = e.what();
    for (const auto& w : words)
      EXPECT_NE(msg.find(w), std::string::npos)
          << "message \"" << msg << "\" lacks \"" << w << "\"";
  } catch (...) {
    ADD_FAILURE() << "expected FMI::UsageError, got " << describe(std::current_exception());
  }
  EXPECT_EQ(l.hub->objects_in_store(), 0u) << "a rejected call wrote to the store";
}

using Ints = Data<std::vector<int>>;

class VErrors : public ::testing::TestWithParam<Kind> {};

TEST_P(VErrors, CountsLengthNotNumPeers) {
  for (peer_num me : {0u, 1u}) {
    Lonely l(me, 3, GetParam());
    Ints s(2), r(6);
    expect_usage(l,
                 [&](auto& c) {
                   c.gatherv(s, r, {2, 2}, 0);
                 },
                 {"gatherv", "recv_counts", "2 entries", "3"});
    expect_usage(l,
                 [&](auto& c) {
                   c.scatterv(r, {2, 2, 2, 0}, s, 0);
                 },
                 {"scatterv", "send_counts", "4 entries"});
    expect_usage(l, [&](auto& c) { c.allgatherv(s, r, {}); }, {"allgatherv", "0 entries"});
    expect_usage(l,
                 [&](auto& c) {
                   c.alltoallv(r, {2, 2, 2}, r, {2, 2});
                 },
                 {"alltoallv", "recv_counts"});
  }
}

TEST_P(VErrors, CountsDoNotAddUpToBuffer) {
  Lonely root(0, 3, GetParam());
  Ints s(2), r(5);
  // Root: recv holds 5 ints = 20 bytes, counts say 2 + 2 + 2 ints = 24 bytes.
  expect_usage(root,
               [&](auto& c) {
                 c.gatherv(s, r, {2, 2, 2}, 0);
               },
               {"gatherv", "recv buffer", "20", "24"});
  expect_usage(root,
               [&](auto& c) {
                 c.scatterv(r, {2, 2, 2}, s, 0);
               },
               {"scatterv", "send buffer", "20", "24"});
  expect_usage(root,
               [&](auto& c) {
                 c.allgatherv(s, r, {2, 2, 2});
               },
               {"allgatherv", "recv buffer"});
  Ints six(6);
  expect_usage(root,
               [&](auto& c) {
                 c.alltoallv(r, {2, 2, 2}, six, {2, 2, 2});
               },
               {"alltoallv", "send buffer", "20", "24"});
  expect_usage(root,
               [&](auto& c) {
                 c.alltoallv(six, {2, 2, 2}, r, {2, 2, 2});
               },
               {"alltoallv", "recv buffer"});
  // A peer whose own block does not match its count (root or not).
  for (peer_num me : {0u, 2u}) {
    Lonely l(me, 3, GetParam());
    Ints three(3);
    expect_usage(l,
                 [&](auto& c) {
                   c.gatherv(three, six, {2, 2, 2}, 0);
                 },
                 {"gatherv", "send buffer", "12", "8"});
    expect_usage(l,
                 [&](auto& c) {
                   c.scatterv(six, {2, 2, 2}, three, 0);
                 },
                 {"scatterv", "recv buffer", "12", "8"});
    expect_usage(l,
                 [&](auto& c) {
                   c.allgatherv(three, six, {2, 2, 2});
                 },
                 {"allgatherv", "send buffer"});
    // alltoallv: the block a peer keeps must be one size on both sides.
    Counts sc = {2, 2, 2}, rc = {2, 2, 2};
    sc[me] = 1;
    rc[me] = 3;
    Ints five(5), seven(7);
    expect_usage(l, [&](auto& c) { c.alltoallv(five, sc, seven, rc); }, {"alltoallv", "keeps"});
  }
}

TEST_P(VErrors, BufferNotWholeElements) {
  Lonely l(1, 3, GetParam());
  std::vector<std::byte> mem(6);
  Data<void*> six_bytes(mem.data(), mem.size());
  Ints r(3);
  expect_usage(l,
               [&](auto& c) {
                 c.gatherv(six_bytes, r, {1, 1, 1}, 0);
               },
               {"gatherv", "send buffer", "6", "4-byte"});
  expect_usage(l,
               [&](auto& c) {
                 c.allgatherv(six_bytes, r, {1, 1, 1});
               },
               {"allgatherv", "whole number"});
  expect_usage(l,
               [&](auto& c) {
                 c.scatterv(r, {1, 1, 1}, six_bytes, 0);
               },
               {"scatterv", "recv buffer", "6"});
}

TEST_P(VErrors, RootOutOfRange) {
  Lonely l(0, 3, GetParam());
  Ints s(1), r(3);
  expect_usage(l, [&](auto& c) { c.gatherv(s, r, {1, 1, 1}, 3); }, {"gatherv", "root", "3"});
  expect_usage(l, [&](auto& c) { c.scatterv(r, {1, 1, 1}, s, 7); }, {"scatterv", "root", "7"});
}

// A rejected call consumes no sequence number: a correct one after it still meets
// its partners.
TEST_P(VErrors, RejectedCallDoesNotDesynchronise) {
  run_peers(3, GetParam(), [&](FMI::Communicator& c) {
    Ints s(std::vector<int>(c.peer_id() + 1, int(c.peer_id()))), r(6);
    if (c.peer_id() == 1) {
      EXPECT_THROW(c.allgatherv(s, r, {1, 2}), FMI::UsageError);
    }
    c.allgatherv(s, r, {1, 2, 3});
    EXPECT_EQ(r.get(), (std::vector<int>{0, 1, 1, 2, 2, 2}));
  });
}

/// The peer `who` must end with a PeerError naming both sizes (bytes).
void expect_peer_error(const RunResult& r, peer_num who, std::size_t a, std::size_t b) {
  ASSERT_TRUE(r.errors[who]) << "peer " << who << " did not detect the mismatch";
  try {
    std::rethrow_exception(r.errors[who]);
  } catch (const FMI::PeerError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(std::to_string(a) + " bytes"), std::string::npos) << msg;
    EXPECT_NE(msg.find(std::to_string(b)), std::string::npos) << msg;
  } catch (...) {
    ADD_FAILURE() << "peer " << who << ": expected FMI::PeerError, got " << describe(r.errors[who]);
  }
}

// Counts that disagree between peers are caught by the receiver's exact-size check.
TEST_P(VErrors, CountsThatDifferBetweenPeers) {
  RunOptions opt;
  opt.max_timeout = 3s;
  opt.check_store_empty = false;
  // gatherv (linear or tree alike: 2 peers): peer 1 sends 2 ints, root expects 3.
  auto g = run_peers_raw(
      2, GetParam(),
      [&](FMI::Communicator& c) {
        const Counts counts = c.peer_id() == 0 ? Counts{1, 3} : Counts{1, 2};
        Ints s(counts[c.peer_id()]), r(c.peer_id() == 0 ? 4 : 0);
        c.gatherv(s, r, counts, 0);
      },
      opt);
  expect_peer_error(g, 0, 8, 12);
  // alltoallv: peer 0 sends 2 ints to peer 1, which expects 5 from it.
  auto a = run_peers_raw(
      2, GetParam(),
      [&](FMI::Communicator& c) {
        const Counts sc = c.peer_id() == 0 ? Counts{1, 2} : Counts{1, 1};
        const Counts rc = c.peer_id() == 0 ? Counts{1, 1} : Counts{5, 1};
        Ints s(sum(sc)), r(sum(rc));
        c.alltoallv(s, sc, r, rc);
      },
      opt);
  expect_peer_error(a, 1, 8, 20);
}

INSTANTIATE_TEST_SUITE_P(All, VErrors, ::testing::Values(Kind::p2p, Kind::store),
                         [](const auto& i) { return std::string(kind_name(i.param)); });

}  // namespace
}  // namespace fmitest
