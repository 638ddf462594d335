// Factories of the channels built into FMI, one per backend section of the config.
// Each channel folder defines its factory; registry.cpp lists those compiled in
// (FMI_WITH_<NAME>), so adding a channel touches only its folder and this list.
#pragma once

#include <memory>

#include "fmi/channel.h"
#include "fmi/config.h"

namespace FMI::Comm {
std::shared_ptr<Channel> make_direct_channel(const Config& config);
std::shared_ptr<Channel> make_redis_channel(const Config& config);
std::shared_ptr<Channel> make_s3_channel(const Config& config);

struct BuiltinChannel {
  const char* name;  // as in the config's "backends" section and in policy output
  bool (*enabled)(const Config&);
  std::shared_ptr<Channel> (*make)(const Config&);
};
/// The channels compiled into this build, in the policy's tie-break order.
const std::vector<BuiltinChannel>& builtin_channels();
}  // namespace FMI::Comm
