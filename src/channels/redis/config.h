// The Redis channel's configuration: backends.Redis and model.Redis (parsed by
// descriptor.cpp; docs/configuration.md lists the fields).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "fmi/config.h"

namespace FMI::Comm {

struct RedisConfig final : ChannelConfigOf<RedisConfig> {
  static constexpr const char* kName = "Redis";
  using ms = std::chrono::milliseconds;

  std::string host;
  std::uint16_t port = 6379;
  ms timeout{1};  // first interval of finalize's wait for readers
  ms max_timeout{10000};
  std::string username;  // optional (Redis 6 ACL)
  std::string password;  // optional; AUTH when non-empty
  int db = 0;            // optional

  /// Model parameters: bandwidth in MiB/s, overhead in ms, prices in USD in the
  /// unit the service bills (docs/policy.md, "Prices").
  struct Model {
    double bandwidth_single = 100.0, bandwidth_multiple = 400.0, overhead = 5.2;
    // instance_price: USD per hour of the instance, charged to an operation by
    // its share of time. requests_per_hour: read for the original schema, not
    // used (a node is billed per hour, not per request).
    double transfer_price = 0.0, instance_price = 0.0038, requests_per_hour = 1000;
    bool include_infrastructure_costs = true;
  } model;
};

}  // namespace FMI::Comm
