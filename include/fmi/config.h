// Typed configuration. The JSON file (schema of the original FMI, see
// config/fmi.json and docs/configuration.md) is parsed once into these structs.
// A missing file, bad JSON, or a missing / ill-typed field raises ConfigError naming
// the file and the field path (e.g. "backends.Redis.port"). Numbers and booleans may
// be written as JSON values or as strings ("6379", "true"), as the original allowed.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace FMI {

struct Config {
  using ms = std::chrono::milliseconds;

  struct S3 {
    bool enabled = false;
    std::string bucket_name;
    std::string s3_region;
    ms timeout{100};  // first poll interval while waiting for an object
    ms max_timeout{10000};
    std::string endpoint;  // optional; empty = https://s3.<region>.amazonaws.com
  };
  struct Redis {
    bool enabled = false;
    std::string host;
    std::uint16_t port = 6379;
    ms timeout{1};
    ms max_timeout{10000};
    std::string username;  // optional (Redis 6 ACL)
    std::string password;  // optional; AUTH when non-empty
    int db = 0;            // optional
  };
  struct Direct {
    bool enabled = false;
    std::string host;  // rendezvous server
    std::uint16_t port = 10000;
    ms max_timeout{10000};
    std::string secret;  // optional shared secret (HMAC key, >= 16 bytes); env FMI_SECRET wins
    bool encryption = true;  // X25519 + AES-256-GCM on every connection (docs/direct.md)
  };

  /// Model parameters: bandwidth in MiB/s, overhead in ms, prices in USD.
  struct Model {
    struct FaaS {
      double gib_second_price = 0.0000166667;
    } faas;
    struct S3 {
      double bandwidth = 50.0, overhead = 40.4, transfer_price = 0.0;
      double download_price = 0.00000043, upload_price = 0.0000054;
    } s3;
    struct Redis {
      double bandwidth_single = 100.0, bandwidth_multiple = 400.0, overhead = 5.2;
      double transfer_price = 0.0, instance_price = 0.0038, requests_per_hour = 1000;
      bool include_infrastructure_costs = true;
    } redis;
    struct Direct {
      double bandwidth = 250.0, overhead = 0.3, transfer_price = 0.0;
      double vm_price = 0.0134, requests_per_hour = 1000;
      bool include_infrastructure_costs = true;
    } direct;
  };

  S3 s3;
  Redis redis;
  Direct direct;
  Model model;
  /// Where this configuration came from (file path), for error messages.
  std::string source;

  /// Reads and validates a configuration file.
  static Config load(const std::string& path);
  /// Parses JSON text; `source` names it in error messages.
  static Config parse(const std::string& json_text, const std::string& source);
};

}  // namespace FMI
