// Every collective over S3 (moto) at 64 functions (issue 14), with the requests
// each one cost as the channels count them: the successful ones (requests that
// were not polls of a missing object) are one PUT per object put and one GET per
// get, as src/collectives/store.cpp documents (tests/support/store_scale.h), plus
// at most one batched DELETE per peer and the transient failures that were sent
// again (moto on a loaded machine resets a connection now and then); and no LIST
// at all. The peers are threads,
// each with its own channel and connections.
#include <gtest/gtest.h>

#include <vector>

#include "s3_fixture.h"
#include "store_scale.h"

namespace fmitest {

namespace {

using store_scale::Requests;

constexpr unsigned kPeers = 64;

class S3Scale : public S3Test {
 protected:
  void every_collective_at_64(const std::vector<std::string>& ops) {
    std::vector<std::shared_ptr<FMI::Comm::S3Channel>> channels(kPeers);
    const std::string cfg = config_json(5ms, 120s);
    // S3 has no counter of puts and gets apart: `puts` holds every successful
    // request, `gets` nothing.
    auto count = [&] {
      Requests r;
      for (const auto& ch : channels) {
        r.puts += static_cast<long long>(ch->requests() - ch->polls() - ch->client().lists() -
                                         ch->client().retries());
        r.lists += static_cast<long long>(ch->client().lists());
      }
      return r;
    };
    auto cost = store_scale::run(
        kPeers, "s3-scale-" + comm_, "S3",
        [&](unsigned me) { return channels[me] = s3_channel(cfg); }, count, ops);
    for (const auto& op : ops) {
      auto want = store_scale::documented(op, kPeers);
      const long long served = cost[op].puts, documented = want.puts + want.gets;
      EXPECT_GE(served, documented) << op << ": successful requests at " << kPeers << " peers";
      EXPECT_LE(served, documented + kPeers)
          << op << ": successful requests at " << kPeers << " peers (" << documented
          << " puts and gets, at most one DELETE batch per peer)";
      EXPECT_EQ(cost[op].lists, 0) << op << " listed the bucket";
    }
    EXPECT_TRUE(bucket_contents().empty()) << "objects left after every peer finalized";
  }
};

TEST_F(S3Scale, EveryLinearCollectiveAt64Peers) {
  every_collective_at_64({"bcast", "barrier", "gather", "scatter", "reduce", "allreduce",
                          "send_recv", "scan", "allgather"});
}

// n (n - 1) = 4,032 objects each: one test each.
TEST_F(S3Scale, AlltoallAt64Peers) { every_collective_at_64({"alltoall"}); }

TEST_F(S3Scale, ReduceScatterAt64Peers) { every_collective_at_64({"reduce_scatter"}); }

}  // namespace
}  // namespace fmitest
