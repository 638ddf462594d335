// Every collective through the public FMI::Communicator over the Direct channel:
// one forked process per peer, a real fmi-rendezvous, exact integer results.
#include <gtest/gtest.h>

#include <cstdint>
#include <numeric>

#include "fmi/communicator.h"
#include "harness.h"

using namespace fmi_test;
using I = std::int64_t;
using Vec = FMI::Comm::Data<std::vector<I>>;
using Fn = FMI::Utils::Function<std::vector<I>>;

namespace {

void check_vec(const std::vector<I>& got, const std::function<I(std::size_t)>& want,
               const char* what, unsigned me) {
  for (std::size_t k = 0; k < got.size(); ++k)
    PEER_CHECK(got[k] == want(k), what, " on peer ", me, ": element ", k, " is ", got[k],
               ", expected ", want(k));
}

void all_collectives(FMI::Communicator& comm, std::size_t count) {
  const unsigned n = comm.num_peers(), me = comm.peer_id();
  const I N = n;
  for (unsigned root : {0u, n - 1}) {
    Vec buf(count);
    if (me == root)
      for (std::size_t k = 0; k < count; ++k) buf.ref()[k] = I(k) * 7 + root;
    comm.bcast(buf, root);
    check_vec(buf.get(), [&](std::size_t k) { return I(k) * 7 + root; }, "bcast", me);

    Vec send(count), all(count * n);
    for (std::size_t k = 0; k < count; ++k) send.ref()[k] = I(me) * 1000 + I(k);
    comm.gather(send, all, root);
    if (me == root)
      check_vec(all.get(), [&](std::size_t i) { return I(i / count) * 1000 + I(i % count); },
                "gather", me);

    Vec blocks(count * n), mine(count);
    if (me == root)
      for (std::size_t i = 0; i < count * n; ++i)
        blocks.ref()[i] = I(i / count) * 1000 + I(i % count);
    comm.scatter(blocks, mine, root);
    check_vec(mine.get(), [&](std::size_t k) { return I(me) * 1000 + I(k); }, "scatter", me);

    Vec contrib(count), sum(count);
    for (std::size_t k = 0; k < count; ++k) contrib.ref()[k] = I(me) + I(k);
    comm.reduce(contrib, sum, root, Fn::sum());
    if (me == root)
      check_vec(sum.get(), [&](std::size_t k) { return N * (N - 1) / 2 + N * I(k); }, "reduce",
                me);
  }
  comm.barrier();

  Vec contrib(count), out(count);
  for (std::size_t k = 0; k < count; ++k) contrib.ref()[k] = I(me) + I(k);
  comm.allreduce(contrib, out, Fn::sum());
  check_vec(out.get(), [&](std::size_t k) { return N * (N - 1) / 2 + N * I(k); }, "allreduce",
            me);
  comm.allreduce(contrib, out, Fn::max());
  check_vec(out.get(), [&](std::size_t k) { return N - 1 + I(k); }, "allreduce max", me);

  comm.scan(contrib, out, Fn::sum());
  const I M = me;
  check_vec(out.get(), [&](std::size_t k) { return M * (M + 1) / 2 + (M + 1) * I(k); }, "scan",
            me);

  Vec send(count), all(count * n);
  for (std::size_t k = 0; k < count; ++k) send.ref()[k] = I(me) * 1000 + I(k);
  comm.allgather(send, all);
  check_vec(all.get(), [&](std::size_t i) { return I(i / count) * 1000 + I(i % count); },
            "allgather", me);

  Vec to_all(count * n), from_all(count * n);
  for (std::size_t i = 0; i < count * n; ++i)
    to_all.ref()[i] = I(me) * 100000 + I(i / count) * 1000 + I(i % count);
  comm.alltoall(to_all, from_all);
  check_vec(from_all.get(),
            [&](std::size_t i) { return I(i / count) * 100000 + M * 1000 + I(i % count); },
            "alltoall", me);

  Vec rs_in(count * n), rs_out(count);
  for (std::size_t i = 0; i < count * n; ++i) rs_in.ref()[i] = M + I(i / count) + I(i % count);
  comm.reduce_scatter(rs_in, rs_out, Fn::sum());
  check_vec(rs_out.get(), [&](std::size_t k) { return N * (N - 1) / 2 + N * (M + I(k)); },
            "reduce_scatter", me);

  // Variable-size collectives (not at the 64 MiB size: the skewed blocks would
  // multiply it): zero counts, the last peer holding twice the others' data.
  if (count <= (std::size_t(1) << 18)) {
    std::vector<std::size_t> counts(n), offs(n + 1, 0);
    for (unsigned q = 0; q < n; ++q) {
      counts[q] = q == n - 1 ? 2 * count : (q % 2 ? 0 : q + 1);
      offs[q + 1] = offs[q] + counts[q];
    }
    auto at = [&](std::size_t i) {  // the peer whose block holds packed element i
      unsigned q = 0;
      while (offs[q + 1] <= i) ++q;
      return q;
    };
    Vec vmine(counts[me]), vall(offs[n]);
    for (std::size_t k = 0; k < counts[me]; ++k) vmine.ref()[k] = M * 1000 + I(k);
    comm.allgatherv(vmine, vall, counts);
    check_vec(vall.get(), [&](std::size_t i) { return I(at(i)) * 1000 + I(i - offs[at(i)]); },
              "allgatherv", me);
    for (unsigned root : {0u, n - 1}) {
      Vec at_root(me == root ? offs[n] : 0), back(counts[me]);
      comm.gatherv(vmine, at_root, counts, root);
      if (me == root)
        check_vec(at_root.get(), [&](std::size_t i) { return vall.get()[i]; }, "gatherv", me);
      comm.scatterv(at_root, counts, back, root);
      check_vec(back.get(), [&](std::size_t k) { return M * 1000 + I(k); }, "scatterv", me);
    }
    auto m = [&](unsigned from, unsigned to) -> std::size_t {
      return (from + to) % 3 == 0 ? 0 : count + from;
    };
    std::vector<std::size_t> sc(n), rc(n);
    std::size_t st = 0, rt = 0;
    for (unsigned q = 0; q < n; ++q) {
      st += sc[q] = m(me, q);
      rt += rc[q] = m(q, me);
    }
    Vec vsend(st), vrecv(rt);
    for (unsigned q = 0, o = 0; q < n; ++q)
      for (std::size_t k = 0; k < sc[q]; ++k) vsend.ref()[o++] = M * 100000 + I(q) * 1000 + I(k);
    comm.alltoallv(vsend, sc, vrecv, rc);
    std::vector<I> want;
    for (unsigned q = 0; q < n; ++q)
      for (std::size_t k = 0; k < rc[q]; ++k) want.push_back(I(q) * 100000 + M * 1000 + I(k));
    check_vec(vrecv.get(), [&](std::size_t i) { return want[i]; }, "alltoallv", me);
  }

  // Point to point around the ring, in both directions.
  Vec token(count), got(count);
  for (std::size_t k = 0; k < count; ++k) token.ref()[k] = M * 3 + I(k);
  if (n > 1) {
    unsigned next = (me + 1) % n, prev = (me + n - 1) % n;
    if (me % 2 == 0) {
      comm.send(token, next);
      comm.recv(got, prev);
    } else {
      comm.recv(got, prev);
      comm.send(token, next);
    }
    check_vec(got.get(), [&](std::size_t k) { return I(prev) * 3 + I(k); }, "send/recv", me);
  }
}

// A configuration with only the Direct channel, on the test's server.
FMI::Config direct_only(const RendezvousServer& server, std::chrono::seconds max_timeout) {
  FMI::Config cfg;
  cfg.direct.enabled = true;
  cfg.direct.host = "127.0.0.1";
  cfg.direct.port = server.port();
  cfg.direct.max_timeout = max_timeout;
  return cfg;
}

}  // namespace

