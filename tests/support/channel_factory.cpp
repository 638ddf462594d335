// The one place where the tests turn a channel name and a JSON text into a
// channel (see channel_factory.h).
#include "channel_factory.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "channels/registry.h"
#include "fmi/errors.h"

#ifndef FMI_SOURCE_DIR
#error "FMI_SOURCE_DIR (the source tree, for config/fmi.json) must be defined"
#endif

namespace fmitest {

using json = nlohmann::json;

namespace {

// The "model" section of the shipped configuration: every enabled channel needs
// its model, and the tests have no reason to invent other numbers.
const json& shipped_model() {
  static const json model = [] {
    std::ifstream in(FMI_SOURCE_DIR "/config/fmi.json");
    if (!in) throw std::runtime_error("cannot read " FMI_SOURCE_DIR "/config/fmi.json");
    return json::parse(in).at("model");
  }();
  return model;
}

}  // namespace

FMI::Config parse_config(const std::string& config_json) {
  return FMI::Config::parse(config_json, "test");
}

std::shared_ptr<FMI::Comm::Channel> make_channel(const std::string& name,
                                                 const std::string& config_json) {
  const FMI::Config config = parse_config(config_json);
  if (const auto* d = FMI::Comm::find_channel(name)) return d->make(config);
  FMI_THROW(FMI::UsageError, "make_channel: no channel '", name, "' in this build");
}

std::string config_with(const std::string& name, const std::string& backend_json) {
  json backend = json::parse(backend_json);
  backend["enabled"] = true;
  json c;
  c["backends"][name] = backend;
  c["model"] = shipped_model();
  return c.dump();
}

std::string direct_config(const std::string& host, std::uint16_t port,
                          std::chrono::milliseconds max_timeout, const std::string& secret,
                          bool encryption) {
  json d = {{"host", host}, {"port", port}, {"max_timeout", max_timeout.count()}};
  if (!secret.empty()) d["secret"] = secret;
  if (!encryption) d["encryption"] = false;
  return config_with("Direct", d.dump());
}

std::string redis_config(const std::string& host, std::uint16_t port,
                         std::chrono::milliseconds max_timeout, const std::string& username,
                         const std::string& password, int db) {
  json r = {{"host", host}, {"port", port}, {"timeout", 1}, {"max_timeout", max_timeout.count()}};
  if (!username.empty()) r["username"] = username;
  if (!password.empty()) r["password"] = password;
  if (db != 0) r["db"] = db;
  return config_with("Redis", r.dump());
}

std::string s3_config(const std::string& bucket, const std::string& endpoint,
                      std::chrono::milliseconds max_timeout, std::chrono::milliseconds first_poll,
                      const std::string& region) {
  json s = {{"bucket_name", bucket},
            {"s3_region", region},
            {"endpoint", endpoint},
            {"timeout", first_poll.count()},
            {"max_timeout", max_timeout.count()}};
  return config_with("S3", s.dump());
}

}  // namespace fmitest
