// Configuration: the shipped file loads; missing files, bad JSON, missing and
// ill-typed fields raise ConfigError naming the file and the field path; numbers and
// booleans written as strings are accepted, as in the original FMI.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "channels/direct/config.h"
#include "channels/redis/config.h"
#include "channels/s3/config.h"
#include "fmi/fmi.h"

namespace {

using nlohmann::json;

const std::string kSource = "test-config.json";

json full_config() {
  return json::parse(R"({
    "backends": {
      "S3": {"enabled": true, "bucket_name": "b", "s3_region": "eu-central-1",
             "timeout": 50, "max_timeout": 60000},
      "Redis": {"enabled": true, "host": "127.0.0.1", "port": 6379, "timeout": 1,
                "max_timeout": 30000},
      "Direct": {"enabled": true, "host": "127.0.0.1", "port": 10000, "max_timeout": 30000}
    },
    "model": {
      "FaaS": {"gib_second_price": 0.0000166667},
      "S3": {"bandwidth": 50.0, "overhead": 40.4, "transfer_price": 0.0,
             "download_price": 0.00000043, "upload_price": 0.0000054},
      "Redis": {"bandwidth_single": 100.0, "bandwidth_multiple": 400.0, "overhead": 5.2,
                "transfer_price": 0.0, "instance_price": 0.0038, "requests_per_hour": 1000,
                "include_infrastructure_costs": true},
      "Direct": {"bandwidth": 250.0, "overhead": 0.3, "transfer_price": 0.0,
                 "vm_price": 0.0134, "requests_per_hour": 1000,
                 "include_infrastructure_costs": true}
    }
  })");
}

/// Parsing must throw ConfigError whose message contains every word.
void expect_config_error(const std::string& text, std::initializer_list<std::string> words,
                         const std::string& source = kSource) {
  try {
    FMI::Config::parse(text, source);
    ADD_FAILURE() << "no exception for config:\n" << text;
  } catch (const FMI::ConfigError& e) {
    const std::string msg = e.what();
    for (const auto& w : words)
      EXPECT_NE(msg.find(w), std::string::npos)
          << "message \"" << msg << "\" lacks \"" << w << "\"";
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected FMI::ConfigError, got another exception: " << e.what();
  }
}

void expect_error_with(const std::function<void(json&)>& edit,
                       std::initializer_list<std::string> words) {
  json j = full_config();
  edit(j);
  expect_config_error(j.dump(2), words);
}

TEST(Config, ShippedFileLoads) {
  const std::string path = std::string(FMI_SOURCE_DIR) + "/config/fmi.json";
  FMI::Config c = FMI::Config::load(path);
  EXPECT_EQ(c.source, path);
  EXPECT_FALSE(c.section<FMI::Comm::S3Config>().enabled);
  EXPECT_FALSE(c.section<FMI::Comm::RedisConfig>().enabled);
  EXPECT_TRUE(c.section<FMI::Comm::DirectConfig>().enabled);
  EXPECT_EQ(c.section<FMI::Comm::DirectConfig>().host, "127.0.0.1");
  EXPECT_EQ(c.section<FMI::Comm::DirectConfig>().port, 10000);
  EXPECT_EQ(c.section<FMI::Comm::DirectConfig>().max_timeout, std::chrono::milliseconds(30000));
  EXPECT_DOUBLE_EQ(c.model.faas.gib_second_price, 0.0000166667);
  EXPECT_DOUBLE_EQ(c.section<FMI::Comm::RedisConfig>().model.instance_price, 0.0038);
  EXPECT_DOUBLE_EQ(c.section<FMI::Comm::DirectConfig>().model.vm_price, 0.0134);
  EXPECT_DOUBLE_EQ(c.section<FMI::Comm::S3Config>().model.overhead, 40.4);
  EXPECT_TRUE(c.section<FMI::Comm::RedisConfig>().model.include_infrastructure_costs);
}

