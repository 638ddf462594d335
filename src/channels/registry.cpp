// The registry: one line per channel. The order is the policy's tie-break order
// among equally good channels and the order in which tools list them.
#include "channels/registry.h"

#include <string>

namespace FMI::Comm {

const std::vector<const ChannelDescriptor*>& channels() {
  static const std::vector<const ChannelDescriptor*> list = {
#ifdef FMI_WITH_DIRECT
      &kDirectDescriptor,
#endif
#ifdef FMI_WITH_REDIS
      &kRedisDescriptor,
#endif
#ifdef FMI_WITH_S3
      &kS3Descriptor,
#endif
#ifdef FMI_WITH_INPROC
      &kInProcessDescriptor, &kInProcessStoreDescriptor,
#endif
  };
  return list;
}

const ChannelDescriptor* find_channel(std::string_view name) {
  for (const ChannelDescriptor* d : channels())
    if (name == d->name) return d;
  return nullptr;
}

std::string channel_list() {
  std::string s;
  for (const ChannelDescriptor* d : channels()) s += (s.empty() ? "" : ", ") + std::string(d->name);
  return s;
}

}  // namespace FMI::Comm

namespace FMI::config {

// Declared in base/config_reader.h: the configuration's top level parses the
// sections of exactly the registered channels.
const std::vector<const SectionParser*>& channel_sections() {
  static const std::vector<const SectionParser*> list = [] {
    std::vector<const SectionParser*> v;
    for (const Comm::ChannelDescriptor* d : Comm::channels()) v.push_back(d);
    return v;
  }();
  return list;
}

}  // namespace FMI::config
