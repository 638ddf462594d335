// Every collective through the public FMI::Communicator over the Direct channel:
// one forked process per peer, a real fmi-rendezvous, exact integer results.
#include <gtest/gtest.h>

#include <cstdint>
#include <numeric>

#include "channels/direct/config.h"
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
  cfg.section<FMI::Comm::DirectConfig>().enabled = true;
  cfg.section<FMI::Comm::DirectConfig>().host = "127.0.0.1";
  cfg.section<FMI::Comm::DirectConfig>().port = server.port();
  cfg.section<FMI::Comm::DirectConfig>().max_timeout = max_timeout;
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