TEST(Config, FullConfigParsesEveryField) {
  FMI::Config c = FMI::Config::parse(full_config().dump(), kSource);
  EXPECT_EQ(c.source, kSource);
  EXPECT_TRUE(c.section<FMI::Comm::S3Config>().enabled);
  EXPECT_EQ(c.section<FMI::Comm::S3Config>().bucket_name, "b");
  EXPECT_EQ(c.section<FMI::Comm::S3Config>().s3_region, "eu-central-1");
  EXPECT_EQ(c.section<FMI::Comm::S3Config>().timeout, std::chrono::milliseconds(50));
  EXPECT_EQ(c.section<FMI::Comm::S3Config>().max_timeout, std::chrono::milliseconds(60000));
  EXPECT_TRUE(c.section<FMI::Comm::S3Config>().endpoint.empty());
  EXPECT_TRUE(c.section<FMI::Comm::RedisConfig>().enabled);
  EXPECT_EQ(c.section<FMI::Comm::RedisConfig>().host, "127.0.0.1");
  EXPECT_EQ(c.section<FMI::Comm::RedisConfig>().port, 6379);
  EXPECT_EQ(c.section<FMI::Comm::RedisConfig>().timeout, std::chrono::milliseconds(1));
  EXPECT_EQ(c.section<FMI::Comm::RedisConfig>().max_timeout, std::chrono::milliseconds(30000));
  EXPECT_TRUE(c.section<FMI::Comm::RedisConfig>().password.empty());
  EXPECT_EQ(c.section<FMI::Comm::DirectConfig>().port, 10000);
  EXPECT_DOUBLE_EQ(c.section<FMI::Comm::S3Config>().model.bandwidth, 50.0);
  EXPECT_DOUBLE_EQ(c.section<FMI::Comm::S3Config>().model.download_price, 0.00000043);
  EXPECT_DOUBLE_EQ(c.section<FMI::Comm::S3Config>().model.upload_price, 0.0000054);
  EXPECT_DOUBLE_EQ(c.section<FMI::Comm::RedisConfig>().model.bandwidth_single, 100.0);
  EXPECT_DOUBLE_EQ(c.section<FMI::Comm::RedisConfig>().model.bandwidth_multiple, 400.0);
  EXPECT_DOUBLE_EQ(c.section<FMI::Comm::RedisConfig>().model.overhead, 5.2);
  EXPECT_DOUBLE_EQ(c.section<FMI::Comm::RedisConfig>().model.requests_per_hour, 1000);
  EXPECT_DOUBLE_EQ(c.section<FMI::Comm::DirectConfig>().model.bandwidth, 250.0);
  EXPECT_DOUBLE_EQ(c.section<FMI::Comm::DirectConfig>().model.overhead, 0.3);
}

TEST(Config, DefaultConstructedHasEveryBackendDisabled) {
  FMI::Config c;
  EXPECT_FALSE(c.section<FMI::Comm::S3Config>().enabled);
  EXPECT_FALSE(c.section<FMI::Comm::RedisConfig>().enabled);
  EXPECT_FALSE(c.section<FMI::Comm::DirectConfig>().enabled);
}

