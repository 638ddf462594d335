// How every test and the conformance suite create a built-in channel: by name,
// from the JSON text of a configuration (the schema of config/fmi.json), never by
// filling the config structs, so that tests do not depend on how FMI::Config holds
// a channel's section. make_channel is the one place that maps a name to a channel
// (a look-up in the channel registry, src/channels/registry.h).
//
// The *_config helpers write such a text for one channel: the given "backends"
// entry (enabled) plus the "model" section of the shipped config/fmi.json, which
// an enabled channel needs.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "fmi/channel.h"
#include "fmi/config.h"

namespace fmitest {

/// The channel called `name` ("Direct", "Redis", "S3") configured by the JSON
/// text `config_json`; not initialised (Channel::init, or register it with a
/// Communicator). Throws ConfigError for a bad config and UsageError for a name
/// that is not a channel of this build.
std::shared_ptr<FMI::Comm::Channel> make_channel(const std::string& name,
                                                 const std::string& config_json);

/// The parsed configuration of such a text (for a Communicator that creates its
/// channels itself).
FMI::Config parse_config(const std::string& config_json);

/// A whole configuration text whose "backends" holds only `name` with the fields
/// of `backend_json` (a JSON object; "enabled": true is added).
std::string config_with(const std::string& name, const std::string& backend_json);

std::string direct_config(const std::string& host, std::uint16_t port,
                          std::chrono::milliseconds max_timeout, const std::string& secret = "",
                          bool encryption = true);
std::string redis_config(const std::string& host, std::uint16_t port,
                         std::chrono::milliseconds max_timeout, const std::string& username = "",
                         const std::string& password = "", int db = 0);
/// `first_poll`: the S3 channel's first poll interval ("timeout").
std::string s3_config(const std::string& bucket, const std::string& endpoint,
                      std::chrono::milliseconds max_timeout,
                      std::chrono::milliseconds first_poll = std::chrono::milliseconds(5),
                      const std::string& region = "us-east-1");

}  // namespace fmitest
