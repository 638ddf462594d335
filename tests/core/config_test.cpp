// Configuration: the shipped file loads; missing files, bad JSON, missing and
// ill-typed fields raise ConfigError naming the file and the field path; numbers and
// booleans written as strings are accepted, as in the original FMI.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include <unistd.h>

#include <nlohmann/json.hpp>

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
      EXPECT_NE(msg.find(w), std::string::npos) << "message \"" << msg << "\" lacks \"" << w << "\"";
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
  EXPECT_FALSE(c.s3.enabled);
  EXPECT_FALSE(c.redis.enabled);
  EXPECT_TRUE(c.direct.enabled);
  EXPECT_EQ(c.direct.host, "127.0.0.1");
  EXPECT_EQ(c.direct.port, 10000);
  EXPECT_EQ(c.direct.max_timeout, std::chrono::milliseconds(30000));
  EXPECT_DOUBLE_EQ(c.model.faas.gib_second_price, 0.0000166667);
  EXPECT_DOUBLE_EQ(c.model.redis.instance_price, 0.0038);
  EXPECT_DOUBLE_EQ(c.model.direct.vm_price, 0.0134);
  EXPECT_DOUBLE_EQ(c.model.s3.overhead, 40.4);
  EXPECT_TRUE(c.model.redis.include_infrastructure_costs);
}

TEST(Config, FullConfigParsesEveryField) {
  FMI::Config c = FMI::Config::parse(full_config().dump(), kSource);
  EXPECT_EQ(c.source, kSource);
  EXPECT_TRUE(c.s3.enabled);
  EXPECT_EQ(c.s3.bucket_name, "b");
  EXPECT_EQ(c.s3.s3_region, "eu-central-1");
  EXPECT_EQ(c.s3.timeout, std::chrono::milliseconds(50));
  EXPECT_EQ(c.s3.max_timeout, std::chrono::milliseconds(60000));
  EXPECT_TRUE(c.s3.endpoint.empty());
  EXPECT_TRUE(c.redis.enabled);
  EXPECT_EQ(c.redis.host, "127.0.0.1");
  EXPECT_EQ(c.redis.port, 6379);
  EXPECT_EQ(c.redis.timeout, std::chrono::milliseconds(1));
  EXPECT_EQ(c.redis.max_timeout, std::chrono::milliseconds(30000));
  EXPECT_TRUE(c.redis.password.empty());
  EXPECT_EQ(c.direct.port, 10000);
  EXPECT_DOUBLE_EQ(c.model.s3.bandwidth, 50.0);
  EXPECT_DOUBLE_EQ(c.model.s3.download_price, 0.00000043);
  EXPECT_DOUBLE_EQ(c.model.s3.upload_price, 0.0000054);
  EXPECT_DOUBLE_EQ(c.model.redis.bandwidth_single, 100.0);
  EXPECT_DOUBLE_EQ(c.model.redis.bandwidth_multiple, 400.0);
  EXPECT_DOUBLE_EQ(c.model.redis.overhead, 5.2);
  EXPECT_DOUBLE_EQ(c.model.redis.requests_per_hour, 1000);
  EXPECT_DOUBLE_EQ(c.model.direct.bandwidth, 250.0);
  EXPECT_DOUBLE_EQ(c.model.direct.overhead, 0.3);
}

TEST(Config, DefaultConstructedHasEveryBackendDisabled) {
  FMI::Config c;
  EXPECT_FALSE(c.s3.enabled);
  EXPECT_FALSE(c.redis.enabled);
  EXPECT_FALSE(c.direct.enabled);
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
  EXPECT_TRUE(c.redis.enabled);
  EXPECT_FALSE(c.s3.enabled);
  EXPECT_EQ(c.redis.port, 6380);
  EXPECT_EQ(c.redis.max_timeout, std::chrono::milliseconds(1234));
  EXPECT_DOUBLE_EQ(c.model.redis.instance_price, 0.0038);
  EXPECT_FALSE(c.model.redis.include_infrastructure_costs);
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
  EXPECT_FALSE(c.s3.enabled);
  EXPECT_FALSE(c.redis.enabled);
  EXPECT_FALSE(c.direct.enabled);
}

TEST(Config, NewOptionalFieldsAccepted) {
  json j = full_config();
  j["backends"]["S3"]["endpoint"] = "http://127.0.0.1:9000";
  j["backends"]["Redis"]["password"] = "s3cret";
  j["backends"]["Redis"]["username"] = "fmi";
  j["backends"]["Redis"]["db"] = 2;
  j["backends"]["Direct"]["unknown_future_field"] = "ignored";
  FMI::Config c = FMI::Config::parse(j.dump(), kSource);
  EXPECT_EQ(c.s3.endpoint, "http://127.0.0.1:9000");
  EXPECT_EQ(c.redis.password, "s3cret");
  EXPECT_EQ(c.redis.username, "fmi");
  EXPECT_EQ(c.redis.db, 2);
}

// Issue 16: the Direct model's optional relay fields (defaults when absent).
TEST(Config, DirectRelayFieldsAreOptionalAndChecked) {
  FMI::Config c = FMI::Config::parse(full_config().dump(), kSource);
  EXPECT_EQ(c.model.direct.relayed_fraction, 0.0);
  EXPECT_EQ(c.model.direct.vm_egress_price, 0.09);
  json j = full_config();
  j["model"]["Direct"]["relayed_fraction"] = "0.25";
  j["model"]["Direct"]["vm_egress_price"] = 0.05;
  c = FMI::Config::parse(j.dump(), kSource);
  EXPECT_EQ(c.model.direct.relayed_fraction, 0.25);
  EXPECT_EQ(c.model.direct.vm_egress_price, 0.05);
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

}  // namespace