TEST(Config, MissingFileNamesThePath) {
  const std::string path = "/nonexistent/dir/fmi-missing.json";
  try {
    FMI::Config::load(path);
    ADD_FAILURE() << "no exception";
  } catch (const FMI::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(Config, BadJsonNamesTheFile) {
  expect_config_error(R"({"backends": {"S3": )", {kSource});
  expect_config_error("not json at all", {"other.json"}, "other.json");
  // Through load(): the message names the file path.
  const auto path = std::filesystem::temp_directory_path() /
                    ("fmi-bad-config-" + std::to_string(::getpid()) + ".json");
  {
    std::ofstream out(path);
    out << "{ \"backends\": [1, 2,, ] }";
  }
  try {
    FMI::Config::load(path.string());
    ADD_FAILURE() << "no exception";
  } catch (const FMI::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
  }
  std::filesystem::remove(path);
}

TEST(Config, MissingFieldOfEnabledBackend) {
  expect_error_with([](json& j) { j["backends"]["Redis"].erase("port"); },
                    {"backends.Redis.port", kSource});
  expect_error_with([](json& j) { j["backends"]["S3"].erase("bucket_name"); },
                    {"backends.S3.bucket_name", kSource});
  expect_error_with([](json& j) { j["backends"]["S3"].erase("max_timeout"); },
                    {"backends.S3.max_timeout", kSource});
  expect_error_with([](json& j) { j["backends"]["Direct"].erase("host"); },
                    {"backends.Direct.host", kSource});
  expect_error_with([](json& j) { j["backends"]["Redis"].erase("enabled"); },
                    {"backends.Redis.enabled", kSource});
  expect_error_with([](json& j) { j.erase("backends"); }, {"backends", kSource});
}

TEST(Config, IllTypedField) {
  expect_error_with([](json& j) { j["backends"]["Redis"]["port"] = "abc"; },
                    {"backends.Redis.port", kSource});
  expect_error_with([](json& j) { j["backends"]["Redis"]["enabled"] = 3; },
                    {"backends.Redis.enabled", kSource});
  expect_error_with([](json& j) { j["backends"]["S3"]["timeout"] = json::array({1}); },
                    {"backends.S3.timeout", kSource});
  expect_error_with([](json& j) { j["backends"]["Direct"]["host"] = 42; },
                    {"backends.Direct.host", kSource});
  expect_error_with([](json& j) { j["model"]["Redis"]["overhead"] = "fast"; },
                    {"model.Redis.overhead", kSource});
  expect_error_with([](json& j) { j["model"]["Direct"]["include_infrastructure_costs"] = "maybe"; },
                    {"model.Direct.include_infrastructure_costs", kSource});
  expect_error_with([](json& j) { j["backends"]["Redis"] = "on"; }, {"backends.Redis", kSource});
}

TEST(Config, PortOutOfRange) {
  expect_error_with([](json& j) { j["backends"]["Redis"]["port"] = 70000; },
                    {"backends.Redis.port", kSource});
  expect_error_with([](json& j) { j["backends"]["Redis"]["port"] = -1; },
                    {"backends.Redis.port", kSource});
}

TEST(Config, NumbersAndBooleansAsStrings) {
  json j = full_config();
  j["backends"]["Redis"]["port"] = "6380";
  j["backends"]["Redis"]["enabled"] = "true";
  j["backends"]["S3"]["enabled"] = "false";
  j["backends"]["Redis"]["max_timeout"] = "1234";
  j["model"]["Redis"]["instance_price"] = "0.0038";
  j["model"]["Redis"]["include_infrastructure_costs"] = "false";
  j["model"]["FaaS"]["gib_second_price"] = "0.0000166667";
  FMI::Config c = FMI::Config::parse(j.dump(), kSource);
  EXPECT_TRUE(c.section<FMI::Comm::RedisConfig>().enabled);
  EXPECT_FALSE(c.section<FMI::Comm::S3Config>().enabled);
  EXPECT_EQ(c.section<FMI::Comm::RedisConfig>().port, 6380);
  EXPECT_EQ(c.section<FMI::Comm::RedisConfig>().max_timeout, std::chrono::milliseconds(1234));
  EXPECT_DOUBLE_EQ(c.section<FMI::Comm::RedisConfig>().model.instance_price, 0.0038);
  EXPECT_FALSE(c.section<FMI::Comm::RedisConfig>().model.include_infrastructure_costs);
  EXPECT_DOUBLE_EQ(c.model.faas.gib_second_price, 0.0000166667);
}

TEST(Config, MissingModelParameterOfEnabledChannel) {
  expect_error_with([](json& j) { j["model"]["Redis"].erase("overhead"); },
                    {"model.Redis.overhead", kSource});
  expect_error_with([](json& j) { j["model"]["S3"].erase("upload_price"); },
                    {"model.S3.upload_price", kSource});
  expect_error_with([](json& j) { j["model"]["Direct"].erase("vm_price"); },
                    {"model.Direct.vm_price", kSource});
  expect_error_with([](json& j) { j["model"].erase("Redis"); }, {"model.Redis", kSource});
}

TEST(Config, DisabledBackendMayOmitItsFields) {
  // The brief of the config: fields are required for enabled backends.
  const std::string text = R"({"backends": {"S3": {"enabled": false},
                                            "Redis": {"enabled": false},
                                            "Direct": {"enabled": false}}})";
  FMI::Config c = FMI::Config::parse(text, kSource);
  EXPECT_FALSE(c.section<FMI::Comm::S3Config>().enabled);
  EXPECT_FALSE(c.section<FMI::Comm::RedisConfig>().enabled);
  EXPECT_FALSE(c.section<FMI::Comm::DirectConfig>().enabled);
}

