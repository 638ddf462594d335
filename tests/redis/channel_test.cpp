// What only the Redis channel does, against a real redis-server started by the test
// (tests/support/redis_server.h): a TTL on every key of every size class (inline
// and chunked), 64 and 256 MiB messages, data that expired, what errors name,
// listing of the empty prefix, clean-up at finalize (DBSIZE 0 after every test),
// binary-safe names, AUTH and ACL users, database selection, a server that dies
// mid-operation, unreachable servers, many operations in a row, and the cost
// model. The object-store contract and the collectives are tests/conformance's.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <set>
#include <thread>

#include "channel_factory.h"
#include "channels/redis/config.h"
#include "channels/registry.h"
#include "fmi/fmi.h"
#include "fmi/model.h"
#include "fmi/model.h"  // the model test below
#include "harness.h"
#include "redis_server.h"

namespace fmitest {
namespace {

using namespace std::chrono_literals;
using FMI::Comm::ChannelContext;
using FMI::Comm::ObjectKey;
using FMI::Comm::ObjectStoreChannel;
using FMI::Comm::Tag;
using FMI::Utils::Clock;
using FMI::Utils::Operation;
using Bytes = std::vector<std::byte>;

constexpr std::size_t MiB = 1024 * 1024;

// The Redis section of a configuration; the tests change its fields and open
// channels from its JSON text (channel_factory.h).
struct RedisCfg {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  std::chrono::milliseconds max_timeout{10000};
  std::string username, password;
  int db = 0;
  std::string json() const { return redis_config(host, port, max_timeout, username, password, db); }
};

RedisCfg config_for(std::uint16_t port, std::chrono::milliseconds max_timeout = 10s) {
  RedisCfg c;
  c.port = port;
  c.max_timeout = max_timeout;
  return c;
}

std::shared_ptr<ObjectStoreChannel> open(const RedisCfg& cfg, unsigned peer = 0, unsigned peers = 2,
                                         const std::string& comm = "redis-test") {
  auto ch = std::dynamic_pointer_cast<ObjectStoreChannel>(make_channel("Redis", cfg.json()));
  if (!ch) throw std::runtime_error("the Redis factory did not return an object store");
  ch->init(ChannelContext{peer, peers, comm, 128});
  return ch;
}

// Every byte depends on the seed and its index, so a misplaced chunk shows.
Bytes pattern(std::size_t n, unsigned seed) {
  Bytes b(n);
  std::uint32_t x = 2166136261u ^ seed;
  for (std::size_t i = 0; i < n; ++i) {
    x = x * 16777619u + static_cast<std::uint32_t>(i >> 12);
    b[i] = static_cast<std::byte>((x >> 13) ^ i);
  }
  return b;
}

ObjectKey key(Operation op, std::uint32_t seq, unsigned from, unsigned to = ObjectKey::all) {
  return ObjectKey{Tag{op, seq}, from, to};
}

FMI::Utils::Deadline in(std::chrono::milliseconds d) { return Clock::now() + d; }

// Every key on the server has a TTL (PTTL > 0: -1 would be "no TTL").
void expect_ttl_on_every_key(RawClient& raw) {
  const auto keys = raw.keys();
  EXPECT_FALSE(keys.empty());
  for (const auto& k : keys) {
    const long long ms = raw.integer({"PTTL", k});
    EXPECT_GT(ms, 0) << "key " << k << " has no TTL";
  }
}

class RedisChannelTest : public ::testing::Test {
 protected:
  void TearDown() override {
    // Nothing left behind by any test (its channels are finalised by then).
    if (server_) {
      EXPECT_EQ(server_->client()->dbsize(), 0) << "keys left behind";
    }
  }
  std::unique_ptr<RedisServer> server_ = std::make_unique<RedisServer>();
};

TEST_F(RedisChannelTest, PutGetEverySizeClass) {
  auto cfg = config_for(server_->port());
  auto a = open(cfg, 0), b = open(cfg, 1);
  auto raw = server_->client();
  // Around the inline limit (1 MiB incl. a 5-byte header) and the chunk size.
  const std::vector<std::size_t> sizes = {0,     1,       3,       8,       1001,
                                          65537, MiB - 5, MiB - 4, MiB + 1, 3 * MiB + 7};
  std::uint32_t seq = 0;
  for (std::size_t n : sizes) {
    SCOPED_TRACE("size " + std::to_string(n));
    const auto k = key(Operation::send, seq++, 0, 1);
    const Bytes data = pattern(n, static_cast<unsigned>(n));
    a->put(k, data, 1, in(10s));
    expect_ttl_on_every_key(*raw);
    Bytes out(n, std::byte{0xEE});
    b->get(k, out, in(10s));
    EXPECT_TRUE(out == data);
  }
  EXPECT_EQ(raw->dbsize(), 0) << "the reader deletes what it read";
  a->finalize();
  b->finalize();
}

TEST_F(RedisChannelTest, LargeMessages64And256MiB) {
  auto cfg = config_for(server_->port(), 60s);
  auto a = open(cfg, 0), b = open(cfg, 1);
  auto raw = server_->client();
  std::uint32_t seq = 0;
  for (std::size_t n : {64 * MiB, 256 * MiB}) {
    SCOPED_TRACE("size " + std::to_string(n));
    const auto k = key(Operation::bcast, seq++, 0);
    Bytes data = pattern(n, 7);
    a->put(k, data, 1, in(60s));
    expect_ttl_on_every_key(*raw);
    Bytes out(n);
    b->get(k, out, in(60s));
    EXPECT_TRUE(out == data);
    EXPECT_EQ(raw->dbsize(), 0);
  }
}

TEST_F(RedisChannelTest, TtlOnEveryKeyWhileReadersRemain) {
  auto cfg = config_for(server_->port());
  auto writer = open(cfg, 0, 3), r1 = open(cfg, 1, 3), r2 = open(cfg, 2, 3);
  auto raw = server_->client();
  const auto k = key(Operation::allgather, 4, 0);
  const Bytes data = pattern(3 * MiB, 1);  // stored: list + hash + index
  writer->put(k, data, 2, in(10s));
  EXPECT_EQ(raw->dbsize(), 3);
  expect_ttl_on_every_key(*raw);
  Bytes out(data.size());
  r1->get(k, out, in(10s));
  EXPECT_TRUE(out == data);
  expect_ttl_on_every_key(*raw);  // one token left, counter at 1
  r2->get(k, out, in(10s));
  EXPECT_TRUE(out == data);
}

// Besides both sizes (the contract's, tests/conformance), the PeerError names the
// operation; the writer's finalize removes what the failed reader left.
TEST_F(RedisChannelTest, SizeMismatchNamesTheOperation) {
  auto cfg = config_for(server_->port(), 1s);
  auto a = open(cfg, 0), b = open(cfg, 1);
  std::uint32_t seq = 0;
  for (auto [sent, expected] :
       {std::pair<std::size_t, std::size_t>{10, 12}, {2 * MiB, 2 * MiB - 1}}) {
    const auto k = key(Operation::gather, seq++, 0, 1);
    a->put(k, pattern(sent, 1), 1, in(5s));
    Bytes out(expected);
    try {
      b->get(k, out, in(5s));
      ADD_FAILURE() << "no PeerError";
    } catch (const FMI::PeerError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(std::to_string(sent)), std::string::npos) << what;
      EXPECT_NE(what.find(std::to_string(expected)), std::string::npos) << what;
      EXPECT_NE(what.find("gather#"), std::string::npos) << what;
    }
  }
  // The writer's finalize removes what the failed reader left (after max_timeout).
  a->finalize();
  b->finalize();
}

TEST_F(RedisChannelTest, DataGoneIsChannelErrorAndLeavesNoKeyWithoutTtl) {
  auto cfg = config_for(server_->port(), 500ms);
  auto a = open(cfg, 0, 3), b = open(cfg, 1, 3);
  auto raw = server_->client();
  const auto k = key(Operation::bcast, 5, 0);
  a->put(k, pattern(2 * MiB, 1), 2, in(5s));
  const std::string data_key = "fmi:redis-test/bcast/5/0-all#d";
  ASSERT_EQ(raw->integer({"DEL", data_key}), 1);  // as if it had expired
  Bytes out(2 * MiB);
  try {
    b->get(k, out, in(5s));
    ADD_FAILURE() << "no ChannelError";
  } catch (const FMI::ChannelError& e) {
    EXPECT_NE(std::string(e.what()).find("is gone"), std::string::npos) << e.what();
  }
  b->finalize();  // sends what get left to send
  EXPECT_NE(raw->integer({"PTTL", data_key}), -1) << "a key without TTL";
}

// The TimeoutError names the object and the server; an object that is there is
// delivered even when the deadline has passed (the contract's deadline checks are
// tests/conformance's).
TEST_F(RedisChannelTest, TimeoutNamesObjectAndServerAndPresentDataIsDelivered) {
  auto cfg = config_for(server_->port());
  auto b = open(cfg, 1);
  Bytes out(8);
  try {
    b->get(key(Operation::reduce, 9, 0, 1), out, in(300ms));
    ADD_FAILURE() << "no TimeoutError";
  } catch (const FMI::TimeoutError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("reduce#9 from peer 0 to peer 1"), std::string::npos) << what;
    EXPECT_NE(what.find("127.0.0.1:" + std::to_string(server_->port())), std::string::npos);
  }
  // ... and data that is there is still delivered.
  auto a = open(cfg, 0);
  a->put(key(Operation::reduce, 11, 0, 1), pattern(8, 0), 1, in(1s));
  b->get(key(Operation::reduce, 11, 0, 1), out, Clock::now() - 1s);
  EXPECT_TRUE(out == pattern(8, 0));
}

