// What the configuration parser offers the channels: a Reader that walks one JSON
// object keeping the dotted path of the field (every error names the file and the
// field, in one format), and the parser of one channel's sections that each
// channel's descriptor provides.
//
// One ConfigError format for every check, at parse time or later:
//   config <source>: field <path> <why>
// e.g. "config fmi.json: field backends.Redis.port must be an integer in [1, 65535]".
#pragma once

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "fmi/config.h"

namespace FMI::config {

/// Throws ConfigError in the format above ("config: field ..." when `source` is
/// empty, i.e. for a Config built in code).
[[noreturn]] void fail(const std::string& source, const std::string& field, const std::string& why);

class Reader {
 public:
  Reader(const nlohmann::json& j, std::string path, const std::string& source)
      : j_(j), path_(std::move(path)), source_(source) {}

  bool has(const char* key) const { return j_.is_object() && j_.contains(key); }

  /// The object at `key` ("must be an object", "is missing").
  Reader child(const char* key) const;
  std::string str(const char* key) const;
  /// A number, or a string that holds one.
  double num(const char* key) const;
  long long integer(const char* key, long long lo, long long hi) const;
  /// A number > 0.
  double positive(const char* key) const;
  /// Milliseconds, an integer in [0, one year].
  std::chrono::milliseconds millis(const char* key) const;
  /// true / false, or the strings "true" / "false".
  bool boolean(const char* key) const;

  /// The dotted path of `key` under this object ("backends.Redis.port").
  std::string field(const char* key) const { return path_.empty() ? key : path_ + "." + key; }
  const std::string& source() const { return source_; }

  [[noreturn]] void fail(const char* key, const std::string& why) const {
    config::fail(source_, field(key), why);
  }

 private:
  const nlohmann::json& at(const char* key) const;

  const nlohmann::json& j_;
  std::string path_;
  const std::string& source_;
};

/// How one channel's sections are parsed; part of its descriptor
/// (src/channels/registry.h).
struct SectionParser {
  /// The channel's name: backends.<name>, model.<name>, the policy's channel name.
  const char* name;
  /// A disabled section with the default model.
  std::unique_ptr<ChannelConfig> (*make_default)();
  /// Reads backends.<name> (given as `section`) of an enabled channel into `out`,
  /// every value check included. `enabled` is read before.
  void (*parse_backend)(const Reader& section, ChannelConfig& out);
  /// Reads model.<name> into `out`; nullptr when the channel has no model section.
  /// Called when the channel is enabled (the section is then required) or when
  /// the file has the section.
  void (*parse_model)(const Reader& section, ChannelConfig& out);
};

/// The section parsers of the channels in this build, in the registry's order.
/// Declared here and defined by the channel registry (src/channels/registry.cpp):
/// the configuration's top level knows the list without including anything above
/// src/base.
const std::vector<const SectionParser*>& channel_sections();

}  // namespace FMI::config
