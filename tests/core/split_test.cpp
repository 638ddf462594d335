// Sub-communicators (Communicator::split, dup) over both in-process channel kinds,
// peers 1, 2, 3, 5, 8: uneven groups, peers that join none (color < 0), reversed
// and tied keys, nested splits, every collective and send/recv inside the children
// with asserted values (each value names the top-level peer it came from, so a
// message routed to the wrong rank or taken from another communicator is caught),
// parent and children used alternately with equal tags (the messages must not
// mix), overlapping communicators of two splits, dup, and use after the parent is
// gone, and the cost of a split (exactly one allgather over the parent, 128 peers).
// The harness checks that the store is empty after every run, which covers
// the children's objects too.
#include <algorithm>
#include <numeric>

#include "harness.h"

namespace fmitest {
namespace {

using FMI::Communicator;
using V = std::vector<int>;
using D = FMI::Comm::Data<V>;
using Counts = std::vector<std::size_t>;
using Sum = FMI::Utils::Function<V>;

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
std::vector<Param> params() {
  std::vector<Param> v;
  for (Kind k : {Kind::p2p, Kind::store})
    for (peer_num n : {1u, 2u, 3u, 5u, 8u}) v.push_back({k, n});
  return v;
}

class Split : public ::testing::TestWithParam<Param> {};
INSTANTIATE_TEST_SUITE_P(All, Split, ::testing::ValuesIn(params()), param_name);

/// The members (top-level ids, in child rank order) of the group of `me`, given
/// every peer's color and key: same color, ordered by (key, id).
std::vector<int> group_of(const std::vector<int>& ids, const std::vector<int>& colors,
                          const std::vector<int>& keys, std::size_t me) {
  std::vector<std::size_t> idx;
  for (std::size_t p = 0; p < ids.size(); ++p)
    if (colors[p] == colors[me]) idx.push_back(p);
  std::stable_sort(idx.begin(), idx.end(),
                   [&](std::size_t a, std::size_t b) { return keys[a] < keys[b]; });
  std::vector<int> out;
  for (std::size_t p : idx) out.push_back(ids[p]);
  return out;
}

/// Splits `c` (whose rank r is top-level peer ids[r]) and checks the result's
/// size, rank and membership. Returns the child and its members' top-level ids.
std::pair<std::unique_ptr<Communicator>, std::vector<int>> checked_split(
    Communicator& c, const std::vector<int>& ids, const std::vector<int>& colors,
    const std::vector<int>& keys) {
  const peer_num me = c.peer_id();
  auto child = c.split(colors[me], keys[me]);
  if (colors[me] < 0) {
    EXPECT_EQ(child, nullptr) << "peer " << ids[me] << " passed color " << colors[me];
    return {std::unique_ptr<Communicator>(), std::vector<int>()};
  }
  if (!child) {
    ADD_FAILURE() << "split returned nullptr for color " << colors[me];
    return {std::unique_ptr<Communicator>(), std::vector<int>()};
  }
  std::vector<int> members = group_of(ids, colors, keys, me);
  EXPECT_EQ(child->num_peers(), members.size());
  auto pos = std::find(members.begin(), members.end(), ids[me]) - members.begin();
  EXPECT_EQ(child->peer_id(), peer_num(pos));
  EXPECT_EQ(child->comm_name(), c.comm_name());
  return {std::move(child), members};
}

int val(int id, std::size_t i, int salt) { return id * 1000 + int(i) * 7 + salt; }

/// Every collective and send/recv on `c`, whose rank r is top-level peer ids[r];
/// every received value is checked against the sender's id.
void exercise(Communicator& c, const std::vector<int>& ids, int salt) {
  const peer_num n = c.num_peers(), me = c.peer_id();
  ASSERT_EQ(ids.size(), n);
  const int g = ids[me];
  const int total = std::accumulate(ids.begin(), ids.end(), 0);

  for (peer_num root : roots_for(n)) {
    D b(V(3, -1));
    if (me == root) b = V{val(g, 0, salt), val(g, 1, salt), val(g, 2, salt)};
    c.bcast(b, root);
    EXPECT_EQ(b.get(),
              (V{val(ids[root], 0, salt), val(ids[root], 1, salt), val(ids[root], 2, salt)}))
        << "bcast root " << root;
  }
  c.barrier();
  const peer_num root = n - 1;
  {
    D s(V{val(g, 0, salt), val(g, 1, salt)}), r(V(me == root ? 2 * n : 0));
    c.gather(s, r, root);
    if (me == root) {
      V want;
      for (int id : ids) want.insert(want.end(), {val(id, 0, salt), val(id, 1, salt)});
      EXPECT_EQ(r.get(), want) << "gather";
    }
  }
  {
    D s, r(V(2));
    if (me == root)
      for (peer_num p = 0; p < n; ++p)
        s.ref().insert(s.ref().end(), {val(g, 2 * p, salt), val(g, 2 * p + 1, salt)});
    c.scatter(s, r, root);
    EXPECT_EQ(r.get(), (V{val(ids[root], 2 * me, salt), val(ids[root], 2 * me + 1, salt)}))
        << "scatter";
  }
  {
    D s(V{g, salt}), r(V(2));
    c.reduce(s, r, 0, Sum::sum());
    if (me == 0) {
      EXPECT_EQ(r.get(), (V{total, salt * int(n)})) << "reduce";
    }
    D ar(V(2));
    c.allreduce(s, ar, Sum::sum());
    EXPECT_EQ(ar.get(), (V{total, salt * int(n)})) << "allreduce";
    D sc(V(2));
    c.scan(s, sc, Sum::sum());
    const int prefix = std::accumulate(ids.begin(), ids.begin() + me + 1, 0);
    EXPECT_EQ(sc.get(), (V{prefix, salt * int(me + 1)})) << "scan";
  }
  {
    D s(V{g + salt}), r{V(n)};
    c.allgather(s, r);
    V want;
    for (int id : ids) want.push_back(id + salt);
    EXPECT_EQ(r.get(), want) << "allgather";
  }
  {
    D s, r{V(n)};
    for (peer_num j = 0; j < n; ++j) s.ref().push_back(g * 100 + ids[j] + salt);
    c.alltoall(s, r);
    V want;
    for (peer_num i = 0; i < n; ++i) want.push_back(ids[i] * 100 + g + salt);
    EXPECT_EQ(r.get(), want) << "alltoall";
  }
  {
    D s, r(V(1));
    for (peer_num j = 0; j < n; ++j) s.ref().push_back(g + int(j) + salt);
    c.reduce_scatter(s, r, Sum::sum());
    EXPECT_EQ(r.get(), V{total + int(n * (me + salt))}) << "reduce_scatter";
  }
  // Variable-size: peer r's block has r + 1 elements (alltoallv: (i + j) % 3).
  Counts cnt(n);
  for (peer_num p = 0; p < n; ++p) cnt[p] = p + 1;
  auto block = [&](int id, std::size_t k) {
    V b;
    for (std::size_t i = 0; i < k; ++i) b.push_back(val(id, i, salt));
    return b;
  };
  {
    D s(block(g, me + 1)), r(V(me == root ? n * (n + 1) / 2 : 0));
    c.gatherv(s, r, cnt, root);
    if (me == root) {
      V want;
      for (peer_num p = 0; p < n; ++p) {
        V b = block(ids[p], p + 1);
        want.insert(want.end(), b.begin(), b.end());
      }
      EXPECT_EQ(r.get(), want) << "gatherv";
    }
    D all(V(n * (n + 1) / 2));
    c.allgatherv(s, all, cnt);
    V want;
    for (peer_num p = 0; p < n; ++p) {
      V b = block(ids[p], p + 1);
      want.insert(want.end(), b.begin(), b.end());
    }
    EXPECT_EQ(all.get(), want) << "allgatherv";
  }
  {
    D s, r(V(me + 1));
    if (me == 0)
      for (peer_num p = 0; p < n; ++p) {
        V b = block(g * 10 + int(p), p + 1);
        s.ref().insert(s.ref().end(), b.begin(), b.end());
      }
    c.scatterv(s, cnt, r, 0);
    EXPECT_EQ(r.get(), block(ids[0] * 10 + int(me), me + 1)) << "scatterv";
  }
  {
    Counts sc(n), rc(n);
    D s;
    std::size_t rtotal = 0;
    for (peer_num p = 0; p < n; ++p) {
      sc[p] = (me + p) % 3;
      rc[p] = (p + me) % 3;
      rtotal += rc[p];
      V b = block(g * 100 + ids[p], sc[p]);
      s.ref().insert(s.ref().end(), b.begin(), b.end());
    }
    D r{V(rtotal)};
    c.alltoallv(s, sc, r, rc);
    V want;
    for (peer_num p = 0; p < n; ++p) {
      V b = block(ids[p] * 100 + g, rc[p]);
      want.insert(want.end(), b.begin(), b.end());
    }
    EXPECT_EQ(r.get(), want) << "alltoallv";
  }
  if (n > 1) {
    D s(V{g, salt}), r(V(2));
    c.send(s, (me + 1) % n);
    c.recv(r, (me + n - 1) % n);
    EXPECT_EQ(r.get(), (V{ids[(me + n - 1) % n], salt})) << "send/recv ring";
  }
}

std::vector<int> iota_ids(peer_num n) {
  std::vector<int> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

// Groups of rank % 3 (uneven for 5 and 8 peers), the last peer joining none (from
// 3 peers on), keys reversed: each group is ordered by descending parent rank.
TEST_P(Split, UnevenGroupsReverseKeysEveryCollective) {
  const auto [kind, n] = GetParam();
  run_peers(n, kind, [n = n](Communicator& comm) {
    const auto ids = iota_ids(n);
    std::vector<int> colors(n), keys(n);
    for (peer_num p = 0; p < n; ++p) {
      colors[p] = (n >= 3 && p == n - 1) ? -1 : int(p % 3);
      keys[p] = -int(p);
    }
    auto [child, members] = checked_split(comm, ids, colors, keys);
    if (child) {
      for (std::size_t i = 1; i < members.size(); ++i)
        EXPECT_GT(members[i - 1], members[i]) << "reverse keys: descending parent ranks";
      exercise(*child, members, 1);
    }
    exercise(comm, ids, 2);  // the parent is unaffected
  });
}

// Equal keys: ties keep the parent's order.
TEST_P(Split, TiedKeysKeepParentOrder) {
  const auto [kind, n] = GetParam();
  run_peers(n, kind, [n = n](Communicator& comm) {
    const auto ids = iota_ids(n);
    std::vector<int> colors(n), keys(n, 5);
    for (peer_num p = 0; p < n; ++p) colors[p] = p < (n + 1) / 2 ? 7 : 3;
    auto [child, members] = checked_split(comm, ids, colors, keys);
    ASSERT_TRUE(child);
    EXPECT_TRUE(std::is_sorted(members.begin(), members.end()));
    exercise(*child, members, 3);
  });
}

// Parent and child alternate, with messages whose (operation, sequence) tags are
// equal in both: on each pair of peers in one group, the parent's message is sent
// first and the child's second, and they are received in the other order. Then
// collectives alternate, parent first and child first.
TEST_P(Split, ParentAndChildInterleavedDoNotMix) {
  const auto [kind, n] = GetParam();
  run_peers(n, kind, [n = n](Communicator& comm) {
    const auto ids = iota_ids(n);
    std::vector<int> colors(n), keys(n);
    for (peer_num p = 0; p < n; ++p) {
      colors[p] = int(p % 2);
      keys[p] = int(p);
    }
    auto [child, members] = checked_split(comm, ids, colors, keys);
    ASSERT_TRUE(child);
    const peer_num me = comm.peer_id(), cn = child->num_peers(), cme = child->peer_id();
    if (cn > 1) {
      const peer_num cdest = (cme + 1) % cn, csrc = (cme + cn - 1) % cn;
      const auto pdest = peer_num(members[cdest]), psrc = peer_num(members[csrc]);
      D ps(V{1000 + int(me)}), cs(V{2000 + int(me)}), pr(V(1)), cr(V(1));
      comm.send(ps, pdest);
      child->send(cs, cdest);
      child->recv(cr, csrc);
      comm.recv(pr, psrc);
      EXPECT_EQ(cr.get(), V{2000 + int(psrc)}) << "child message";
      EXPECT_EQ(pr.get(), V{1000 + int(psrc)}) << "parent message";
    }
    for (int round = 0; round < 2; ++round) {
      exercise(*child, members, 10 + round);
      exercise(comm, ids, 20 + round);
    }
  });
}

// A split of a split of a split; the intermediate communicator is destroyed before
// the innermost is used (it wraps the owner's channels, not the intermediate's).
TEST_P(Split, NestedSplits) {
  const auto [kind, n] = GetParam();
  run_peers(n, kind, [n = n](Communicator& comm) {
    const auto ids = iota_ids(n);
    std::vector<int> c1(n), k1(n);
    for (peer_num p = 0; p < n; ++p) {
      c1[p] = p < n - n / 3 ? 0 : 1;  // uneven halves
      k1[p] = int(n - p);
    }
    auto [a, am] = checked_split(comm, ids, c1, k1);
    ASSERT_TRUE(a);
    const peer_num an = a->num_peers();
    std::vector<int> c2(an), k2(an);
    for (peer_num r = 0; r < an; ++r) {
      c2[r] = r % 2 == 0 ? 4 : (an >= 3 && r == an - 1 ? -1 : 9);
      k2[r] = int(r);
    }
    auto [b, bm] = checked_split(*a, am, c2, k2);
    if (b) exercise(*b, bm, 30);
    exercise(*a, am, 31);
    std::unique_ptr<Communicator> c;
    std::vector<int> cm;
    if (b) {
      const peer_num bn = b->num_peers();
      std::vector<int> c3(bn, 1), k3(bn);
      for (peer_num r = 0; r < bn; ++r) k3[r] = -int(r);
      std::tie(c, cm) = checked_split(*b, bm, c3, k3);
      ASSERT_TRUE(c);
    }
    a.reset();
    b.reset();
    if (c) exercise(*c, cm, 32);
    exercise(comm, ids, 33);
  });
}

// Two overlapping communicators from two splits of one parent, plus a dup, used
// alternately; each group's siblings run at the same time on other threads.
TEST_P(Split, OverlappingSplitsAndDup) {
  const auto [kind, n] = GetParam();
  run_peers(n, kind, [n = n](Communicator& comm) {
    const auto ids = iota_ids(n);
    std::vector<int> ca(n), ka(n), cb(n), kb(n);
    for (peer_num p = 0; p < n; ++p) {
      ca[p] = int(p % 2);
      ka[p] = int(p);
      cb[p] = p < n / 2 ? 0 : 1;
      kb[p] = -int(p);
    }
    auto [a, am] = checked_split(comm, ids, ca, ka);
    auto [b, bm] = checked_split(comm, ids, cb, kb);
    ASSERT_TRUE(a && b);
    auto d = comm.dup();
    ASSERT_TRUE(d);
    EXPECT_EQ(d->num_peers(), n);
    EXPECT_EQ(d->peer_id(), comm.peer_id());
    // Same (op, seq) on the same pair in parent and dup, received in reverse order.
    if (n > 1) {
      const peer_num me = comm.peer_id();
      D ps(V{1}), ds(V{2}), pr(V(1)), dr(V(1));
      comm.send(ps, (me + 1) % n);
      d->send(ds, (me + 1) % n);
      d->recv(dr, (me + n - 1) % n);
      comm.recv(pr, (me + n - 1) % n);
      EXPECT_EQ(dr.get(), V{2});
      EXPECT_EQ(pr.get(), V{1});
    }
    for (int round = 0; round < 2; ++round) {
      exercise(*a, am, 40 + round);
      exercise(*b, bm, 50 + round);
      exercise(*d, ids, 60 + round);
    }
    auto dd = d->dup();  // a dup of a dup
    ASSERT_TRUE(dd);
    exercise(*dd, ids, 70);
    exercise(*d, ids, 71);
  });
}

// Every peer passes a negative color: nobody joins, the parent stays usable.
TEST_P(Split, EveryoneJoinsNone) {
  const auto [kind, n] = GetParam();
  run_peers(n, kind, [n = n](Communicator& comm) {
    EXPECT_EQ(comm.split(-1, 0), nullptr);
    EXPECT_EQ(comm.split(-5, int(comm.peer_id())), nullptr);
    exercise(comm, iota_ids(n), 80);
  });
}

// Counts the calls that move data (sends; puts and gets) on a wrapped channel.
struct Counter {
  std::atomic<std::size_t> calls{0}, bytes{0};
};
class CountingP2P final : public FMI::Comm::PeerToPeerChannel {
 public:
  CountingP2P(std::shared_ptr<FMI::Comm::PeerToPeerChannel> b, Counter& c)
      : b_(std::move(b)), c_(c) {}
  void init(const FMI::Comm::ChannelContext& ctx) override { b_->init(ctx); }
  void finalize() noexcept override { b_->finalize(); }
  std::chrono::milliseconds max_timeout() const override { return b_->max_timeout(); }
  void send(peer_num d, FMI::Comm::ConstBytes x, FMI::Comm::Tag t,
            FMI::Utils::Deadline dl) override {
    count(x.size());
    b_->send(d, x, t, dl);
  }
  void recv(peer_num s, FMI::Comm::Bytes o, FMI::Comm::Tag t, FMI::Utils::Deadline dl) override {
    b_->recv(s, o, t, dl);
  }
  void sendrecv(peer_num d, FMI::Comm::ConstBytes x, peer_num s, FMI::Comm::Bytes o,
                FMI::Comm::Tag t, FMI::Utils::Deadline dl) override {
    count(x.size());
    b_->sendrecv(d, x, s, o, t, dl);
  }

 private:
  void count(std::size_t n) {
    ++c_.calls;
    c_.bytes += n;
  }
  std::shared_ptr<FMI::Comm::PeerToPeerChannel> b_;
  Counter& c_;
};
class CountingStore final : public FMI::Comm::ObjectStoreChannel {
 public:
  CountingStore(std::shared_ptr<FMI::Comm::ObjectStoreChannel> b, Counter& c)
      : b_(std::move(b)), c_(c) {}
  void init(const FMI::Comm::ChannelContext& ctx) override { b_->init(ctx); }
  void finalize() noexcept override { b_->finalize(); }
  std::chrono::milliseconds max_timeout() const override { return b_->max_timeout(); }
  void put(const FMI::Comm::ObjectKey& k, FMI::Comm::ConstBytes x, unsigned r,
           FMI::Utils::Deadline dl) override {
    ++c_.calls;
    c_.bytes += x.size();
    b_->put(k, x, r, dl);
  }
  void get(const FMI::Comm::ObjectKey& k, FMI::Comm::Bytes o, FMI::Utils::Deadline dl) override {
    ++c_.calls;
    b_->get(k, o, dl);
  }
  void erase(const FMI::Comm::ObjectKey& k, FMI::Utils::Deadline dl) override {
    ++c_.calls;
    b_->erase(k, dl);
  }
  std::vector<std::string> list(const std::string& p, FMI::Utils::Deadline dl) override {
    ++c_.calls;
    return b_->list(p, dl);
  }

 private:
  std::shared_ptr<FMI::Comm::ObjectStoreChannel> b_;
  Counter& c_;
};

// What a body costs on n peers: calls and bytes on the channel, summed over peers.
std::pair<std::size_t, std::size_t> cost_of(Kind kind, peer_num n,
                                            const std::function<void(Communicator&)>& body) {
  auto hub = std::make_shared<FMI::Comm::InProcessHub>(n, std::chrono::milliseconds(20000));
  Counter c;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (peer_num i = 0; i < n; ++i)
    threads.emplace_back([&, i] {
      try {
        Communicator comm(i, n, FMI::Config{}, "cost");
        std::shared_ptr<FMI::Comm::Channel> ch;
        if (kind == Kind::p2p)
          ch = std::make_shared<CountingP2P>(hub->p2p_endpoint(), c);
        else
          ch = std::make_shared<CountingStore>(hub->store_endpoint(), c);
        comm.register_channel("counted", ch);
        body(comm);
      } catch (...) {
        ++failures;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  return {c.calls.load(), c.bytes.load()};
}

// Splitting 128 peers into 32 groups (and into groups of uneven sizes) costs exactly
// one allgather of 8 bytes per peer over the parent: making the children sends
// nothing.
TEST(SplitCost, OneAllgatherOfColorAndKey) {
  for (Kind kind : {Kind::p2p, Kind::store}) {
    const peer_num n = 128;
    const auto allgather = cost_of(kind, n, [](Communicator& c) {
      D s(V{1, 2}), r(V(2 * c.num_peers()));
      c.allgather(s, r);
    });
    const auto split32 = cost_of(kind, n, [](Communicator& c) {
      auto child = c.split(int(c.peer_id() % 32), 0);
      EXPECT_EQ(child->num_peers(), 4u);
    });
    const auto uneven = cost_of(kind, n, [](Communicator& c) {
      auto child = c.split(c.peer_id() < 3 ? -1 : int(c.peer_id() % 7), -int(c.peer_id()));
      EXPECT_EQ(child == nullptr, c.peer_id() < 3);
    });
    EXPECT_GT(allgather.first, 0u);
    EXPECT_EQ(split32, allgather) << kind_name(kind) << ": (calls, bytes)";
    EXPECT_EQ(uneven, allgather) << kind_name(kind) << ": (calls, bytes)";
  }
}

// A child used after its parent is destroyed raises UsageError naming the cause.
TEST(SplitLifetime, ChildAfterParentRaisesUsageError) {
  for (Kind kind : {Kind::p2p, Kind::store}) {
    const peer_num n = 2;
    auto hub = std::make_shared<FMI::Comm::InProcessHub>(n, std::chrono::milliseconds(5000));
    std::vector<std::string> errors(n);
    std::vector<std::thread> threads;
    for (peer_num i = 0; i < n; ++i)
      threads.emplace_back([&, i] {
        std::unique_ptr<Communicator> child;
        {
          Communicator parent(i, n, FMI::Config{}, "lifetime");
          parent.register_channel("inproc", endpoint(*hub, kind));
          child = parent.dup();
          child->barrier();
        }
        try {
          D s(V{1}), r(V(2));
          child->allgather(s, r);
          errors[i] = "no exception";
        } catch (const FMI::UsageError& e) {
          errors[i] = e.what();
        } catch (const std::exception& e) {
          errors[i] = std::string("other exception: ") + e.what();
        }
      });
    for (auto& t : threads) t.join();
    for (peer_num i = 0; i < n; ++i)
      EXPECT_NE(errors[i].find("parent communicator has been destroyed"), std::string::npos)
          << kind_name(kind) << " peer " << i << ": " << errors[i];
  }
}

}  // namespace
}  // namespace fmitest