// The empty prefix lists this communicator's objects only, and another peer's view
// drops what was read before the reader's own index clean-up (listing, erase and
// isolation are the contract's, tests/conformance).
TEST_F(RedisChannelTest, EmptyPrefixAndAnotherPeersView) {
  auto cfg = config_for(server_->port());
  auto a = open(cfg, 0, 3, "lister"), b = open(cfg, 1, 3, "lister");
  auto other = open(cfg, 0, 3, "another");
  const Bytes small = pattern(16, 1), big = pattern(2 * MiB, 2);
  a->put(key(Operation::bcast, 1, 0), small, 1, in(5s));
  a->put(key(Operation::bcast, 2, 0), big, 1, in(5s));
  a->put(key(Operation::gather, 1, 0, 2), small, 1, in(5s));
  b->put(key(Operation::gather, 1, 1, 2), small, 1, in(5s));
  other->put(key(Operation::bcast, 1, 0), small, 1, in(5s));
  EXPECT_EQ(b->list("", in(5s)).size(), 4u);  // this communicator's objects only

  Bytes s(small.size()), l(big.size());
  b->get(key(Operation::bcast, 1, 0), s, in(5s));
  b->get(key(Operation::bcast, 2, 0), l, in(5s));
  b->get(key(Operation::gather, 1, 0, 2), s, in(5s));
  b->get(key(Operation::gather, 1, 1, 2), s, in(5s));
  // Another peer's view: b's index clean-up waits for b's next request, but what
  // was read is not listed any more.
  EXPECT_TRUE(a->list("lister/gather/", in(5s)).empty());
  auto other_reader = open(cfg, 1, 3, "another");
  other_reader->get(key(Operation::bcast, 1, 0), s, in(5s));
  EXPECT_TRUE(s == small);
  EXPECT_TRUE(b->list("", in(5s)).empty());
}

