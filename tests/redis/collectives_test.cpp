// Every collective and send/recv through FMI::Communicator over the Redis channel,
// for 1, 2, 3, 5 and 8 peers as threads of this process, each with its own
// Communicator (and so its own connection), against a real redis-server. Values are
// checked on every peer; after every communicator is destroyed the database is empty.
#include <gtest/gtest.h>

#include <exception>
#include <functional>
#include <numeric>
#include <thread>

#include "channels/redis/config.h"
#include "fmi/fmi.h"
#include "redis_server.h"

namespace fmitest {
namespace {

using namespace std::chrono_literals;
using FMI::Comm::Data;
using FMI::Utils::Function;
using FMI::Utils::peer_num;
using Ints = std::vector<int>;

class RedisCollectives : public ::testing::TestWithParam<peer_num> {
 protected:
  // Runs body(comm) on every peer; an exception on any peer fails the test, naming it.
  void run(const std::function<void(FMI::Communicator&)>& body) {
    const peer_num n = GetParam();
    std::vector<std::string> errors(n);
    std::vector<std::thread> threads;
    for (peer_num i = 0; i < n; ++i) {
      threads.emplace_back([&, i] {
        try {
          FMI::Config cfg;
          cfg.section<FMI::Comm::RedisConfig>().enabled = true;
          cfg.section<FMI::Comm::RedisConfig>().host = "127.0.0.1";
          cfg.section<FMI::Comm::RedisConfig>().port = server_.port();
          cfg.section<FMI::Comm::RedisConfig>().max_timeout = 20s;
          FMI::Communicator comm(i, n, cfg, "redis-collectives");
          if (comm.channels().size() != 1 || !comm.channels().count("Redis"))
            throw std::runtime_error("the Redis channel is not the only channel");
          body(comm);
        } catch (const std::exception& e) {
          errors[i] = e.what();
        } catch (...) {
          errors[i] = "unknown exception";
        }
      });
    }
    for (auto& t : threads) t.join();
    for (peer_num i = 0; i < n; ++i)
      EXPECT_TRUE(errors[i].empty()) << "peer " << i << " of " << n << ": " << errors[i];
    EXPECT_EQ(server_.client()->dbsize(), 0) << "keys left after every communicator ended";
  }

