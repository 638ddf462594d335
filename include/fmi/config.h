// Typed configuration. The JSON file (schema of the original FMI, see
// config/fmi.json and docs/configuration.md) is parsed once into typed structs.
// A missing file, bad JSON, or a missing / ill-typed / out-of-range field raises
// ConfigError naming the file and the field path (e.g. "backends.Redis.port").
// Numbers and booleans may be written as JSON values or as strings ("6379", "true"),
// as the original allowed.
//
// The sections of a channel (backends.<Name> and model.<Name>) are parsed by that
// channel's descriptor (src/channels/<name>/descriptor.cpp) into its own struct,
// derived from ChannelConfig; Config holds one per registered channel, in the
// registry's order, and gives them out by name or by type:
//
//   FMI::Config c = FMI::Config::load("config/fmi.json");
//   if (c.enabled("Redis")) ...
//   c.section<FMI::Comm::RedisConfig>().port = 6380;   // src/channels/redis/config.h
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace FMI {

/// The parsed sections of one channel. Each channel folder derives its own struct
/// (through ChannelConfigOf) with its backend fields and its `Model` parameters.
struct ChannelConfig {
  virtual ~ChannelConfig() = default;
  virtual std::unique_ptr<ChannelConfig> clone() const = 0;
  /// backends.<Name>.enabled; an absent section is a disabled channel.
  bool enabled = false;
};

/// CRTP helper: gives a channel's section struct its clone().
template <typename Derived>
struct ChannelConfigOf : ChannelConfig {
  std::unique_ptr<ChannelConfig> clone() const override {
    return std::make_unique<Derived>(static_cast<const Derived&>(*this));
  }
};

struct Config {
  using ms = std::chrono::milliseconds;

  /// Parameters of the model that are not a channel's: the functions' own price.
  struct Model {
    struct FaaS {
      double gib_second_price = 0.0000166667;  // USD per GiB-second
    } faas;
  };
  Model model;
  /// Where this configuration came from (file path), for error messages.
  std::string source;

  /// Every registered channel's section, disabled, with its default model.
  Config();
  Config(const Config& other);
  Config& operator=(const Config& other);
  Config(Config&&) noexcept = default;
  Config& operator=(Config&&) noexcept = default;
  ~Config();

  /// Reads and validates a configuration file.
  static Config load(const std::string& path);
  /// Parses JSON text; `source` names it in error messages.
  static Config parse(const std::string& json_text, const std::string& source);

  /// The names of the registered channels, in the registry's order.
  std::vector<std::string> channel_names() const;
  /// Whether `channel`'s backend is enabled (false for a channel not in this build).
  bool enabled(std::string_view channel) const;
  /// Enables or disables a registered channel. UsageError for an unknown name.
  void set_enabled(std::string_view channel, bool on);

  /// The section of a registered channel. UsageError for an unknown name.
  const ChannelConfig& section(std::string_view channel) const;
  ChannelConfig& section(std::string_view channel);

  /// The section as its own type: T is a channel's struct, which names its
  /// channel in T::kName. UsageError when that channel is not in this build.
  template <typename T>
  const T& section() const {
    return cast<T>(section(std::string_view(T::kName)));
  }
  template <typename T>
  T& section() {
    return const_cast<T&>(cast<T>(section(std::string_view(T::kName))));
  }

 private:
  template <typename T>
  static const T& cast(const ChannelConfig& s) {
    if (auto* t = dynamic_cast<const T*>(&s)) return *t;
    wrong_type(T::kName);
  }
  [[noreturn]] static void wrong_type(const char* channel);

  std::vector<std::pair<std::string, std::unique_ptr<ChannelConfig>>> sections_;
};

}  // namespace FMI