TEST_F(RedisChannelTest, FinalizeDeletesUnreadObjectsAndIsIdempotent) {
  auto cfg = config_for(server_->port(), 300ms);
  auto raw = server_->client();
  {
    auto a = open(cfg, 0);
    a->put(key(Operation::send, 0, 0, 1), pattern(10, 0), 1, in(1s));
    a->put(key(Operation::send, 1, 0, 1), pattern(3 * MiB, 0), 1, in(1s));
    a->put(key(Operation::bcast, 0, 0), pattern(10, 0), 3, in(1s));
    EXPECT_GT(raw->dbsize(), 0);
    a->finalize();  // waits up to max_timeout for readers that never come
    EXPECT_EQ(raw->dbsize(), 0);
    a->finalize();
    EXPECT_THROW(a->put(key(Operation::send, 2, 0, 1), pattern(1, 0), 1, in(1s)), FMI::UsageError);
  }  // the destructor finalises again: nothing happens
  {
    auto a = open(cfg, 0);
    a->put(key(Operation::send, 0, 0, 1), pattern(10, 0), 1, in(1s));
  }  // destructor without finalize
  EXPECT_EQ(raw->dbsize(), 0);
}

TEST_F(RedisChannelTest, FinalizeLeavesTimeToReadersThatComeLate) {
  auto cfg = config_for(server_->port(), 10s);
  const Bytes data = pattern(100, 5);
  auto a = open(cfg, 0);
  a->put(key(Operation::bcast, 0, 0), data, 1, in(1s));
  std::thread late([&] {
    std::this_thread::sleep_for(300ms);
    auto b = open(cfg, 1);
    Bytes out(data.size());
    b->get(key(Operation::bcast, 0, 0), out, in(5s));
    EXPECT_TRUE(out == data);
  });
  a->finalize();  // returns once the reader has read
  late.join();
}

