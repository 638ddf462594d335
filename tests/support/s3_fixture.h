// Shared set-up of the S3 tests (tests/s3, tests/conformance): one moto server per test process
// (started by the suite, stopped at its end), test credentials in the environment, a fresh bucket
// per test, and helpers to look into the bucket with the channel's own client.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>

#include "channel_factory.h"
#include "channels/s3/s3_channel.h"
#include "channels/s3/s3_client.h"
#include "fmi/config.h"
#include "moto_server.h"

namespace fmitest {

using namespace std::chrono_literals;

inline FMI::Utils::Deadline in(std::chrono::milliseconds d) { return FMI::Utils::Clock::now() + d; }

/// An S3 channel of a configuration text (s3_config), not initialised.
inline std::shared_ptr<FMI::Comm::S3Channel> s3_channel(const std::string& json) {
  auto ch = std::dynamic_pointer_cast<FMI::Comm::S3Channel>(make_channel("S3", json));
  if (!ch) throw std::runtime_error("the S3 factory made another kind of channel");
  return ch;
}

class S3Test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ::setenv("AWS_ACCESS_KEY_ID", "testing", 1);
    ::setenv("AWS_SECRET_ACCESS_KEY", "testing", 1);
    ::unsetenv("AWS_SESSION_TOKEN");
    server_ = new MotoServer();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  void SetUp() override {
    static std::atomic<int> counter{0};
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    bucket_ = "fmi-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
    comm_ = std::string(info->name());
    client()->create_bucket(in(10s));
  }

  /// Configuration text of the S3 channel for this test's bucket on the moto server
  /// (or `bucket` / `endpoint` when given).
  std::string config_json(std::chrono::milliseconds first_poll = 5ms,
                          std::chrono::milliseconds max_timeout = 20s, std::string bucket = {},
                          std::string endpoint = {}) const {
    return s3_config(bucket.empty() ? bucket_ : bucket,
                     endpoint.empty() ? server_->endpoint() : endpoint, max_timeout, first_poll);
  }
  /// The same, parsed (for a Communicator that creates its channels).
  FMI::Config config(std::chrono::milliseconds first_poll = 5ms) const {
    return parse_config(config_json(first_poll));
  }

  std::unique_ptr<FMI::Comm::s3::Client> client(std::string bucket = {}) const {
    return std::make_unique<FMI::Comm::s3::Client>(
        FMI::Comm::s3::ClientOptions{bucket.empty() ? bucket_ : bucket, "us-east-1",
                                     server_->endpoint(), FMI::Comm::s3::Credentials::from_env()});
  }

  /// Every key in this test's bucket (listing by the empty prefix is fine in a test).
  std::vector<std::string> bucket_contents() const { return client()->list_objects("", in(10s)); }

  static MotoServer* server_;
  std::string bucket_;
  std::string comm_;
};

inline MotoServer* S3Test::server_ = nullptr;

}  // namespace fmitest