TEST(Config, NewOptionalFieldsAccepted) {
  json j = full_config();
  j["backends"]["S3"]["endpoint"] = "http://127.0.0.1:9000";
  j["backends"]["Redis"]["password"] = "s3cret";
  j["backends"]["Redis"]["username"] = "fmi";
  j["backends"]["Redis"]["db"] = 2;
  j["backends"]["Direct"]["unknown_future_field"] = "ignored";
  FMI::Config c = FMI::Config::parse(j.dump(), kSource);
  EXPECT_EQ(c.section<FMI::Comm::S3Config>().endpoint, "http://127.0.0.1:9000");
  EXPECT_EQ(c.section<FMI::Comm::RedisConfig>().password, "s3cret");
  EXPECT_EQ(c.section<FMI::Comm::RedisConfig>().username, "fmi");
  EXPECT_EQ(c.section<FMI::Comm::RedisConfig>().db, 2);
}

// Issue 16: the Direct model's optional relay fields (defaults when absent).
TEST(Config, DirectRelayFieldsAreOptionalAndChecked) {
  FMI::Config c = FMI::Config::parse(full_config().dump(), kSource);
  EXPECT_EQ(c.section<FMI::Comm::DirectConfig>().model.relayed_fraction, 0.0);
  EXPECT_EQ(c.section<FMI::Comm::DirectConfig>().model.vm_egress_price, 0.09);
  json j = full_config();
  j["model"]["Direct"]["relayed_fraction"] = "0.25";
  j["model"]["Direct"]["vm_egress_price"] = 0.05;
  c = FMI::Config::parse(j.dump(), kSource);
  EXPECT_EQ(c.section<FMI::Comm::DirectConfig>().model.relayed_fraction, 0.25);
  EXPECT_EQ(c.section<FMI::Comm::DirectConfig>().model.vm_egress_price, 0.05);
  expect_error_with([](json& j) { j["model"]["Direct"]["relayed_fraction"] = 1.5; },
                    {"model.Direct.relayed_fraction", "between 0 and 1", kSource});
}

TEST(Config, CommunicatorWithBadConfigPath) {
  const std::string path = "/nonexistent/fmi-config-for-communicator.json";
  try {
    FMI::Communicator c(0, 1, path, "bad");
    ADD_FAILURE() << "no exception";
  } catch (const FMI::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  } catch (...) {
    ADD_FAILURE() << "expected FMI::ConfigError";
  }
}

TEST(Config, CommunicatorFromFileWithEveryBackendDisabled) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("fmi-none-config-" + std::to_string(::getpid()) + ".json");
  {
    json j = full_config();
    for (const char* b : {"S3", "Redis", "Direct"}) j["backends"][b]["enabled"] = false;
    std::ofstream(path) << j.dump(2);
  }
  {
    FMI::Communicator c(0, 1, path.string(), "fromfile");
    EXPECT_TRUE(c.channels().empty());
    EXPECT_EQ(c.config().source, path.string());
    EXPECT_EQ(c.peer_id(), 0u);
    EXPECT_EQ(c.num_peers(), 1u);
    EXPECT_EQ(c.comm_name(), "fromfile");
  }
  std::filesystem::remove(path);
}

// ---- sections of the registered channels ------------------------------------------