class CommunicatorOverDirect : public ::testing::TestWithParam<unsigned> {};

TEST_P(CommunicatorOverDirect, EveryCollective) {
  const unsigned n = GetParam();
  RendezvousServer server({"--quiet"});
  auto res = run_peers(n, [&](unsigned me) {
    FMI::Communicator comm(me, n, direct_only(server, std::chrono::seconds(60)),
                           "collectives-" + std::to_string(n));
    // Small messages (latency-optimal algorithms), then large ones (ring and
    // scatter+allgather above the 256 KiB threshold).
    all_collectives(comm, 0);  // empty messages
    all_collectives(comm, 3);
    all_collectives(comm, n <= 3 ? 100000 : 40000);
  });
  expect_all_ok(res);
}

INSTANTIATE_TEST_SUITE_P(Peers, CommunicatorOverDirect, ::testing::Values(1u, 2u, 3u, 5u, 8u, 16u),
                         [](const auto& info) { return std::to_string(info.param) + "peers"; });

// Sub-communicators over the parent's Direct connections (no new registration or
// punching): groups of rank % 2 with reversed keys, every collective inside each
// group (small and ring-sized), parent and child sending on one pair with equal
// tags (received in reverse order), an allgather of parent ranks in the child, a
// dup and a split of the child, then the parent again.
class SplitOverDirect : public ::testing::TestWithParam<unsigned> {};