TEST_F(RedisChannelTest, BinarySafeCommunicatorNames) {
  auto cfg = config_for(server_->port());
  const std::string name("odd %s %b\r\n* $3 name\0with nul", 30);
  auto a = open(cfg, 0, 2, name), b = open(cfg, 1, 2, name);
  const Bytes data = pattern(33, 1);
  a->put(key(Operation::send, 0, 0, 1), data, 1, in(5s));
  auto listed = b->list(name + "/send/", in(5s));
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0], name + "/send/0/0-1");
  Bytes out(data.size());
  b->get(key(Operation::send, 0, 0, 1), out, in(5s));
  EXPECT_TRUE(out == data);
}

TEST_F(RedisChannelTest, HostNamesResolveAndDatabaseIsSelected) {
  auto cfg = config_for(server_->port());
  cfg.host = "localhost";
  cfg.db = 3;
  auto a = open(cfg, 0), b = open(cfg, 1);
  a->put(key(Operation::send, 0, 0, 1), pattern(10, 0), 1, in(5s));
  EXPECT_EQ(server_->client(3)->dbsize(), 2);  // notification list + index
  EXPECT_EQ(server_->client(0)->dbsize(), 0);
  Bytes out(10);
  b->get(key(Operation::send, 0, 0, 1), out, in(5s));
  a->finalize();
  b->finalize();
  EXPECT_EQ(server_->client(3)->dbsize(), 0);
}

TEST(RedisChannelErrors, UnreachableServerIsChannelErrorNamingHostAndPort) {
  const std::uint16_t port = free_port();  // nothing listens there
  auto cfg = config_for(port, 2s);
  try {
    open(cfg);
    ADD_FAILURE() << "no ChannelError";
  } catch (const FMI::ChannelError& e) {
    EXPECT_NE(std::string(e.what()).find("127.0.0.1:" + std::to_string(port)), std::string::npos)
        << e.what();
  }
  cfg.host = "no-such-host.invalid";
  try {
    open(cfg);
    ADD_FAILURE() << "no ChannelError";
  } catch (const FMI::ChannelError& e) {
    EXPECT_NE(std::string(e.what()).find("no-such-host.invalid:" + std::to_string(port)),
              std::string::npos)
        << e.what();
  }
  cfg.host = "";
  EXPECT_THROW(make_channel("Redis", cfg.json()), FMI::ConfigError);
}

