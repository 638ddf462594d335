// Every collective over Redis at 256 functions (issue 14), with the requests each
// one cost as redis-server counts them (INFO commandstats): one RPUSH per object
// put, one BLPOP per get, and no listing (ZRANGEBYLEX, SCAN, KEYS), against the
// counts src/collectives/store.cpp documents (tests/support/store_scale.h). The
// peers are threads, each with its own channel and connections. Split in three
// tests so that each stays well within its time on a loaded 2-core machine; the
// quadratic ones (n (n - 1) objects) have one test each.
#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>

#include "channel_factory.h"
#include "redis_server.h"
#include "store_scale.h"

namespace fmitest {
namespace {

using namespace std::chrono_literals;
using store_scale::Requests;

constexpr unsigned kPeers = 256;

// calls= of each command in INFO commandstats ("cmdstat_rpush:calls=12,usec=...").
Requests commandstats(RawClient& redis) {
  auto r = redis.command({"INFO", "commandstats"});
  std::istringstream lines(std::string(r->str, r->len));
  std::map<std::string, long long> calls;
  for (std::string line; std::getline(lines, line);) {
    auto colon = line.find(':'), at = line.find("calls=");
    if (line.rfind("cmdstat_", 0) != 0 || colon == std::string::npos || at == std::string::npos)
      continue;
    calls[line.substr(8, colon - 8)] = std::stoll(line.substr(at + 6));
  }
  return {calls["rpush"], calls["blpop"], calls["zrangebylex"] + calls["scan"] + calls["keys"]};
}

// connected_clients of INFO clients.
long long connected_clients(RawClient& redis) {
  auto r = redis.command({"INFO", "clients"});
  const std::string info(r->str, r->len), field = "connected_clients:";
  auto at = info.find(field);
  return at == std::string::npos ? -1 : std::stoll(info.substr(at + field.size()));
}

void every_collective_at_256(const std::vector<std::string>& ops) {
  RedisServer server;
  RawClient redis(server.port());
  const std::string cfg = redis_config("127.0.0.1", server.port(), 60s);
  long long most_clients = 0;
  auto cost = store_scale::run(
      kPeers, "redis-scale", "Redis", [&](unsigned) { return make_channel("Redis", cfg); },
      [&] {
        most_clients = std::max(most_clients, connected_clients(redis));
        return commandstats(redis);
      },
      ops);
  // Every peer has connections of its own (a channel keeps its pool until
  // finalize), plus this test's client.
  EXPECT_GT(most_clients, kPeers) << "clients connected to redis-server";
  for (const auto& op : ops) {
    auto want = store_scale::documented(op, kPeers);
    const Requests& got = cost[op];
    EXPECT_EQ(got.puts, want.puts) << op << ": RPUSHes (objects put) at " << kPeers << " peers";
    EXPECT_EQ(got.gets, want.gets) << op << ": BLPOPs (gets) at " << kPeers << " peers";
    EXPECT_EQ(got.lists, 0) << op << " listed the store";
  }
  EXPECT_EQ(server.dbsize(), 0) << "keys left after every peer finalized";
}

TEST(RedisScale, EveryLinearCollectiveAt256Peers) {
  every_collective_at_256({"bcast", "barrier", "gather", "scatter", "reduce", "allreduce",
                           "send_recv", "scan", "allgather"});
}

TEST(RedisScale, AlltoallAt256Peers) { every_collective_at_256({"alltoall"}); }

TEST(RedisScale, ReduceScatterAt256Peers) { every_collective_at_256({"reduce_scatter"}); }

}  // namespace
}  // namespace fmitest
