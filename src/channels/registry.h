// The channels built into FMI. Each channel folder (src/channels/<name>/) defines
// one descriptor: its name, kind, the parser of its config sections, its factory
// and its reference model. registry.cpp lists the descriptors compiled into this
// build, one line per channel (switched by FMI_WITH_<NAME>); the rest of the code
// (config, policy, Communicator, tools) iterates that list and never spells a
// channel's name. Adding a channel = one folder + one line in registry.cpp.
//
//   auto ch = FMI::Comm::find_channel("Redis")->make(config);   // a Redis channel
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "base/config_reader.h"
#include "fmi/channel.h"
#include "fmi/config.h"

namespace FMI::Comm {

struct ChannelDescriptor : config::SectionParser {
  ChannelKind kind;
  /// Creates the channel from the config (its section enabled or not; ConfigError
  /// when a Config built in code holds values the parser would refuse).
  std::shared_ptr<Channel> (*make)(const Config& config);
  /// The reference exchange model with the parameters of config's model.<name>
  /// section (defaults when it is absent); nullptr for a channel without a model.
  std::shared_ptr<const ChannelModel> (*model)(const Config& config);
};

/// The channels of this build, in registry order (also the order in which the
/// config reports errors and the tools list channels).
const std::vector<const ChannelDescriptor*>& channels();

/// The descriptor of `name`, or nullptr when no such channel is in this build.
const ChannelDescriptor* find_channel(std::string_view name);

/// The names of the channels of this build, comma-separated ("Direct, Redis, S3"),
/// for error messages.
std::string channel_list();

// The descriptors, each defined in its channel's folder (descriptor.cpp), constinit:
// a Config built during static initialisation may already use them.
extern const ChannelDescriptor kInProcessDescriptor;
extern const ChannelDescriptor kInProcessStoreDescriptor;
extern const ChannelDescriptor kDirectDescriptor;
extern const ChannelDescriptor kRedisDescriptor;
extern const ChannelDescriptor kS3Descriptor;

}  // namespace FMI::Comm
