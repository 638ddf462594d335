// Every collective at scale over an object-store channel (issue 14: Redis at 256
// functions, S3 at 64), shared by tests/redis/scale_test.cpp and
// tests/s3/scale_test.cpp.
//
// The peers are threads of the test process, each with its own Communicator and
// its own channel (its own connections, as a function would have). They run the
// collectives in turn, with a non-zero root where there is one, and check exact
// values. Around each collective they meet at a barrier of the test (a
// std::barrier, never the channel), where peer 0 asks the server (or the
// channels) for their request counts: the difference is what the collective cost,
// which each test compares with the counts src/collectives/store.cpp documents
// (documented() below): one upload per object, one download per reader, no
// listing.
#pragma once

#include <barrier>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fmi/fmi.h"
#include "harness.h"

namespace fmitest::store_scale {

/// Requests summed over all peers (or seen by the server), by what they do.
struct Requests {
  long long puts = 0;   // uploads
  long long gets = 0;   // downloads (a get that waited counts once on Redis)
  long long lists = 0;  // listings: a collective must never list
  Requests operator-(const Requests& o) const {
    return {puts - o.puts, gets - o.gets, lists - o.lists};
  }
};

/// The collectives of this suite, in the order they run.
inline const std::vector<std::string>& every_collective() {
  static const std::vector<std::string> ops = {
      "bcast", "barrier",   "gather",   "scatter",        "reduce",   "allreduce",
      "scan",  "allgather", "alltoall", "reduce_scatter", "send_recv"};
  return ops;
}

/// Uploads and downloads of one collective of n peers, as src/collectives/store.cpp
/// documents them (and src/policy/models.cpp models them).
inline Requests documented(const std::string& op, long long n) {
  if (op == "bcast") return {1, n - 1};          // one object, n - 1 readers
  if (op == "barrier") return {n, 2 * (n - 1)};  // arrivals at 0, one release
  if (op == "gather" || op == "scatter" || op == "reduce") return {n - 1, n - 1};
  if (op == "allreduce") return {n, 2 * (n - 1)};     // reduce at 0, one result
  if (op == "scan") return {n - 1, n * (n - 1) / 2};  // peer i reads the i before it
  if (op == "allgather") return {n, 2 * (n - 1)};     // gather at 0, one result
  if (op == "alltoall" || op == "reduce_scatter") return {n * (n - 1), n * (n - 1)};
  if (op == "send_recv") return {n, n};  // a ring: one message each
  return {-1, -1};
}

/// Runs the collectives `ops` on n peers whose channel `name` comes from make(rank);
/// returns the requests of each, taken by count() before and after it.
inline std::map<std::string, Requests> run(
    unsigned n, const std::string& comm_name, const std::string& name,
    const std::function<std::shared_ptr<FMI::Comm::Channel>(unsigned)>& make,
    const std::function<Requests()>& count, const std::vector<std::string>& ops) {
  using I = std::int64_t;
  using Vec = FMI::Comm::Data<std::vector<I>>;
  std::map<std::string, Requests> cost;
  std::barrier sync(static_cast<std::ptrdiff_t>(n));
  const unsigned root = n / 3;  // not 0: peer 0 is where the store algorithms gather
  const I N = n;
  auto errors = run_threads(n, [&](unsigned me) {
    const I M = me;
    try {
      FMI::Communicator comm(me, n, FMI::Config{}, comm_name);
      comm.register_channel(name, make(me));
      Requests before;
      for (const auto& op : ops) {
        sync.arrive_and_wait();
        if (me == 0) before = count();
        sync.arrive_and_wait();
        if (op == "bcast") {
          Vec buf(std::vector<I>(3, -1));
          if (me == root) buf = Vec(std::vector<I>{7, I(root), N});
          comm.bcast(buf, root);
          PEER_CHECK((buf.get() == std::vector<I>{7, I(root), N}), "bcast on peer ", me);
        } else if (op == "barrier") {
          comm.barrier();
        } else if (op == "gather") {
          Vec send(std::vector<I>{M * 3 + 1}), all(n);
          comm.gather(send, all, root);
          if (me == root)
            for (unsigned p = 0; p < n; ++p)
              PEER_CHECK(all.get()[p] == I(p) * 3 + 1, "gather: element ", p, " is ", all.get()[p]);
        } else if (op == "scatter") {
          Vec blocks(2 * n), mine(2);
          if (me == root)
            for (unsigned i = 0; i < 2 * n; ++i) blocks.ref()[i] = I(i / 2) * 10 + I(i % 2);
          comm.scatter(blocks, mine, root);
          PEER_CHECK((mine.get() == std::vector<I>{M * 10, M * 10 + 1}), "scatter on peer ", me);
        } else if (op == "reduce" || op == "allreduce") {
          FMI::Comm::Data<I> x(M + 1), sum(0);
          if (op == "reduce")
            comm.reduce(x, sum, root, FMI::Utils::Function<I>::sum());
          else
            comm.allreduce(x, sum, FMI::Utils::Function<I>::sum());
          if (op == "allreduce" || me == root)
            PEER_CHECK(sum.get() == N * (N + 1) / 2, op, " on peer ", me, ": ", sum.get());
        } else if (op == "scan") {
          FMI::Comm::Data<I> x(M + 1), prefix(0);
          comm.scan(x, prefix, FMI::Utils::Function<I>::sum());
          PEER_CHECK(prefix.get() == (M + 1) * (M + 2) / 2, "scan on peer ", me, ": ",
                     prefix.get());
        } else if (op == "allgather") {
          Vec send(std::vector<I>{M * M + 5}), all(n);
          comm.allgather(send, all);
          for (unsigned p = 0; p < n; ++p)
            PEER_CHECK(all.get()[p] == I(p) * p + 5, "allgather on peer ", me, ": element ", p);
        } else if (op == "alltoall") {
          Vec send(n), recv(n);
          for (unsigned j = 0; j < n; ++j) send.ref()[j] = M * 100000 + j;
          comm.alltoall(send, recv);
          for (unsigned p = 0; p < n; ++p)
            PEER_CHECK(recv.get()[p] == I(p) * 100000 + M, "alltoall on peer ", me, ": block ", p,
                       " is ", recv.get()[p]);
        } else if (op == "reduce_scatter") {
          Vec send(n), mine(1);
          for (unsigned j = 0; j < n; ++j) send.ref()[j] = M + j;
          comm.reduce_scatter(send, mine, FMI::Utils::Function<std::vector<I>>::sum());
          // sum over peers p of (p + me)
          PEER_CHECK(mine.get()[0] == N * (N - 1) / 2 + N * M, "reduce_scatter on peer ", me, ": ",
                     mine.get()[0]);
        } else if (op == "send_recv") {
          // A ring: everyone sends to the next and receives from the one before.
          FMI::Comm::Data<I> out(M * 7), in(-1);
          if (me % 2 == 0) {
            comm.send(out, (me + 1) % n);
            comm.recv(in, (me + n - 1) % n);
          } else {
            comm.recv(in, (me + n - 1) % n);
            comm.send(out, (me + 1) % n);
          }
          PEER_CHECK(in.get() == I((me + n - 1) % n) * 7, "recv on peer ", me, ": ", in.get());
        }
        sync.arrive_and_wait();
        if (me == 0) cost[op] = count() - before;
      }
      // Nobody finalizes (a barrier and deletes of its own) while peer 0 counts.
      sync.arrive_and_wait();
    } catch (...) {
      // The others go on (and fail in their own time) instead of waiting here.
      sync.arrive_and_drop();
      throw;
    }
  });
  expect_no_errors(errors, comm_name);
  return cost;
}

}  // namespace fmitest::store_scale