TEST(RedisChannelAuth, PasswordAndUsername) {
  RedisServer server(RedisServer::Options{"s3cret pass"});
  auto cfg = config_for(server.port());

  // No password: the server refuses, and the error says where and why.
  try {
    open(cfg);
    ADD_FAILURE() << "no ChannelError";
  } catch (const FMI::ChannelError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("127.0.0.1:" + std::to_string(server.port())), std::string::npos);
    EXPECT_NE(what.find("NOAUTH"), std::string::npos) << what;
  }
  cfg.password = "wrong";
  try {
    open(cfg);
    ADD_FAILURE() << "no ChannelError";
  } catch (const FMI::ChannelError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("AUTH"), std::string::npos) << what;
    EXPECT_EQ(what.find("wrong"), std::string::npos) << "the password leaks: " << what;
  }

  cfg.password = "s3cret pass";
  {
    auto a = open(cfg, 0), b = open(cfg, 1);
    a->put(key(Operation::send, 0, 0, 1), pattern(10, 0), 1, in(5s));
    Bytes out(10);
    b->get(key(Operation::send, 0, 0, 1), out, in(5s));
    EXPECT_TRUE(out == pattern(10, 0));
  }

  // A Redis 6 ACL user.
  auto raw = server.client();
  raw->command({"ACL", "SETUSER", "fmi-user", "on", ">user pass", "~*", "&*", "+@all"});
  cfg.username = "fmi-user";
  cfg.password = "user pass";
  {
    auto a = open(cfg, 0), b = open(cfg, 1);
    a->put(key(Operation::send, 0, 0, 1), pattern(3 * MiB, 0), 1, in(5s));
    Bytes out(3 * MiB);
    b->get(key(Operation::send, 0, 0, 1), out, in(5s));
    EXPECT_TRUE(out == pattern(3 * MiB, 0));
  }
  cfg.password = "s3cret pass";  // the default user's password, not fmi-user's
  EXPECT_THROW(open(cfg), FMI::ChannelError);
  EXPECT_EQ(raw->dbsize(), 0);
}

// FMI_REDIS_PASSWORD replaces backends.Redis.password (as FMI_SECRET does for the
// Direct secret): a configuration without the password reaches the server.
TEST(RedisChannelAuth, PasswordFromTheEnvironment) {
  RedisServer server(RedisServer::Options{"env pass"});
  auto cfg = config_for(server.port());
  cfg.password = "not the password";
  ::setenv("FMI_REDIS_PASSWORD", "env pass", 1);
  {
    auto a = open(cfg, 0), b = open(cfg, 1);
    a->put(key(Operation::send, 0, 0, 1), pattern(10, 1), 1, in(5s));
    Bytes out(10);
    b->get(key(Operation::send, 0, 0, 1), out, in(5s));
    EXPECT_TRUE(out == pattern(10, 1));
  }
  ::unsetenv("FMI_REDIS_PASSWORD");
  EXPECT_THROW(open(cfg), FMI::ChannelError);  // the configured (wrong) one again
}

// A stranger with access to Redis pushes a "stored" token whose chunk size is near
// 2^64, so that the old check `chunks == (size + chunk_bytes - 1) / chunk_bytes`
// wrapped and chunks=0 passed: the get returned without data. It is a PeerError now.
TEST_F(RedisChannelTest, ForgedStoredTokenWithZeroChunksIsRefused) {
  auto cfg = config_for(server_->port());
  auto b = open(cfg, 1);
  const ObjectKey k = key(Operation::send, 7, 0, 1);
  std::string token(25, '\0');
  auto put = [&](std::size_t at, std::uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) token[at + i] = char((v >> (8 * i)) & 0xff);
  };
  token[0] = 'S';
  put(1, 1, 4);            // readers
  put(5, 1000, 8);         // size
  put(13, 0, 4);           // chunks
  put(17, ~0ull - 10, 8);  // chunk_bytes
  auto raw = server_->client();
  raw->command({"RPUSH", "fmi:" + k.str("redis-test") + "#n", token});
  Bytes out(1000, std::byte{0x5a});
  try {
    b->get(k, out, in(5s));
    ADD_FAILURE() << "a forged token with chunks=0 was accepted";
  } catch (const FMI::PeerError& e) {
    EXPECT_NE(std::string(e.what()).find("inconsistent notification"), std::string::npos)
        << e.what();
  }
}

