// Configuration loader: JSON (original FMI schema) -> typed structs, once.
#include "fmi/config.h"

#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "fmi/errors.h"

namespace FMI {
namespace {

using nlohmann::json;

// Walks the JSON tree keeping the dotted path, so every error names the field.
class Reader {
 public:
  Reader(const json& j, std::string path, const std::string& source)
      : j_(j), path_(std::move(path)), source_(source) {}

  bool has(const char* key) const { return j_.is_object() && j_.contains(key); }

  Reader child(const char* key) const {
    const json& v = at(key);
    if (!v.is_object()) fail(key, "must be an object");
    return Reader(v, field(key), source_);
  }

  std::string str(const char* key) const {
    const json& v = at(key);
    if (!v.is_string()) fail(key, "must be a string");
    return v.get<std::string>();
  }

  double num(const char* key) const {
    const json& v = at(key);
    if (v.is_number()) return v.get<double>();
    if (v.is_string()) {
      const std::string s = v.get<std::string>();
      std::size_t pos = 0;
      try {
        double d = std::stod(s, &pos);
        if (pos == s.size()) return d;
      } catch (const std::exception&) {
      }
      fail(key, "must be a number, got \"" + s + "\"");
    }
    fail(key, "must be a number");
  }

  long long integer(const char* key, long long lo, long long hi) const {
    double d = num(key);
    if (d != static_cast<double>(static_cast<long long>(d)) || d < lo || d > hi)
      fail(key, "must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return static_cast<long long>(d);
  }

  double positive(const char* key) const {
    const double d = num(key);
    if (!(d > 0)) fail(key, "must be positive");
    return d;
  }

  std::chrono::milliseconds millis(const char* key) const {
    return std::chrono::milliseconds(integer(key, 0, 365LL * 24 * 3600 * 1000));
  }

  bool boolean(const char* key) const {
    const json& v = at(key);
    if (v.is_boolean()) return v.get<bool>();
    if (v.is_string()) {
      const std::string s = v.get<std::string>();
      if (s == "true") return true;
      if (s == "false") return false;
    }
    fail(key, "must be true or false");
  }

  std::string field(const char* key) const { return path_.empty() ? key : path_ + "." + key; }

  [[noreturn]] void fail(const char* key, const std::string& why) const {
    FMI_THROW(ConfigError, "config ", source_, ": field ", field(key), " ", why);
  }

 private:
  const json& at(const char* key) const {
    if (!j_.is_object() || !j_.contains(key)) fail(key, "is missing");
    return j_.at(key);
  }

  const json& j_;
  std::string path_;
  const std::string& source_;
};

void parse_backends(const Reader& b, Config& c) {
  // A backend section may be absent (disabled); when present and enabled, every
  // field it needs must be there.
  if (b.has("S3")) {
    Reader s = b.child("S3");
    c.s3.enabled = s.boolean("enabled");
    if (c.s3.enabled) {
      c.s3.bucket_name = s.str("bucket_name");
      c.s3.s3_region = s.str("s3_region");
      c.s3.timeout = s.millis("timeout");
      c.s3.max_timeout = s.millis("max_timeout");
      if (s.has("endpoint")) c.s3.endpoint = s.str("endpoint");
    }
  }
  if (b.has("Redis")) {
    Reader r = b.child("Redis");
    c.redis.enabled = r.boolean("enabled");
    if (c.redis.enabled) {
      c.redis.host = r.str("host");
      c.redis.port = static_cast<std::uint16_t>(r.integer("port", 1, 65535));
      c.redis.timeout = r.millis("timeout");
      c.redis.max_timeout = r.millis("max_timeout");
      if (r.has("username")) c.redis.username = r.str("username");
      if (r.has("password")) c.redis.password = r.str("password");
      if (r.has("db")) c.redis.db = static_cast<int>(r.integer("db", 0, 1 << 20));
    }
  }
  if (b.has("Direct")) {
    Reader d = b.child("Direct");
    c.direct.enabled = d.boolean("enabled");
    if (c.direct.enabled) {
      c.direct.host = d.str("host");
      c.direct.port = static_cast<std::uint16_t>(d.integer("port", 0, 65535));
      c.direct.max_timeout = d.millis("max_timeout");
      if (d.has("secret")) c.direct.secret = d.str("secret");
      if (d.has("encryption")) c.direct.encryption = d.boolean("encryption");
    }
  }
}

void parse_model(const Reader& m, Config& c) {
  // The model of a channel is required when that channel is enabled: the policy
  // cannot rank a channel it knows nothing about. Disabled channels keep defaults.
  if (m.has("FaaS") || c.s3.enabled || c.redis.enabled || c.direct.enabled)
    c.model.faas.gib_second_price = m.child("FaaS").num("gib_second_price");
  if (c.s3.enabled || m.has("S3")) {
    Reader s = m.child("S3");
    auto& p = c.model.s3;
    p.bandwidth = s.positive("bandwidth");
    p.overhead = s.num("overhead");
    p.transfer_price = s.num("transfer_price");
    p.download_price = s.num("download_price");
    p.upload_price = s.num("upload_price");
  }
  if (c.redis.enabled || m.has("Redis")) {
    Reader r = m.child("Redis");
    auto& p = c.model.redis;
    p.bandwidth_single = r.positive("bandwidth_single");
    p.bandwidth_multiple = r.positive("bandwidth_multiple");
    p.overhead = r.num("overhead");
    p.transfer_price = r.num("transfer_price");
    p.instance_price = r.num("instance_price");
    p.requests_per_hour = r.positive("requests_per_hour");
    p.include_infrastructure_costs = r.boolean("include_infrastructure_costs");
  }
  if (c.direct.enabled || m.has("Direct")) {
    Reader d = m.child("Direct");
    auto& p = c.model.direct;
    p.bandwidth = d.positive("bandwidth");
    p.overhead = d.num("overhead");
    p.transfer_price = d.num("transfer_price");
    p.vm_price = d.num("vm_price");
    p.requests_per_hour = d.positive("requests_per_hour");
    p.include_infrastructure_costs = d.boolean("include_infrastructure_costs");
  }
}

}  // namespace

Config Config::parse(const std::string& text, const std::string& source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    FMI_THROW(ConfigError, "config ", source, ": invalid JSON: ", e.what());
  }
  Config c;
  c.source = source;
  Reader root(j, "", c.source);
  if (!j.is_object()) FMI_THROW(ConfigError, "config ", source, ": top level must be an object");
  parse_backends(root.child("backends"), c);
  const bool any_enabled = c.s3.enabled || c.redis.enabled || c.direct.enabled;
  if (root.has("model") || any_enabled) parse_model(root.child("model"), c);
  return c;
}

Config Config::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) FMI_THROW(ConfigError, "config ", path, ": cannot open file");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) FMI_THROW(ConfigError, "config ", path, ": read error");
  return parse(ss.str(), path);
}

}  // namespace FMI