TEST(Config, SectionsByNameAndByType) {
  FMI::Config c = FMI::Config::parse(full_config().dump(), kSource);
  EXPECT_TRUE(c.enabled("Redis"));
  EXPECT_FALSE(c.enabled("Carrier-Pigeon"));
  EXPECT_TRUE(c.section("Redis").enabled);
  EXPECT_EQ(&c.section("Redis"),
            static_cast<const FMI::ChannelConfig*>(&c.section<FMI::Comm::RedisConfig>()));
  EXPECT_THROW(c.section("Carrier-Pigeon"), FMI::UsageError);
  EXPECT_THROW(c.set_enabled("Carrier-Pigeon", true), FMI::UsageError);
  c.set_enabled("Redis", false);
  EXPECT_FALSE(c.section<FMI::Comm::RedisConfig>().enabled);
  // Copies are deep: a copy's section is its own.
  FMI::Config copy = c;
  copy.section<FMI::Comm::RedisConfig>().port = 1;
  EXPECT_EQ(c.section<FMI::Comm::RedisConfig>().port, 6379);
  EXPECT_EQ(copy.section<FMI::Comm::RedisConfig>().port, 1);
  EXPECT_EQ(copy.source, kSource);
}

TEST(Config, ValueChecksOfChannelsAtParseTime) {
  expect_error_with([](json& j) { j["backends"]["Redis"]["host"] = ""; },
                    {"config " + kSource + ": field backends.Redis.host is empty"});
  expect_error_with([](json& j) { j["backends"]["Redis"]["max_timeout"] = 0; },
                    {"field backends.Redis.max_timeout must be positive", kSource});
  expect_error_with([](json& j) { j["backends"]["S3"]["bucket_name"] = ""; },
                    {"field backends.S3.bucket_name is empty", kSource});
  expect_error_with([](json& j) { j["backends"]["S3"]["timeout"] = 0; },
                    {"field backends.S3.timeout", "must be > 0 ms", kSource});
  expect_error_with([](json& j) { j["backends"]["S3"]["endpoint"] = "ftp://x"; },
                    {"field backends.S3.endpoint", "ftp://x", kSource});
  expect_error_with([](json& j) { j["backends"]["Direct"]["host"] = ""; },
                    {"field backends.Direct.host", "is empty", kSource});
  expect_error_with(
      [](json& j) {
        j["backends"]["InProcess"] = {{"enabled", true}, {"max_timeout", 0}};
      },
      {"field backends.InProcess.max_timeout must be > 0 ms", kSource});
}

// The in-process channels from a config file alone: threads of one process that
// use the same communicator name meet in the same medium.
void allreduce_over(const std::string& text, const std::string& comm_name) {
  const FMI::Config cfg = FMI::Config::parse(text, kSource);
  constexpr unsigned n = 4;
  std::vector<int> got(n, -1);
  std::vector<std::string> errors(n);
  std::vector<std::thread> ts;
  for (unsigned id = 0; id < n; ++id)
    ts.emplace_back([&, id] {
      try {
        FMI::Communicator comm(id, n, cfg, comm_name);
        FMI::Comm::Data<int> mine = int(id + 1), sum;
        comm.allreduce(mine, sum, FMI::Utils::Function<int>(std::plus<>(), true, true));
        got[id] = sum.get();
      } catch (const std::exception& e) {
        errors[id] = e.what();
      }
    });
  for (auto& t : ts) t.join();
  for (unsigned id = 0; id < n; ++id) {
    EXPECT_EQ(errors[id], "") << "peer " << id;
    EXPECT_EQ(got[id], 1 + 2 + 3 + 4) << "peer " << id;
  }
}

TEST(Config, InProcessChannelsFromConfig) {
  allreduce_over(R"({"backends": {"InProcess": {"enabled": true}}})", "inproc-from-config");
  // The same name again: the first group's medium was dropped when it left.
  allreduce_over(R"({"backends": {"InProcess": {"enabled": true}}})", "inproc-from-config");
  allreduce_over(R"({"backends": {"InProcessStore": {"enabled": "true", "max_timeout": 5000}}})",
                 "inproc-store-from-config");
  const FMI::Config both = FMI::Config::parse(
      R"({"backends": {"InProcess": {"enabled": true}, "InProcessStore": {"enabled": true}}})",
      kSource);
  FMI::Communicator one(0, 1, both, "inproc-both");
  EXPECT_EQ(one.channels().size(), 2u);
}

}  // namespace
