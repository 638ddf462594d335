// Bad input through the API and the configuration, as a table: each case gives the
// exact exception type and the parts its message must contain (the operation, the
// peer, the field, the address, the sizes). See docs/reliability.md for the table.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <vector>

#include "channels/redis/config.h"
#include "channels/s3/config.h"
#include "fmi/model.h"
#include "reliability.h"

namespace fmirel {
namespace {

using FMI::Comm::Data;
using FMI::Utils::Function;
using fmitest::Kind;
using Ints = std::vector<int>;
using Chars = std::vector<char>;

// ---- arguments checked on the calling peer before anything is sent ----------------

struct UsageCase {
  const char* name;
  std::function<void(FMI::Communicator&)> call;
  std::vector<std::string> parts;
};

std::vector<UsageCase> usage_cases() {
  return {
      {"bcast root out of range",
       [](auto& c) {
         Data<Ints> b(3);
         c.bcast(b, 4);
       },
       {"bcast", "root 4", "out of range for 4 peers"}},
      {"gather root out of range",
       [](auto& c) {
         Data<Ints> s(3), r(12);
         c.gather(s, r, 7);
       },
       {"gather", "root 7", "valid: 0..3"}},
      {"scatter root out of range",
       [](auto& c) {
         Data<Ints> s(12), r(3);
         c.scatter(s, r, 4);
       },
       {"scatter", "root 4"}},
      {"reduce root out of range",
       [](auto& c) {
         Data<Ints> s(3), r(3);
         c.reduce(s, r, 4, Function<Ints>::sum());
       },
       {"reduce", "root 4"}},
      {"send to a peer out of range",
       [](auto& c) {
         Data<int> v(1);
         c.send(v, 4);
       },
       {"send", "destination peer 4"}},
      {"recv from a peer out of range",
       [](auto& c) {
         Data<int> v(1);
         c.recv(v, 9);
       },
       {"recv", "source peer 9"}},
      {"send to itself",
       [](auto& c) {
         Data<int> v(1);
         c.send(v, 0);
       },
       {"send", "peer 0 cannot send to itself"}},
      {"recv from itself",
       [](auto& c) {
         Data<int> v(1);
         c.recv(v, 0);
       },
       {"recv", "cannot receive from itself"}},
      {"gather recv buffer too small on root",
       [](auto& c) {
         Data<Ints> s(3), r(11);
         c.gather(s, r, 0);
       },
       {"gather", "recv buffer on root holds 44 bytes", "4 x 12 = 48"}},
      {"gather recv buffer too large on root",
       [](auto& c) {
         Data<Ints> s(3), r(13);
         c.gather(s, r, 0);
       },
       {"gather", "holds 52 bytes", "= 48"}},
      {"scatter send buffer not divisible",
       [](auto& c) {
         Data<Chars> s(10), r(2);
         c.scatter(s, r, 0);
       },
       {"scatter", "send buffer on root holds 10 bytes", "not divisible by num_peers = 4"}},
      {"scatter send buffer wrong size",
       [](auto& c) {
         Data<Ints> s(16), r(3);
         c.scatter(s, r, 0);
       },
       {"scatter", "holds 64 bytes", "needs num_peers x recv = 4 x 12 = 48"}},
      {"reduce send and recv differ on root",
       [](auto& c) {
         Data<Ints> s(3), r(2);
         c.reduce(s, r, 0, Function<Ints>::sum());
       },
       {"reduce", "send buffer holds 12 bytes, recv buffer holds 8 bytes"}},
      {"allreduce send and recv differ",
       [](auto& c) {
         Data<Ints> s(3), r(4);
         c.allreduce(s, r, Function<Ints>::sum());
       },
       {"allreduce", "send buffer holds 12 bytes, recv buffer holds 16 bytes"}},
      {"scan send and recv differ",
       [](auto& c) {
         Data<Ints> s(3), r(1);
         c.scan(s, r, Function<Ints>::sum());
       },
       {"scan", "12 bytes", "4 bytes"}},
      {"allgather recv buffer wrong size",
       [](auto& c) {
         Data<Ints> s(3), r(3);
         c.allgather(s, r);
       },
       {"allgather", "recv buffer holds 12 bytes", "4 x 12 = 48"}},
      {"alltoall send buffer not divisible",
       [](auto& c) {
         Data<Chars> s(10), r(10);
         c.alltoall(s, r);
       },
       {"alltoall", "send buffer holds 10 bytes", "not divisible by num_peers = 4"}},
      {"alltoall recv differs from send",
       [](auto& c) {
         Data<Ints> s(8), r(4);
         c.alltoall(s, r);
       },
       {"alltoall", "recv buffer holds 16 bytes", "32 bytes"}},
      {"reduce_scatter send buffer wrong size",
       [](auto& c) {
         Data<Ints> s(10), r(3);
         c.reduce_scatter(s, r, Function<Ints>::sum());
       },
       {"reduce_scatter", "send buffer holds 40 bytes", "4 x 12 = 48"}},
      {"reduction over a partial element",
       [](auto& c) {
         // Byte-level entry point (Python, raw buffers): 6 bytes of 4-byte ints.
         auto f = Function<int>::sum();
         std::vector<std::byte> s(6), r(6);
         c.allreduce_bytes(s, r, f.op());
       },
       {"allreduce", "6 bytes", "4-byte elements"}},
      {"register a null channel",
       [](auto& c) { c.register_channel("x", nullptr); },
       {"register_channel", "'x' is null"}},
      {"set a null policy",
       [](auto& c) { c.set_channel_policy(nullptr); },
       {"set_channel_policy", "null"}},
  };
}

class BadArguments : public ::testing::TestWithParam<Kind> {};

// Each case alone on peer 0 of 4 (the others never come): the error must come before
// anything is sent, so the store stays empty and the receive buffer untouched.
TEST_P(BadArguments, UsageErrorBeforeAnythingIsSent) {
  for (const auto& tc : usage_cases()) {
    SCOPED_TRACE(tc.name);
    FMI::Comm::InProcessHub hub(4, 2s);
    FMI::Config cfg;
    FMI::Communicator comm(0, 4, cfg, "bad");
    comm.register_channel("inproc", fmitest::endpoint(hub, GetParam()));
    std::initializer_list<std::string> none{};
    std::string msg;
    auto r = throws<FMI::UsageError>([&] { tc.call(comm); }, none, &msg);
    EXPECT_TRUE(r);
    for (const auto& p : tc.parts)
      EXPECT_NE(msg.find(p), std::string::npos) << msg << " lacks " << p;
    EXPECT_EQ(hub.objects_in_store(), 0u);
    EXPECT_EQ(hub.store_requests(), 0u) << "a rejected call talked to the store";
  }
}

TEST_P(BadArguments, RejectedCallLeavesTheReceiveBufferUntouched) {
  FMI::Comm::InProcessHub hub(4, 2s);
  FMI::Config cfg;
  FMI::Communicator comm(0, 4, cfg, "bad");
  comm.register_channel("inproc", fmitest::endpoint(hub, GetParam()));
  Data<Ints> s(Ints{1, 2, 3}), r(Ints{7, 7, 7, 7});
  EXPECT_THROW(comm.allreduce(s, r, Function<Ints>::sum()), FMI::UsageError);
  EXPECT_EQ(r.get(), (Ints{7, 7, 7, 7}));
  Data<Ints> g(Ints(11, 9));
  EXPECT_THROW(comm.gather(s, g, 0), FMI::UsageError);
  EXPECT_EQ(g.get(), Ints(11, 9));
}

INSTANTIATE_TEST_SUITE_P(Kinds, BadArguments, ::testing::Values(Kind::p2p, Kind::store),
                         [](const auto& i) { return std::string(fmitest::kind_name(i.param)); });

TEST(BadConstruction, PeerIdNumPeersAndName) {
  FMI::Config cfg;
  EXPECT_TRUE(throws<FMI::UsageError>([&] { FMI::Communicator c(4, 4, cfg, "x"); },
                                      {"peer_id 4 is out of range for 4 peers", "0..3"}));
  EXPECT_TRUE(throws<FMI::UsageError>([&] { FMI::Communicator c(0xffffffffu, 2, cfg, "x"); },
                                      {"peer_id 4294967295", "2 peers"}));
  EXPECT_TRUE(throws<FMI::UsageError>([&] { FMI::Communicator c(0, 0, cfg, "x"); },
                                      {"num_peers must be at least 1"}));
  EXPECT_TRUE(throws<FMI::UsageError>([&] { FMI::Communicator c(0, 2, cfg, ""); },
                                      {"comm_name must not be empty"}));
}

TEST(BadConstruction, ChannelMadeForAnotherPeerCount) {
  FMI::Comm::InProcessHub hub(4);
  FMI::Config cfg;
  FMI::Communicator c(0, 3, cfg, "x");
  EXPECT_TRUE(throws<FMI::UsageError>([&] { c.register_channel("p", hub.p2p_endpoint()); },
                                      {"hub made for 4 peers, communicator has 3"}));
  EXPECT_TRUE(throws<FMI::UsageError>([&] { c.register_channel("s", hub.store_endpoint()); },
                                      {"hub made for 4 peers, communicator has 3"}));
}

// ---- channels and policy ------------------------------------------------------------

class NamePolicy : public FMI::Utils::ChannelPolicy {
 public:
  explicit NamePolicy(std::string n) : name_(std::move(n)) {}
  std::string get_channel(const FMI::Utils::OperationInfo&,
                          const FMI::Utils::ChannelMap&) override {
    return name_;
  }