TEST_P(SplitOverDirect, SplitDupNested) {
  const unsigned n = GetParam();
  RendezvousServer server({"--quiet"});
  auto res = run_peers(n, [&](unsigned me) {
    FMI::Communicator comm(me, n, direct_only(server, std::chrono::seconds(60)),
                           "split-" + std::to_string(n));
    auto child = comm.split(int(me % 2), -int(me));
    PEER_CHECK(child != nullptr, "split returned nullptr on peer ", me);
    std::vector<unsigned> members;  // parent ranks, in child rank order
    for (unsigned q = n; q-- > 0;)
      if (q % 2 == me % 2) members.push_back(q);
    const unsigned cn = child->num_peers(), cr = child->peer_id();
    PEER_CHECK(cn == members.size() && members[cr] == me, "peer ", me, " is rank ", cr, " of ",
               cn);
    if (cn > 1) {
      const unsigned to = (cr + 1) % cn, from = (cr + cn - 1) % cn;
      Vec ps(std::vector<I>{1000 + I(me)}), cs(std::vector<I>{2000 + I(me)}), pr(1), crv(1);
      comm.send(ps, members[to]);
      child->send(cs, to);
      child->recv(crv, from);
      comm.recv(pr, members[from]);
      PEER_CHECK(crv.get()[0] == 2000 + I(members[from]), "child message on peer ", me, ": ",
                 crv.get()[0]);
      PEER_CHECK(pr.get()[0] == 1000 + I(members[from]), "parent message on peer ", me, ": ",
                 pr.get()[0]);
    }
    Vec id(std::vector<I>{I(me)}), ids(cn);
    child->allgather(id, ids);
    check_vec(ids.get(), [&](std::size_t r) { return I(members[r]); }, "child allgather", me);
    all_collectives(*child, 3);
    all_collectives(*child, 100000);
    auto d = child->dup();
    auto half = d->split(int(d->peer_id() % 2), 0);
    all_collectives(*half, 3);
    all_collectives(*d, 3);
    all_collectives(comm, 3);
  });
  expect_all_ok(res);
}

INSTANTIATE_TEST_SUITE_P(Peers, SplitOverDirect, ::testing::Values(1u, 3u, 5u, 8u),
                         [](const auto& info) { return std::to_string(info.param) + "peers"; });

// 64 MiB per peer (8 Mi int64 elements) through every collective: the ring and
// scatter+allgather algorithms with chunks of many MiB, partial reads and writes
// on every connection. 1-3 peers (memory: several such buffers per peer).
class LargeOverDirect : public ::testing::TestWithParam<unsigned> {};

TEST_P(LargeOverDirect, EveryCollective64MiB) {
  const unsigned n = GetParam();
  RendezvousServer server({"--quiet"});
  auto res = run_peers(n, [&](unsigned me) {
    FMI::Communicator comm(me, n, direct_only(server, std::chrono::seconds(120)),
                           "large-" + std::to_string(n));
    all_collectives(comm, std::size_t(8) << 20);
  });
  expect_all_ok(res);
}

INSTANTIATE_TEST_SUITE_P(Peers, LargeOverDirect, ::testing::Values(1u, 2u, 3u),
                         [](const auto& info) { return std::to_string(info.param) + "peers"; });
