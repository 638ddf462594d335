// The non-blocking operations (issue 18, docs/nonblocking.md) through
// FMI::Communicator on every channel of the build, 3 and 5 peers:
//
//  - NonBlocking.EveryOperation: every i-form (isend/irecv, ibcast, ibarrier,
//    igather, iscatter, ireduce, iallreduce, iscan, iallgather, ialltoall,
//    ireduce_scatter and the v-forms) with non-zero roots, at 0, 5 and a large
//    count, values asserted after wait();
//  - NonBlocking.ManyInFlightEveryOrder: a dozen operations in flight at once,
//    interleaved with blocking collectives and send/recv, completed by wait in
//    reverse order, test() loops, wait_for, wait_all and wait_any;
//  - NonBlocking.ProgressWithoutTheCaller: an iallreduce of 16 MiB completes while
//    the caller sleeps without calling FMI (test() is true at once after 300 ms);
//  - NonBlocking.ErrorsRaisedByWait: a size mismatch between peers raises
//    PeerError from wait(), a missing sender TimeoutError from wait(), a local
//    size error UsageError from the i-call itself;
//  - NonBlocking.DestroyedEarly: a Request destroyed while running waits for its
//    operation; a Communicator destroyed with operations in flight waits for them;
//  - NonBlocking.SubCommunicators: i-forms on a dup and a split while the parent
//    runs its own;
//  - NonBlocking.DeadPeerFailsEveryRequest (Direct only: peers are processes).
//
// The Direct instantiation needs the thread-safe Direct channel (issue 18, branch
// nb-direct); it is registered with the other Direct conformance tests.
#include <algorithm>
#include <numeric>
#include <thread>

#include "backends.h"