 private:
  std::string name_;
};

TEST(BadChannel, PolicyReturnsAnUnknownChannel) {
  FMI::Comm::InProcessHub hub(1);
  FMI::Config cfg;
  FMI::Communicator c(0, 1, cfg, "x");
  c.register_channel("inproc", hub.p2p_endpoint());
  c.set_channel_policy(std::make_shared<NamePolicy>("Carrier-Pigeon"));
  Data<Ints> s(Ints{1}), r(1);
  EXPECT_TRUE(throws<FMI::UsageError>(
      [&] { c.allreduce(s, r, Function<Ints>::sum()); },
      {"allreduce", "the channel policy chose 'Carrier-Pigeon'", "not a registered channel"}));
  EXPECT_TRUE(throws<FMI::UsageError>([&] { c.barrier(); }, {"barrier", "Carrier-Pigeon"}));
  // The policy returning nothing at all is the same mistake.
  c.set_channel_policy(std::make_shared<NamePolicy>(""));
  EXPECT_TRUE(throws<FMI::UsageError>([&] { c.bcast(s, 0); }, {"bcast", "chose ''"}));
}

TEST(BadChannel, NoChannelAtAll) {
  FMI::Config cfg;  // every backend disabled, nothing registered
  FMI::Communicator c(0, 2, cfg, "x");
  Data<int> v(1);
  EXPECT_TRUE(throws<FMI::UsageError>([&] { c.bcast(v, 0); }, {"bcast", "no channel available"}));
  EXPECT_TRUE(throws<FMI::UsageError>([&] { c.send(v, 1); }, {"send", "no channel available"}));
}

TEST(BadChannel, UnknownChannelNameInTheModelTools) {
  FMI::Config cfg;
  FMI::Utils::ExplainOptions o;
  o.channels = {"Direct", "Carrier-Pigeon"};
  EXPECT_TRUE(
      throws<FMI::UsageError>([&] { FMI::Utils::explain_rows(cfg, o); }, {"Carrier-Pigeon"}));
  EXPECT_TRUE(throws<FMI::UsageError>([&] { FMI::Comm::builtin_kind("Carrier-Pigeon"); },
                                      {"Carrier-Pigeon"}));
  o.channels = {"Direct"};
  o.num_peers = 0;
  EXPECT_THROW(FMI::Utils::explain_rows(cfg, o), FMI::UsageError);
}

// ---- mismatches across peers: PeerError on the receiver, no hang ----------------------

struct MismatchCase {
  const char* name;
  // Body of every peer; `big` is true on the one peer that disagrees (peer 1).
  std::function<void(FMI::Communicator&, bool big)> body;
};

std::vector<MismatchCase> mismatch_cases() {
  return {
      {"send/recv",
       [](auto& c, bool big) {
         Data<Ints> v(big ? 5 : 3);
         if (c.peer_id() == 1) c.send(v, 0);
         if (c.peer_id() == 0) c.recv(v, 1);
       }},
      {"bcast",
       [](auto& c, bool big) {
         Data<Ints> v(big ? 5 : 3);
         c.bcast(v, 0);
       }},
      {"gather",
       [](auto& c, bool big) {
         Data<Ints> s(big ? 5 : 3), r(c.peer_id() == 0 ? 12 : 0);
         c.gather(s, r, 0);
       }},
      {"scatter",
       [](auto& c, bool big) {
         Data<Ints> s(c.peer_id() == 0 ? 12 : 0), r(big ? 5 : 3);
         c.scatter(s, r, 0);
       }},
      {"reduce",
       [](auto& c, bool big) {
         Data<Ints> s(big ? 5 : 3), r(c.peer_id() == 0 ? 3 : (big ? 5 : 3));
         c.reduce(s, r, 0, Function<Ints>::sum());
       }},
      {"allreduce",
       [](auto& c, bool big) {
         Data<Ints> s(big ? 5 : 3), r(big ? 5 : 3);
         c.allreduce(s, r, Function<Ints>::sum());
       }},
      {"allgather",
       [](auto& c, bool big) {
         Data<Ints> s(big ? 5 : 3), r(big ? 20 : 12);
         c.allgather(s, r);
       }},
      {"alltoall",
       [](auto& c, bool big) {
         Data<Ints> s(big ? 20 : 12), r(big ? 20 : 12);
         c.alltoall(s, r);
       }},
      {"scan",
       [](auto& c, bool big) {
         Data<Ints> s(big ? 5 : 3), r(big ? 5 : 3);
         c.scan(s, r, Function<Ints>::sum());
       }},
  };
}

class Mismatch : public ::testing::TestWithParam<Kind> {};

TEST_P(Mismatch, SizesAcrossPeersGivePeerErrorAndNoHang) {
  for (const auto& tc : mismatch_cases()) {
    SCOPED_TRACE(tc.name);
    fmitest::RunOptions opt;
    opt.max_timeout = 1500ms;
    opt.comm_name = std::string("mismatch-") + tc.name;
    const auto t0 = Clock::now();
    auto r = fmitest::run_peers_raw(
        4, GetParam(), [&](FMI::Communicator& c) { tc.body(c, c.peer_id() == 1); }, opt);
    const double dt = seconds_since(t0);
    int peer_errors = 0;
    std::string first;
    for (peer_num i = 0; i < 4; ++i) {
      if (!r.errors[i]) continue;
      // Every failure is an FMI error: PeerError where the mismatch is seen, a
      // timeout (or PeerError) on peers waiting for the one that failed.
      try {
        std::rethrow_exception(r.errors[i]);
      } catch (const FMI::PeerError& e) {
        ++peer_errors;
        if (first.empty()) first = e.what();
        EXPECT_NE(first.find("peer"), std::string::npos) << first;
        EXPECT_NE(first.find("bytes"), std::string::npos) << first;
      } catch (const FMI::TimeoutError&) {
      } catch (...) {
        ADD_FAILURE() << "peer " << i << " threw " << describe(r.errors[i]);
      }
    }
    EXPECT_GE(peer_errors, 1) << "no peer saw the size mismatch";
    std::printf("[ mismatch ] %-9s %-5s %d PeerError(s), all peers done in %.2f s: %s\n", tc.name,
                fmitest::kind_name(GetParam()), peer_errors, dt, first.c_str());
  }
}

INSTANTIATE_TEST_SUITE_P(Kinds, Mismatch, ::testing::Values(Kind::p2p, Kind::store),
                         [](const auto& i) { return std::string(fmitest::kind_name(i.param)); });

// ---- configuration ---------------------------------------------------------------

nlohmann::json good_config() {
  return nlohmann::json::parse(R"({
    "backends": {
      "S3": {"enabled": true, "bucket_name": "b", "s3_region": "eu-central-1",
             "timeout": 50, "max_timeout": 1000},
      "Redis": {"enabled": true, "host": "127.0.0.1", "port": 6379, "timeout": 1,
                "max_timeout": 1000},
      "Direct": {"enabled": false}
    },
    "model": {
      "FaaS": {"gib_second_price": 0.0000166667},
      "S3": {"bandwidth": 50, "overhead": 40, "transfer_price": 0, "download_price": 0,
             "upload_price": 0},
      "Redis": {"bandwidth_single": 100, "bandwidth_multiple": 400, "overhead": 5,
                "transfer_price": 0, "instance_price": 0, "requests_per_hour": 1000,
                "include_infrastructure_costs": true}
    }
  })");
}

// Enables the Direct section of good_config() with valid values (and its model), so
// that a case can then spoil one field; returns the section.
nlohmann::json& enable_direct(nlohmann::json& j) {
  j["backends"]["Direct"] = {
      {"enabled", true}, {"host", "127.0.0.1"}, {"port", 10000}, {"max_timeout", 1000}};
  j["model"]["Direct"] = {{"bandwidth", 250},          {"overhead", 0.3},
                          {"transfer_price", 0},       {"vm_price", 0.0134},
                          {"requests_per_hour", 1000}, {"include_infrastructure_costs", true}};
  return j["backends"]["Direct"];
}

struct ConfigCase {
  const char* name;
  std::function<void(nlohmann::json&)> edit;  // applied to good_config()
  std::vector<std::string> parts;
};

TEST(BadConfig, Table) {
  ASSERT_NO_THROW(FMI::Config::parse(good_config().dump(), "good.json"));
  const std::vector<ConfigCase> cases = {
      {"backends missing", [](auto& j) { j.erase("backends"); }, {"field backends is missing"}},
      {"backends not an object",
       [](auto& j) { j["backends"] = 3; },
       {"backends must be an object"}},
      {"S3 section not an object",
       [](auto& j) { j["backends"]["S3"] = "on"; },
       {"backends.S3 must be an object"}},
      {"enabled missing",
       [](auto& j) { j["backends"]["Redis"].erase("enabled"); },
       {"backends.Redis.enabled is missing"}},
      {"enabled not a boolean",
       [](auto& j) { j["backends"]["Redis"]["enabled"] = "yes"; },
       {"backends.Redis.enabled must be true or false"}},
      {"bucket missing",
       [](auto& j) { j["backends"]["S3"].erase("bucket_name"); },
       {"backends.S3.bucket_name is missing"}},
      {"bucket ill-typed",
       [](auto& j) { j["backends"]["S3"]["bucket_name"] = 5; },
       {"backends.S3.bucket_name must be a string"}},
      {"port not a number",
       [](auto& j) { j["backends"]["Redis"]["port"] = "abc"; },
       {"backends.Redis.port must be a number", "\"abc\""}},
      {"port out of range",
       [](auto& j) { j["backends"]["Redis"]["port"] = 70000; },
       {"backends.Redis.port must be an integer in [1, 65535]"}},
      {"port zero",
       [](auto& j) { j["backends"]["Redis"]["port"] = 0; },
       {"backends.Redis.port must be an integer"}},
      {"Direct port zero",
       [](auto& j) { enable_direct(j)["port"] = 0; },
       {"backends.Direct.port must be an integer in [1, 65535]"}},
      {"Direct port 1e300 (range checked before the cast)",
       [](auto& j) { enable_direct(j)["port"] = "1e300"; },
       {"backends.Direct.port must be an integer in [1, 65535]"}},
      {"Direct max_timeout zero",
       [](auto& j) { enable_direct(j)["max_timeout"] = 0; },
       {"backends.Direct.max_timeout must be positive"}},
      {"port fractional",
       [](auto& j) { j["backends"]["Redis"]["port"] = 6379.5; },
       {"backends.Redis.port must be an integer"}},
      {"negative timeout",
       [](auto& j) { j["backends"]["S3"]["max_timeout"] = -5; },
       {"backends.S3.max_timeout must be an integer"}},
      {"model missing", [](auto& j) { j.erase("model"); }, {"field model is missing"}},
      {"model of an enabled channel missing",
       [](auto& j) { j["model"].erase("Redis"); },
       {"model.Redis is missing"}},
      {"model parameter missing",
       [](auto& j) { j["model"]["S3"].erase("bandwidth"); },
       {"model.S3.bandwidth is missing"}},
      {"model parameter ill-typed",
       [](auto& j) { j["model"]["S3"]["overhead"] = "fast"; },
       {"model.S3.overhead must be a number", "\"fast\""}},
      {"FaaS price missing", [](auto& j) { j["model"].erase("FaaS"); }, {"model.FaaS is missing"}},
      {"Redis bandwidth zero",
       [](auto& j) { j["model"]["Redis"]["bandwidth_single"] = 0; },
       {"model.Redis.bandwidth_single must be positive"}},
      {"S3 bandwidth negative",
       [](auto& j) { j["model"]["S3"]["bandwidth"] = "-50"; },
       {"model.S3.bandwidth must be positive"}},
      {"Direct enabled without host",
       [](auto& j) {
         j["backends"]["Direct"] = {{"enabled", true}};
       },
       {"backends.Direct.host is missing"}},
  };
  for (const auto& tc : cases) {
    SCOPED_TRACE(tc.name);
    auto j = good_config();
    tc.edit(j);
    auto parts = tc.parts;
    parts.push_back("config bad.json");  // names the source
    std::string msg;
    EXPECT_TRUE(
        throws<FMI::ConfigError>([&] { FMI::Config::parse(j.dump(), "bad.json"); }, {}, &msg));
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << msg << " lacks " << p;
  }
  EXPECT_TRUE(throws<FMI::ConfigError>([] { FMI::Config::parse("{\"backends\": ", "t.json"); },
                                       {"config t.json", "invalid JSON"}));
  EXPECT_TRUE(throws<FMI::ConfigError>([] { FMI::Config::parse("[1,2]", "t.json"); },
                                       {"config t.json", "top level must be an object"}));
  EXPECT_TRUE(throws<FMI::ConfigError>([] { FMI::Config::parse("", "t.json"); },
                                       {"config t.json", "invalid JSON"}));
  EXPECT_TRUE(throws<FMI::ConfigError>(
      [] { FMI::Communicator c(0, 1, std::string("/nonexistent/fmi.json"), "x"); },
      {"config /nonexistent/fmi.json", "cannot open file"}));
  EXPECT_TRUE(throws<FMI::ConfigError>([] { FMI::Config::load("/proc/self"); }, {"/proc/self"}));
}

// Semantic checks the channels make when they are created from a parsed config.
TEST(BadConfig, ChannelParameters){
#ifdef FMI_WITH_REDIS
    {FMI::Config c;
c.section<FMI::Comm::RedisConfig>().enabled = true;
c.section<FMI::Comm::RedisConfig>().host = "";
EXPECT_TRUE(throws<FMI::ConfigError>([&] { FMI::Communicator x(0, 1, c, "x"); },
                                     {"backends.Redis.host is empty"}));
// (A non-positive model.Redis.bandwidth_single is refused when the configuration
// is parsed: BadConfig.Table.)
}
#endif
#ifdef FMI_WITH_S3
{
  set_test_aws_env();
  FMI::Config c;
  c.section<FMI::Comm::S3Config>().enabled = true;
  c.section<FMI::Comm::S3Config>().bucket_name = "b";
  c.section<FMI::Comm::S3Config>().s3_region = "us-east-1";
  c.section<FMI::Comm::S3Config>().endpoint = "ftp://127.0.0.1:1";
  EXPECT_TRUE(throws<FMI::ConfigError>([&] { FMI::Communicator x(0, 1, c, "x"); },
                                       {"backends.S3.endpoint", "ftp://127.0.0.1:1"}));
  c.section<FMI::Comm::S3Config>().endpoint = "http://127.0.0.1:1";
  c.section<FMI::Comm::S3Config>().bucket_name = "";
  EXPECT_TRUE(throws<FMI::ConfigError>([&] { FMI::Communicator x(0, 1, c, "x"); },
                                       {"backends.S3.bucket_name is empty"}));
  c.section<FMI::Comm::S3Config>().bucket_name = "b";
  ::unsetenv("AWS_ACCESS_KEY_ID");
  EXPECT_TRUE(
      throws<FMI::ConfigError>([&] { FMI::Communicator x(0, 1, c, "x"); }, {"AWS_ACCESS_KEY_ID"}));
  set_test_aws_env();
}
#endif
}  // namespace fmirel

// ---- unreachable servers, missing buckets, wrong passwords ---------------------------

#ifdef FMI_WITH_S3
FMI::Config s3_config(const std::string& endpoint, const std::string& bucket,
                      std::chrono::milliseconds max_timeout = 2s) {
  FMI::Config c;
  c.section<FMI::Comm::S3Config>().enabled = true;
  c.section<FMI::Comm::S3Config>().bucket_name = bucket;
  c.section<FMI::Comm::S3Config>().s3_region = "us-east-1";
  c.section<FMI::Comm::S3Config>().endpoint = endpoint;
  c.section<FMI::Comm::S3Config>().timeout = 5ms;
  c.section<FMI::Comm::S3Config>().max_timeout = max_timeout;
  return c;
}

TEST(Unreachable, S3EndpointRefusesConnections) {
  set_test_aws_env();
  const auto t0 = Clock::now();
  EXPECT_TRUE(throws<FMI::ChannelError>(
      [&] { FMI::Communicator c(0, 2, s3_config("http://127.0.0.1:1", "b"), "x"); },
      {"127.0.0.1:1"}));
  std::printf("[ fault ] S3 endpoint refused: ChannelError after %.3f s\n", seconds_since(t0));
}

TEST(Unreachable, S3BucketDoesNotExist) {
  set_test_aws_env();
  fmitest::MotoServer moto;
  EXPECT_TRUE(throws<FMI::ChannelError>(
      [&] { FMI::Communicator c(0, 2, s3_config(moto.endpoint(), "no-such-bucket-fmi"), "x"); },
      {"bucket no-such-bucket-fmi does not exist", moto.endpoint()}));
}
#endif

#ifdef FMI_WITH_REDIS
FMI::Config redis_config(int port, std::chrono::milliseconds max_timeout = 2s) {
  FMI::Config c;
  c.section<FMI::Comm::RedisConfig>().enabled = true;
  c.section<FMI::Comm::RedisConfig>().host = "127.0.0.1";
  c.section<FMI::Comm::RedisConfig>().port = static_cast<std::uint16_t>(port);
  c.section<FMI::Comm::RedisConfig>().max_timeout = max_timeout;
  return c;
}

TEST(Unreachable, RedisRefusesConnections) {
  const auto t0 = Clock::now();
  EXPECT_TRUE(throws<FMI::ChannelError>([&] { FMI::Communicator c(0, 2, redis_config(1), "x"); },
                                        {"Redis 127.0.0.1:1", "connect"}));
  std::printf("[ fault ] Redis port refused: ChannelError after %.3f s\n", seconds_since(t0));
}

TEST(Unreachable, RedisHostNameDoesNotResolve) {
  FMI::Config c = redis_config(6379);
  c.section<FMI::Comm::RedisConfig>().host = "no-such-host.invalid";
  EXPECT_TRUE(throws<FMI::ChannelError>([&] { FMI::Communicator x(0, 2, c, "x"); },
                                        {"no-such-host.invalid:6379"}));
}

TEST(Unreachable, RedisWrongPassword) {
  RedisProcess redis;
  // No password on the server: AUTH with one is refused by Redis ("no password is set").
  FMI::Config c = redis_config(redis.port());
  c.section<FMI::Comm::RedisConfig>().password = "wrong";
  std::string msg;
  EXPECT_TRUE(throws<FMI::ChannelError>([&] { FMI::Communicator x(0, 2, c, "x"); },
                                        {"127.0.0.1:" + std::to_string(redis.port()), "AUTH"}));
}
#endif

}  // namespace
}  // namespace fmirel
