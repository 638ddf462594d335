// Configuration loader: JSON (original FMI schema) -> typed structs, once. The top
// level (backends, model, model.FaaS) is read here; each channel's sections are
// read by its own parser (config::channel_sections(), from the channel registry).
#include "fmi/config.h"

#include <fstream>
#include <limits>
#include <sstream>

#include "base/config_reader.h"
#include "fmi/errors.h"

namespace FMI {

using nlohmann::json;

namespace config {

void fail(const std::string& source, const std::string& field, const std::string& why) {
  if (source.empty()) FMI_THROW(ConfigError, "config: field ", field, " ", why);
  FMI_THROW(ConfigError, "config ", source, ": field ", field, " ", why);
}

const json& Reader::at(const char* key) const {
  if (!j_.is_object() || !j_.contains(key)) fail(key, "is missing");
  return j_.at(key);
}

Reader Reader::child(const char* key) const {
  const json& v = at(key);
  if (!v.is_object()) fail(key, "must be an object");
  return Reader(v, field(key), source_);
}

std::string Reader::str(const char* key) const {
  const json& v = at(key);
  if (!v.is_string()) fail(key, "must be a string");
  return v.get<std::string>();
}

double Reader::num(const char* key) const {
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

long long Reader::integer(const char* key, long long lo, long long hi) const {
  double d = num(key);
  if (d != static_cast<double>(static_cast<long long>(d)) || d < lo || d > hi)
    fail(key, "must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return static_cast<long long>(d);
}

double Reader::positive(const char* key) const {
  const double d = num(key);
  if (!(d > 0)) fail(key, "must be positive");
  return d;
}

std::chrono::milliseconds Reader::millis(const char* key) const {
  return std::chrono::milliseconds(integer(key, 0, 365LL * 24 * 3600 * 1000));
}

bool Reader::boolean(const char* key) const {
  const json& v = at(key);
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    if (s == "true") return true;
    if (s == "false") return false;
  }
  fail(key, "must be true or false");
}

}  // namespace config

// ---- Config ----------------------------------------------------------------------

Config::Config() {
  for (const config::SectionParser* p : config::channel_sections())
    sections_.emplace_back(p->name, p->make_default());
}

Config::Config(const Config& o) : model(o.model), source(o.source) {
  sections_.reserve(o.sections_.size());
  for (const auto& [name, s] : o.sections_) sections_.emplace_back(name, s->clone());
}

Config& Config::operator=(const Config& o) {
  if (this != &o) *this = Config(o);
  return *this;
}

Config::~Config() = default;

std::vector<std::string> Config::channel_names() const {
  std::vector<std::string> names;
  for (const auto& [name, s] : sections_) names.push_back(name);
  return names;
}

bool Config::enabled(std::string_view channel) const {
  for (const auto& [name, s] : sections_)
    if (name == channel) return s->enabled;
  return false;
}

void Config::set_enabled(std::string_view channel, bool on) { section(channel).enabled = on; }

const ChannelConfig& Config::section(std::string_view channel) const {
  for (const auto& [name, s] : sections_)
    if (name == channel) return *s;
  std::string known;
  for (const auto& [name, s] : sections_) known += (known.empty() ? "" : ", ") + name;
  FMI_THROW(UsageError, "config: no channel '", channel, "' in this build (channels: ", known, ")");
}

ChannelConfig& Config::section(std::string_view channel) {
  return const_cast<ChannelConfig&>(std::as_const(*this).section(channel));
}

void Config::wrong_type(const char* channel) {
  FMI_THROW(UsageError, "config: the section of channel '", channel,
            "' is not of the type asked for");
}

Config Config::parse(const std::string& text, const std::string& source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    FMI_THROW(ConfigError, "config ", source, ": invalid JSON: ", e.what());
  }
  Config c;
  c.source = source;
  if (!j.is_object()) FMI_THROW(ConfigError, "config ", source, ": top level must be an object");
  const config::Reader root(j, "", c.source);

  // A backend section may be absent (disabled); when present and enabled, every
  // field it needs must be there.
  const config::Reader backends = root.child("backends");
  bool any_modelled = false;  // an enabled channel that has a model section
  for (std::size_t i = 0; i < c.sections_.size(); ++i) {
    const config::SectionParser& p = *config::channel_sections()[i];
    ChannelConfig& s = *c.sections_[i].second;
    if (!backends.has(p.name)) continue;
    const config::Reader b = backends.child(p.name);
    s.enabled = b.boolean("enabled");
    if (s.enabled) p.parse_backend(b, s);
    any_modelled |= s.enabled && p.parse_model;
  }

  // The model of a channel is required when that channel is enabled: the policy
  // cannot rank a channel it knows nothing about. Disabled channels keep defaults.
  if (!root.has("model") && !any_modelled) return c;
  const config::Reader m = root.child("model");
  if (m.has("FaaS") || any_modelled)
    c.model.faas.gib_second_price = m.child("FaaS").num("gib_second_price");
  for (std::size_t i = 0; i < c.sections_.size(); ++i) {
    const config::SectionParser& p = *config::channel_sections()[i];
    ChannelConfig& s = *c.sections_[i].second;
    if (p.parse_model && (s.enabled || m.has(p.name))) p.parse_model(m.child(p.name), s);
  }
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