namespace fmitest::conformance {
namespace {

using I = std::int64_t;
using Vec = FMI::Comm::Data<std::vector<I>>;
using Fn = FMI::Utils::Function<std::vector<I>>;
using Param = std::tuple<std::string, unsigned>;

void expect_vec(const std::vector<I>& got, std::size_t size,
                const std::function<I(std::size_t)>& want, const std::string& what) {
  PEER_CHECK(got.size() == size, what, ": ", got.size(), " elements, expected ", size);
  for (std::size_t k = 0; k < got.size(); ++k)
    PEER_CHECK(got[k] == want(k), what, ": element ", k, " is ", got[k], ", expected ", want(k));
}

// The value peer p contributes at index k of operation `op`.
I val(unsigned op, unsigned p, std::size_t k) { return I(op) * 1000003 + I(p) * 1009 + I(k); }

class NonBlocking : public ::testing::TestWithParam<Param> {
 protected:
  Backend& b() { return backend(std::get<0>(GetParam())); }
  unsigned n() { return std::get<1>(GetParam()); }
  // Runs body(comm) on every peer, each with a Communicator over the backend.
  // A message refused for its size may stay in a store (the in-process store
  // keeps it for a receive of the right size): `clean` false skips that check.
  // `quick`: channels that time out after the backend's short_timeout().
  void each(const std::function<void(FMI::Communicator&, Group&)>& body, bool clean = true,
            bool quick = false) {
    auto g = quick ? b().short_group(n(), comm_name()) : b().group(n(), comm_name());
    const std::string name = b().name();
    run_on(b(), *g, [&](unsigned me, Group& grp) {
      FMI::Communicator comm(me, grp.size(), FMI::Config{}, grp.comm());
      comm.register_channel(name, grp.make(me));
      body(comm, grp);
    });
    if (auto left = g->leftovers(); left && clean) {
      EXPECT_EQ(*left, 0u) << "left in the store";
    }
  }
};

// Every i-form at `count` elements, all started before any is waited for, so that
// each one's result is checked while the others ran at the same time.
void every_operation(FMI::Communicator& comm, std::size_t count) {
  const unsigned n = comm.num_peers(), me = comm.peer_id();
  const unsigned root = n / 2 + 1 < n ? n / 2 + 1 : n - 1;  // not 0
  const std::string at = " (" + std::to_string(count) + " elements, peer " + std::to_string(me) +
                         ", root " + std::to_string(root) + ")";
  const auto fill = [&](unsigned op, std::size_t size, unsigned p) {
    std::vector<I> v(size);
    for (std::size_t k = 0; k < size; ++k) v[k] = val(op, p, k);
    return v;
  };
  std::vector<FMI::Request> reqs;

  // send/recv around the ring, both directions.
  const unsigned next = (me + 1) % n, prev = (me + n - 1) % n;
  Vec s1(fill(1, count, me)), r1(count), s2(fill(2, count, me)), r2(count);
  reqs.push_back(comm.irecv(r1, prev));
  reqs.push_back(comm.isend(s1, next));
  reqs.push_back(comm.isend(s2, prev));
  reqs.push_back(comm.irecv(r2, next));

  Vec bc(me == root ? fill(3, count, root) : std::vector<I>(count, -1));
  reqs.push_back(comm.ibcast(bc, root));
  reqs.push_back(comm.ibarrier());
  Vec gs(fill(4, count, me)), gr(me == root ? count * n : 0);
  reqs.push_back(comm.igather(gs, gr, root));
  Vec ss(me == root ? fill(5, count * n, root) : std::vector<I>{}), sr(count);
  reqs.push_back(comm.iscatter(ss, sr, root));
  Vec rs(fill(6, count, me)), rr(count);
  reqs.push_back(comm.ireduce(rs, rr, root, Fn::sum()));
  Vec as(fill(7, count, me)), ar(count);
  reqs.push_back(comm.iallreduce(as, ar, Fn::sum()));
  Vec cs(fill(8, count, me)), cr(count);
  reqs.push_back(comm.iscan(cs, cr, Fn::sum()));
  Vec ags(fill(9, count, me)), agr(count * n);
  reqs.push_back(comm.iallgather(ags, agr));
  Vec ats(fill(10, count * n, me)), atr(count * n);
  reqs.push_back(comm.ialltoall(ats, atr));
  Vec rss(fill(11, count * n, me)), rsr(count);
  reqs.push_back(comm.ireduce_scatter(rss, rsr, Fn::sum()));
  // v-forms: peer p's block holds count + p elements (count 0: p elements).
  std::vector<std::size_t> counts(n), offs(n + 1, 0);
  for (unsigned p = 0; p < n; ++p) offs[p + 1] = offs[p] + (counts[p] = count + p);
  Vec gvs(fill(12, counts[me], me)), gvr(me == root ? offs[n] : 0);
  reqs.push_back(comm.igatherv(gvs, gvr, counts, root));
  Vec svs(me == root ? fill(13, offs[n], root) : std::vector<I>{}), svr(counts[me]);
  reqs.push_back(comm.iscatterv(svs, counts, svr, root));
  Vec agvs(fill(14, counts[me], me)), agvr(offs[n]);
  reqs.push_back(comm.iallgatherv(agvs, agvr, counts));
  // alltoallv: the block me -> t holds `count` elements (t + me when count is 0).
  std::vector<std::size_t> sc(n), rc(n);
  for (unsigned t = 0; t < n; ++t) {
    sc[t] = count ? count : t + me;
    rc[t] = count ? count : me + t;
  }
  const std::size_t stot = std::accumulate(sc.begin(), sc.end(), std::size_t(0));
  const std::size_t rtot = std::accumulate(rc.begin(), rc.end(), std::size_t(0));
  Vec avs(fill(15, stot, me)), avr(rtot);
  reqs.push_back(comm.ialltoallv(avs, sc, avr, rc));

  FMI::wait_all(reqs);
  for (const auto& r : reqs) PEER_CHECK(!r.active(), "a request is active after wait_all");

  expect_vec(
      r1.get(), count, [&](std::size_t k) { return val(1, prev, k); }, "irecv from prev" + at);
  expect_vec(
      r2.get(), count, [&](std::size_t k) { return val(2, next, k); }, "irecv from next" + at);
  expect_vec(
      bc.get(), count, [&](std::size_t k) { return val(3, root, k); }, "ibcast" + at);
  if (me == root)
    expect_vec(
        gr.get(), count * n, [&](std::size_t k) { return val(4, unsigned(k / count), k % count); },
        "igather" + at);
  expect_vec(
      sr.get(), count, [&](std::size_t k) { return val(5, root, me * count + k); },
      "iscatter" + at);
  const auto sum = [&](unsigned op, unsigned upto, std::size_t k) {
    I s = 0;
    for (unsigned p = 0; p < upto; ++p) s += val(op, p, k);
    return s;
  };
  if (me == root)
    expect_vec(
        rr.get(), count, [&](std::size_t k) { return sum(6, n, k); }, "ireduce" + at);
  expect_vec(
      ar.get(), count, [&](std::size_t k) { return sum(7, n, k); }, "iallreduce" + at);
  expect_vec(
      cr.get(), count, [&](std::size_t k) { return sum(8, me + 1, k); }, "iscan" + at);
  expect_vec(
      agr.get(), count * n, [&](std::size_t k) { return val(9, unsigned(k / count), k % count); },
      "iallgather" + at);
  expect_vec(
      atr.get(), count * n,
      [&](std::size_t k) { return val(10, unsigned(k / count), me * count + k % count); },
      "ialltoall" + at);
  expect_vec(
      rsr.get(), count, [&](std::size_t k) { return sum(11, n, me * count + k); },
      "ireduce_scatter" + at);
  const auto owner = [&](std::size_t k) {
    return unsigned(std::upper_bound(offs.begin(), offs.end(), k) - offs.begin() - 1);
  };
  if (me == root)
    expect_vec(
        gvr.get(), offs[n], [&](std::size_t k) { return val(12, owner(k), k - offs[owner(k)]); },
        "igatherv" + at);
  expect_vec(
      svr.get(), counts[me], [&](std::size_t k) { return val(13, root, offs[me] + k); },
      "iscatterv" + at);
  expect_vec(
      agvr.get(), offs[n], [&](std::size_t k) { return val(14, owner(k), k - offs[owner(k)]); },
      "iallgatherv" + at);
  // Block from q holds q's elements at offsets sum(sc_q[0..me)) of q's send buffer.
  std::size_t at_r = 0;
  for (unsigned q = 0; q < n; ++q) {
    std::size_t from_off = 0;
    for (unsigned t = 0; t < me; ++t) from_off += count ? count : t + q;
    for (std::size_t k = 0; k < rc[q]; ++k)
      PEER_CHECK(avr.get()[at_r + k] == val(15, q, from_off + k), "ialltoallv block from ", q,
                 " element ", k, at);
    at_r += rc[q];
  }
}

TEST_P(NonBlocking, EveryOperation) {
  const std::size_t large = std::max<std::size_t>(b().axes().large_elems, 1000);
  each([&](FMI::Communicator& comm, Group&) {
    every_operation(comm, 0);
    every_operation(comm, 5);
    every_operation(comm, large);
  });
}

TEST_P(NonBlocking, ManyInFlightEveryOrder) {
  each([&](FMI::Communicator& comm, Group&) {
    const unsigned n = comm.num_peers(), me = comm.peer_id();
    const unsigned next = (me + 1) % n, prev = (me + n - 1) % n;
    constexpr std::size_t kCount = 300;
    for (int order = 0; order < 4; ++order) {
      std::vector<FMI::Request> reqs;
      std::vector<Vec> send, recv;
      send.reserve(8);
      recv.reserve(8);
      // Four allreduces and four sends to the next peer in flight, with a blocking
      // allreduce and a blocking send/recv pair (whose messages must not be
      // confused with the non-blocking ones') started between them.
      for (unsigned i = 0; i < 4; ++i) {
        send.emplace_back(std::vector<I>(kCount, val(order * 10 + i, me, 0)));
        recv.emplace_back(kCount);
        reqs.push_back(comm.iallreduce(send.back(), recv.back(), Fn::sum()));
      }
      Vec bs(std::vector<I>(3, I(me))), br(3);
      comm.allreduce(bs, br, Fn::sum());
      PEER_CHECK(br.get()[2] == I(n) * (n - 1) / 2, "blocking allreduce among iallreduces");
      std::vector<Vec> ps, pr;
      ps.reserve(4);
      pr.reserve(4);
      for (unsigned i = 0; i < 4; ++i) {
        ps.emplace_back(std::vector<I>(kCount, val(order * 10 + i, me, 1)));
        pr.emplace_back(kCount);
      }
      for (unsigned i = 0; i < 2; ++i) reqs.push_back(comm.irecv(pr[i], prev));
      Vec blocking_out(std::vector<I>(1, I(me) + 77)), blocking_in(1);
      if (n > 1) {
        // Blocking send/recv between the non-blocking ones of the same pair: it is
        // the third message from prev, and must receive exactly that one.
        for (unsigned i = 0; i < 2; ++i) reqs.push_back(comm.isend(ps[i], next));
        if (me % 2 == 0) {
          comm.send(blocking_out, next);
          comm.recv(blocking_in, prev);
        } else {
          comm.recv(blocking_in, prev);
          comm.send(blocking_out, next);
        }
        PEER_CHECK(blocking_in.get()[0] == I(prev) + 77, "blocking recv got ",
                   blocking_in.get()[0]);
        for (unsigned i = 2; i < 4; ++i) reqs.push_back(comm.isend(ps[i], next));
        for (unsigned i = 2; i < 4; ++i) reqs.push_back(comm.irecv(pr[i], prev));
      }
      switch (order) {
        case 0:  // wait, newest first
          for (auto it = reqs.rbegin(); it != reqs.rend(); ++it) it->wait();
          break;
        case 1: {  // test loops
          std::size_t left = reqs.size();
          const auto until = Clock::now() + b().max_timeout() * 2;
          while (left > 0 && Clock::now() < until) {
            for (auto& r : reqs)
              if (r.active() && r.test()) --left;
            std::this_thread::sleep_for(1ms);
          }
          PEER_CHECK(left == 0, left, " requests still running after the test loop");
          break;
        }
        case 2:  // wait_for, then wait_all
          for (auto& r : reqs) r.wait_for(1ms);
          FMI::wait_all(reqs);
          break;
        default: {  // wait_any, each index once
          std::vector<bool> seen(reqs.size());
          for (std::size_t i = 0; i < reqs.size(); ++i) {
            const std::size_t k = FMI::wait_any(reqs);
            PEER_CHECK(k < reqs.size() && !seen[k], "wait_any returned ", k, " twice");
            seen[k] = true;
          }
          bool threw = false;
          try {
            FMI::wait_any(reqs);
          } catch (const FMI::UsageError&) {
            threw = true;
          }
          PEER_CHECK(threw, "wait_any over inactive requests did not throw UsageError");
        }
      }
      for (unsigned i = 0; i < 4; ++i) {
        I want = 0;
        for (unsigned p = 0; p < n; ++p) want += val(order * 10 + i, p, 0);
        PEER_CHECK(recv[i].get()[kCount - 1] == want, "iallreduce ", i, " of order ", order, ": ",
                   recv[i].get()[kCount - 1], ", expected ", want);
      }
      if (n > 1)
        for (unsigned i = 0; i < 4; ++i)
          PEER_CHECK(pr[i].get()[0] == val(order * 10 + i, prev, 1), "irecv ", i, " of order ",
                     order, " got ", pr[i].get()[0]);
    }
  });
}

TEST_P(NonBlocking, ProgressWithoutTheCaller) {
  each([&](FMI::Communicator& comm, Group&) {
    constexpr std::size_t kCount = (std::size_t(16) << 20) / sizeof(I);  // 16 MiB
    const unsigned n = comm.num_peers(), me = comm.peer_id();
    Vec send(std::vector<I>(kCount, I(me) + 1)), recv(kCount);
    // The blocking time of the same allreduce on this backend: on a loaded machine
    // a store may need longer than 300 ms for 16 MiB per peer, and the check is
    // that the operation advanced while nobody called FMI, not how fast: the nap is
    // 300 ms or five times the blocking time, whichever is longer.
    // The slowest peer's slower of two runs.
    Clock::duration mine{};
    for (int i = 0; i < 2; ++i) {
      const auto t0 = Clock::now();
      comm.allreduce(send, recv, Fn::sum());
      mine = std::max(mine, Clock::now() - t0);
    }
    FMI::Comm::Data<std::int64_t> my_ns(std::chrono::nanoseconds(mine).count()), max_ns;
    comm.allreduce(my_ns, max_ns, FMI::Utils::Function<std::int64_t>::max());
    const auto blocking = std::chrono::nanoseconds(max_ns.get());
    const auto nap = std::max<Clock::duration>(300ms, 5 * blocking);
    comm.barrier();
    FMI::Request r = comm.iallreduce(send, recv, Fn::sum());
    std::this_thread::sleep_for(nap);
    const auto t0 = Clock::now();
    const bool done = r.test();
    PEER_CHECK(done, "iallreduce of 16 MiB not complete after ",
               std::chrono::duration_cast<std::chrono::milliseconds>(nap).count(),
               " ms without FMI calls (the blocking one took ",
               std::chrono::duration_cast<std::chrono::milliseconds>(blocking).count(), " ms)");
    PEER_CHECK(Clock::now() - t0 < 50ms, "test() blocked");
    const I want = I(n) * (n + 1) / 2;
    PEER_CHECK(recv.get()[0] == want && recv.get()[kCount - 1] == want, "iallreduce result ",
               recv.get()[0]);
  });
}

TEST_P(NonBlocking, ErrorsRaisedByWait) {
  each(
      [&](FMI::Communicator& comm, Group&) {
        const unsigned n = comm.num_peers(), me = comm.peer_id();
        // Usage errors come from the i-call itself, and no sequence number is taken
        // (the collectives after it still match).
        Vec a(4), bigger(5);
        bool threw = false;
        try {
          FMI::Request r = comm.iallreduce(a, bigger, Fn::sum());
        } catch (const FMI::UsageError& e) {
          threw = std::string(e.what()).find("allreduce") != std::string::npos;
        }
        PEER_CHECK(threw, "iallreduce with unequal buffers did not throw UsageError naming it");
        threw = false;
        try {
          FMI::Request r = comm.isend(a, n);
        } catch (const FMI::UsageError&) {
          threw = true;
        }
        PEER_CHECK(threw, "isend to peer ", n, " did not throw UsageError");

        // Nobody sends: TimeoutError from wait(), after the channel's max_timeout
        // counted from the i-call, and test() is false meanwhile. (From peer 2: the
        // pair 0-1 keeps its sequence numbers for the size mismatch below.)
        if (me == 1) {
          Vec in(1);
          const auto t0 = Clock::now();
          FMI::Request r = comm.irecv(in, 2);
          PEER_CHECK(!r.test(), "test() true for a receive nobody serves");
          PEER_CHECK(!r.wait_for(10ms), "wait_for true for a receive nobody serves");
          threw = false;
          try {
            r.wait();
          } catch (const FMI::TimeoutError&) {
            threw = true;
          }
          const auto took = Clock::now() - t0;
          PEER_CHECK(threw, "irecv with no sender: no TimeoutError from wait()");
          PEER_CHECK(took >= b().short_timeout() - 50ms && took < b().short_timeout() * 3,
                     "timed out after ",
                     std::chrono::duration_cast<std::chrono::milliseconds>(took).count(), " ms");
        }
        // Peer 1 reaches this barrier max_timeout after the others: they come half of
        // it late, so that their barrier does not time out meanwhile.
        if (me != 1) std::this_thread::sleep_for(b().short_timeout() / 2);
        comm.barrier();
        // The next collective still matches on every peer.
        Vec x(std::vector<I>(1, I(me))), s(1);
        comm.allreduce(x, s, Fn::sum());
        PEER_CHECK(s.get()[0] == I(n) * (n - 1) / 2, "allreduce after the errors: ", s.get()[0]);

        // Size mismatch between peers: the receiver's wait() raises PeerError. Last:
        // on Direct a mismatch breaks the pair's connection.
        if (me == 0) {
          Vec out(std::vector<I>(2, 5));
          comm.isend(out, 1).wait();
        } else if (me == 1) {
          Vec in(3);
          FMI::Request r = comm.irecv(in, 0);
          threw = false;
          try {
            r.wait();
          } catch (const FMI::PeerError& e) {
            threw = std::string(e.what()).find("recv from peer 0") != std::string::npos;
          }
          PEER_CHECK(threw, "irecv of 24 bytes from a 16-byte send: no PeerError from wait()");
          PEER_CHECK(!r.active(), "a failed request stays active");
          r.wait();  // completed once: returns at once
        }
      },
      false, true);
}

TEST_P(NonBlocking, DestroyedEarly) {
  auto g = b().group(n(), comm_name());
  const std::string name = b().name();
  run_on(b(), *g, [&](unsigned me, Group& grp) {
    const unsigned n = grp.size();
    Vec late(1), sum(std::vector<I>(1000, 0)), mine(std::vector<I>(1000, I(me)));
    std::vector<FMI::Request> outlive;
    {
      FMI::Communicator comm(me, n, FMI::Config{}, grp.comm());
      comm.register_channel(name, grp.make(me));
      // A Request that goes out of scope while its receive waits: the destructor
      // waits until peer 1's message is in the buffer.
      if (me == 0) {
        const auto t0 = Clock::now();
        { FMI::Request r = comm.irecv(late, 1); }
        PEER_CHECK(late.get()[0] == 4242, "destroyed irecv left ", late.get()[0]);
        PEER_CHECK(Clock::now() - t0 >= 150ms, "the destructor did not wait for the message");
        // Move-assigning over a running request waits for it too.
        Vec again(1);
        FMI::Request r = comm.irecv(again, 1);
        r = FMI::Request();
        PEER_CHECK(again.get()[0] == 4343, "move-assigned irecv left ", again.get()[0]);
      } else if (me == 1) {
        std::this_thread::sleep_for(200ms);
        Vec v(std::vector<I>(1, 4242)), w(std::vector<I>(1, 4343));
        comm.send(v, 0);
        comm.send(w, 0);
      }
      // The communicator is destroyed with this allreduce in flight: it waits.
      outlive.push_back(comm.iallreduce(mine, sum, Fn::sum()));
    }
    PEER_CHECK(outlive[0].test(), "request still running after its communicator was destroyed");
    PEER_CHECK(sum.get()[999] == I(n) * (n - 1) / 2,
               "allreduce in flight at destruction: ", sum.get()[999]);
  });
  if (auto left = g->leftovers()) {
    EXPECT_EQ(*left, 0u) << "left in the store";
  }
}

TEST_P(NonBlocking, SubCommunicators) {
  each([&](FMI::Communicator& comm, Group&) {
    const unsigned n = comm.num_peers(), me = comm.peer_id();
    auto dup = comm.dup();
    auto half = comm.split(int(me % 2), int(me));
    Vec a(std::vector<I>(50, I(me))), ar(50), d(std::vector<I>(50, I(me) * 3)), dr(50),
        h(std::vector<I>(50, I(me) * 5)), hr(50);
    std::vector<FMI::Request> reqs;
    // The same operation, in flight at once on three communicators over one channel.
    reqs.push_back(half->iallreduce(h, hr, Fn::sum()));
    reqs.push_back(comm.iallreduce(a, ar, Fn::sum()));
    reqs.push_back(dup->iallreduce(d, dr, Fn::sum()));
    Vec hb(std::vector<I>(7, half->peer_id() == 0 ? I(me) : -1));
    reqs.push_back(half->ibcast(hb, 0));
    FMI::wait_all(reqs);
    I all = 0, odd_or_even = 0;
    for (unsigned p = 0; p < n; ++p) {
      all += p;
      if (p % 2 == me % 2) odd_or_even += p;
    }
    PEER_CHECK(ar.get()[49] == all, "parent iallreduce ", ar.get()[49]);
    PEER_CHECK(dr.get()[49] == 3 * all, "dup iallreduce ", dr.get()[49]);
    PEER_CHECK(hr.get()[49] == 5 * odd_or_even, "split iallreduce ", hr.get()[49]);
    PEER_CHECK(hb.get()[6] == I(me % 2), "split ibcast from its rank 0: ", hb.get()[6]);
  });
}

// A peer that is gone fails every request that depends on it (PeerError), and
// only those: Direct peers are processes that exit.
TEST_P(NonBlocking, DeadPeerFailsEveryRequest) {
  if (b().kind() != FMI::Comm::ChannelKind::peer_to_peer || !b().forked())
    GTEST_SKIP() << "needs peers that are processes with connections (Direct)";
  each([&](FMI::Communicator& comm, Group&) {
    const unsigned n = comm.num_peers(), me = comm.peer_id();
    comm.barrier();           // every connection is open
    if (me == n - 1) return;  // dies: its communicator closes every connection
    Vec in(1), in2(1), s(std::vector<I>(1, 1)), r(1);
    std::vector<FMI::Request> reqs;
    reqs.push_back(comm.irecv(in, n - 1));
    reqs.push_back(comm.irecv(in2, n - 1));
    reqs.push_back(comm.iallreduce(s, r, Fn::sum()));
    for (std::size_t i = 0; i < reqs.size(); ++i) {
      bool peer_error = false;
      try {
        reqs[i].wait();
      } catch (const FMI::PeerError&) {
        peer_error = true;
      }
      PEER_CHECK(peer_error, "request ", i, " did not fail with PeerError for the dead peer");
    }
  });
}

std::vector<Param> params(const std::string& name) { return {{name, 3}, {name, 5}}; }
std::string case_name(const ::testing::TestParamInfo<Param>& i) {
  return "n" + std::to_string(std::get<1>(i.param));
}

INSTANTIATE_TEST_SUITE_P(InProcP2P, NonBlocking, ::testing::ValuesIn(params("InProcP2P")),
                         case_name);
INSTANTIATE_TEST_SUITE_P(InProcStore, NonBlocking, ::testing::ValuesIn(params("InProcStore")),
                         case_name);
#ifdef FMI_WITH_DIRECT
INSTANTIATE_TEST_SUITE_P(Direct, NonBlocking, ::testing::ValuesIn(params("Direct")), case_name);
#endif
#ifdef FMI_WITH_REDIS
INSTANTIATE_TEST_SUITE_P(Redis, NonBlocking, ::testing::ValuesIn(params("Redis")), case_name);
#endif
#ifdef FMI_WITH_S3
INSTANTIATE_TEST_SUITE_P(S3, NonBlocking, ::testing::ValuesIn(params("S3")), case_name);
#endif

}  // namespace
}  // namespace fmitest::conformance