  RedisServer server_;
};

// Value of element i of peer p's block b.
int v(peer_num p, peer_num b, std::size_t i) {
  return static_cast<int>(p * 1000003u + b * 1009u + static_cast<unsigned>(i));
}

// Small (inline in the notification list) and large (data hash: more than 1 MiB).
const std::vector<std::size_t> kCounts = {1, 1000, 300000};

TEST_P(RedisCollectives, Bcast) {
  run([](FMI::Communicator& c) {
    const peer_num n = c.num_peers();
    for (std::size_t count : kCounts) {
      for (peer_num root : {peer_num(0), n - 1}) {
        Data<Ints> buf(count);
        for (std::size_t i = 0; i < count; ++i)
          buf.ref()[i] = c.peer_id() == root ? v(root, 0, i) : -1;
        c.bcast(buf, root);
        for (std::size_t i = 0; i < count; ++i) ASSERT_EQ(buf.get()[i], v(root, 0, i));
      }
    }
  });
}

TEST_P(RedisCollectives, Barrier) {
  run([](FMI::Communicator& c) {
    for (int i = 0; i < 3; ++i) c.barrier();
  });
}

TEST_P(RedisCollectives, SendRecvRing) {
  if (GetParam() == 1) GTEST_SKIP() << "a ring needs two peers";
  run([](FMI::Communicator& c) {
    const peer_num n = c.num_peers(), p = c.peer_id();
    for (std::size_t count : kCounts) {
      Data<Ints> out(count), in(count);
      for (std::size_t i = 0; i < count; ++i) out.ref()[i] = v(p, 1, i);
      // Even peers send first, odd ones receive first: no peer waits on itself.
      if (p % 2 == 0) {
        c.send(out, (p + 1) % n);
        c.recv(in, (p + n - 1) % n);
      } else {
        c.recv(in, (p + n - 1) % n);
        c.send(out, (p + 1) % n);
      }
      for (std::size_t i = 0; i < count; ++i) ASSERT_EQ(in.get()[i], v((p + n - 1) % n, 1, i));
    }
  });
}

TEST_P(RedisCollectives, GatherAndScatter) {
  run([](FMI::Communicator& c) {
    const peer_num n = c.num_peers(), p = c.peer_id(), root = n / 2;
    for (std::size_t count : {std::size_t(1), std::size_t(777), std::size_t(300000)}) {
      Data<Ints> mine(count), all(count * n);
      for (std::size_t i = 0; i < count; ++i) mine.ref()[i] = v(p, 2, i);
      c.gather(mine, all, root);
      if (p == root) {
        for (peer_num q = 0; q < n; ++q)
          for (std::size_t i = 0; i < count; ++i) ASSERT_EQ(all.get()[q * count + i], v(q, 2, i));
      }

      Data<Ints> blocks(count * n), got(count);
      if (p == root)
        for (peer_num q = 0; q < n; ++q)
          for (std::size_t i = 0; i < count; ++i) blocks.ref()[q * count + i] = v(root, q, i);
      c.scatter(blocks, got, root);
      for (std::size_t i = 0; i < count; ++i) ASSERT_EQ(got.get()[i], v(root, p, i));
    }
  });
}

TEST_P(RedisCollectives, ReduceAllreduceScan) {
  run([](FMI::Communicator& c) {
    const peer_num n = c.num_peers(), p = c.peer_id();
    for (std::size_t count : kCounts) {
      Data<Ints> mine(count), out(count);
      for (std::size_t i = 0; i < count; ++i) mine.ref()[i] = static_cast<int>(p + 1 + i % 7);
      auto sum_upto = [&](peer_num last, std::size_t i) {
        int s = 0;
        for (peer_num q = 0; q <= last; ++q) s += static_cast<int>(q + 1 + i % 7);
        return s;
      };
      c.reduce(mine, out, 0, Function<Ints>::sum());
      if (p == 0) {
        for (std::size_t i = 0; i < count; ++i) ASSERT_EQ(out.get()[i], sum_upto(n - 1, i));
      }
      Data<Ints> all(count);
      c.allreduce(mine, all, Function<Ints>::sum());
      for (std::size_t i = 0; i < count; ++i) ASSERT_EQ(all.get()[i], sum_upto(n - 1, i));
      Data<Ints> prefix(count);
      c.scan(mine, prefix, Function<Ints>::sum());
      for (std::size_t i = 0; i < count; ++i) ASSERT_EQ(prefix.get()[i], sum_upto(p, i));
    }
    // A function that is neither commutative nor associative: strictly left to right.
    Data<int> x(static_cast<int>(p) + 2), r(0);
    Function<int> f([](int a, int b) { return 2 * a - b; }, false, false);
    c.allreduce(x, r, f);
    int expect = 2;
    for (peer_num q = 1; q < n; ++q) expect = 2 * expect - static_cast<int>(q + 2);
    EXPECT_EQ(r.get(), expect);
  });
}

TEST_P(RedisCollectives, AllgatherAlltoallReduceScatter) {
  run([](FMI::Communicator& c) {
    const peer_num n = c.num_peers(), p = c.peer_id();
    for (std::size_t count : {std::size_t(1), std::size_t(513), std::size_t(300000)}) {
      Data<Ints> mine(count), all(count * n);
      for (std::size_t i = 0; i < count; ++i) mine.ref()[i] = v(p, 3, i);
      c.allgather(mine, all);
      for (peer_num q = 0; q < n; ++q)
        for (std::size_t i = 0; i < count; ++i) ASSERT_EQ(all.get()[q * count + i], v(q, 3, i));

      Data<Ints> send(count * n), recv(count * n);
      for (peer_num b = 0; b < n; ++b)
        for (std::size_t i = 0; i < count; ++i) send.ref()[b * count + i] = v(p, b, i);
      c.alltoall(send, recv);
      for (peer_num q = 0; q < n; ++q)
        for (std::size_t i = 0; i < count; ++i) ASSERT_EQ(recv.get()[q * count + i], v(q, p, i));

      Data<Ints> contrib(count * n), block(count);
      for (peer_num b = 0; b < n; ++b)
        for (std::size_t i = 0; i < count; ++i)
          contrib.ref()[b * count + i] = static_cast<int>(p * 3 + b + i % 5);
      c.reduce_scatter(contrib, block, Function<Ints>::sum());
      for (std::size_t i = 0; i < count; ++i) {
        int s = 0;
        for (peer_num q = 0; q < n; ++q) s += static_cast<int>(q * 3 + p + i % 5);
        ASSERT_EQ(block.get()[i], s);
      }
    }
  });
}

// A second run under the same communicator name starts clean: it reads its own
// messages, never the first run's.
TEST_P(RedisCollectives, SameNameTwiceInARow) {
  for (int run_no = 0; run_no < 2; ++run_no) {
    run([run_no](FMI::Communicator& c) {
      const peer_num n = c.num_peers(), p = c.peer_id();
      Data<Ints> buf(100), all(100 * n);
      for (std::size_t i = 0; i < 100; ++i) buf.ref()[i] = p == 0 ? v(run_no, 0, i) : -1;
      c.bcast(buf, 0);
      for (std::size_t i = 0; i < 100; ++i) ASSERT_EQ(buf.get()[i], v(run_no, 0, i));
      for (std::size_t i = 0; i < 100; ++i) buf.ref()[i] = v(p + run_no, 1, i);
      c.allgather(buf, all);
      for (peer_num q = 0; q < n; ++q)
        for (std::size_t i = 0; i < 100; ++i)
          ASSERT_EQ(all.get()[q * 100 + i], v(q + run_no, 1, i));
    });
  }
}

// Many small collectives in a row: the per-peer list of created objects is pruned
// as it grows, and nothing is left at the end.
TEST_P(RedisCollectives, ManySmallOperations) {
  run([](FMI::Communicator& c) {
    Data<int> x(static_cast<int>(c.peer_id())), sum(0);
    const int n = static_cast<int>(c.num_peers());
    for (int i = 0; i < 1100; ++i) {
      c.allreduce(x, sum, Function<int>::sum());
      ASSERT_EQ(sum.get(), n * (n - 1) / 2);
    }
  });
}

INSTANTIATE_TEST_SUITE_P(Peers, RedisCollectives, ::testing::Values(1u, 2u, 3u, 5u, 8u),
                         [](const auto& info) { return "n" + std::to_string(info.param); });

}  // namespace
}  // namespace fmitest