TEST(RedisChannelFailure, ServerKilledWhileAGetIsBlocked) {
  RedisServer server;
  auto cfg = config_for(server.port(), 30s);
  auto a = open(cfg, 0), b = open(cfg, 1);
  std::string error;
  std::thread reader([&] {
    Bytes out(8);
    try {
      b->get(key(Operation::send, 0, 0, 1), out, in(30s));
      error = "returned";
    } catch (const FMI::ChannelError& e) {
      error = std::string("ChannelError: ") + e.what();
    } catch (const std::exception& e) {
      error = std::string("other: ") + e.what();
    }
  });
  std::this_thread::sleep_for(300ms);
  server.kill();
  reader.join();
  EXPECT_EQ(error.rfind("ChannelError: ", 0), 0u) << error;
  EXPECT_NE(error.find("BLPOP"), std::string::npos) << error;
  EXPECT_NE(error.find("send#0 from peer 0 to peer 1"), std::string::npos) << error;

  // Later operations fail the same way (reconnecting is refused), and finalize
  // neither throws nor hangs.
  try {
    a->put(key(Operation::send, 1, 0, 1), pattern(8, 0), 1, in(5s));
    ADD_FAILURE() << "no ChannelError";
  } catch (const FMI::ChannelError& e) {
    EXPECT_NE(std::string(e.what()).find("127.0.0.1:" + std::to_string(server.port())),
              std::string::npos)
        << e.what();
  }
  a->finalize();
  b->finalize();
}

TEST(RedisChannelFailure, ServerKilledDuringALargeTransfer) {
  RedisServer server;
  auto cfg = config_for(server.port(), 30s);
  auto a = open(cfg, 0);
  const Bytes data = pattern(256 * MiB, 1);
  std::thread killer([&] {
    std::this_thread::sleep_for(50ms);
    server.kill();
  });
  // Either the put got through before the kill (then a later one fails) or it fails.
  bool failed = false;
  for (std::uint32_t i = 0; i < 3 && !failed; ++i) {
    try {
      a->put(key(Operation::send, i, 0, 1), data, 1, in(30s));
    } catch (const FMI::ChannelError&) {
      failed = true;
    }
  }
  killer.join();
  EXPECT_TRUE(failed);
  a->finalize();
}

// Many small collectives in a row (moved from the Redis collective tests, whose
// values are tests/conformance's): the per-peer list of created objects is pruned
// as it grows, and nothing is left at the end.
TEST(RedisChannelCommunicator, ManySmallOperationsLeaveNothing) {
  RedisServer server;
  for (unsigned n : {1u, 3u, 8u}) {
    expect_no_errors(
        run_threads(n,
                    [&](unsigned i) {
                      FMI::Communicator comm(i, n, FMI::Config{}, "many-" + std::to_string(n));
                      comm.register_channel(
                          "Redis", make_channel("Redis", config_for(server.port(), 20s).json()));
                      FMI::Comm::Data<int> x(static_cast<int>(i)), sum(0);
                      const int N = static_cast<int>(n);
                      for (int k = 0; k < 1100; ++k) {
                        comm.allreduce(x, sum, FMI::Utils::Function<int>::sum());
                        PEER_CHECK(sum.get() == N * (N - 1) / 2, "allreduce ", k, ": ", sum.get());
                      }
                    }),
        "n=" + std::to_string(n));
    EXPECT_EQ(server.client()->dbsize(), 0) << "keys left after every communicator ended";
  }
}

TEST(RedisModel, ChannelExposesThePolicysReferenceModel) {
  // The formulas are tested in tests/policy; the channel must hand the policy the
  // same model that fmi-model explains.
  FMI::Config cfg;
  cfg.section<FMI::Comm::RedisConfig>().host = "127.0.0.1";
  auto model = FMI::Comm::find_channel("Redis")->make(cfg)->model();
  ASSERT_TRUE(model);
  auto ref = FMI::Comm::make_builtin_model("Redis", cfg);
  EXPECT_DOUBLE_EQ(model->latency(1, 7, 10 * MiB), ref->latency(1, 7, 10 * MiB));
  EXPECT_DOUBLE_EQ(model->cost(1, 3, 1'000'000'000), ref->cost(1, 3, 1'000'000'000));
}

}  // namespace
}  // namespace fmitest
