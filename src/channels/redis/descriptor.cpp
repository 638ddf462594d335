// The Redis channel's descriptor: its config sections, factory and model.
#include "channels/redis/config.h"
#include "channels/redis/model.h"
#include "channels/redis/redis_channel.h"
#include "channels/registry.h"

namespace FMI::Comm {
namespace {

const char* const kBackend = "backends.Redis";

// The value checks of an enabled section; the parser runs them, and so does the
// factory for a Config built in code.
void check(const RedisConfig& c, const std::string& source) {
  const std::string f = std::string(kBackend) + ".";
  if (c.host.empty()) config::fail(source, f + "host", "is empty");
  if (c.max_timeout <= std::chrono::milliseconds(0))
    config::fail(source, f + "max_timeout",
                 "must be positive, is " + std::to_string(c.max_timeout.count()) + " ms");
  if (c.db < 0) config::fail(source, f + "db", "must not be negative, is " + std::to_string(c.db));
}

void parse_backend(const config::Reader& r, ChannelConfig& out) {
  auto& c = static_cast<RedisConfig&>(out);
  c.host = r.str("host");
  c.port = static_cast<std::uint16_t>(r.integer("port", 1, 65535));
  c.timeout = r.millis("timeout");
  c.max_timeout = r.millis("max_timeout");
  if (r.has("username")) c.username = r.str("username");
  if (r.has("password")) c.password = r.str("password");
  if (r.has("db")) c.db = static_cast<int>(r.integer("db", 0, 1 << 20));
  check(c, r.source());
}

void parse_model(const config::Reader& r, ChannelConfig& out) {
  auto& p = static_cast<RedisConfig&>(out).model;
  p.bandwidth_single = r.positive("bandwidth_single");
  p.bandwidth_multiple = r.positive("bandwidth_multiple");
  p.overhead = r.num("overhead");
  p.transfer_price = r.num("transfer_price");
  p.instance_price = r.num("instance_price");
  p.requests_per_hour = r.positive("requests_per_hour");
  p.include_infrastructure_costs = r.boolean("include_infrastructure_costs");
}

std::shared_ptr<Channel> make(const Config& config) {
  const auto& c = config.section<RedisConfig>();
  check(c, config.source);
  return std::make_shared<redis::RedisChannel>(c);
}

std::shared_ptr<const ChannelModel> model(const Config& config) {
  return std::make_shared<RedisModel>(config.section<RedisConfig>().model);
}

}  // namespace

constinit const ChannelDescriptor kRedisDescriptor = {
    {RedisConfig::kName, [] { return std::unique_ptr<ChannelConfig>(new RedisConfig()); },
     &parse_backend, &parse_model},
    ChannelKind::object_store,
    &make,
    &model,
};

}  // namespace FMI::Comm
