// Default channel policy. Placeholder ranking until the model-driven policy
// lands: point-to-point channels first (fastest and, with no per-request price,
// cheapest), then object stores; ties broken by name. Pure function of the
// registered channel names and kinds, which every peer shares.
#include <limits>

#include "fmi/config.h"
#include "fmi/policy.h"

namespace FMI::Utils {
namespace {

class DefaultPolicy final : public ChannelPolicy {
 public:
  std::string get_channel(const OperationInfo&, const ChannelMap& channels) override {
    for (const auto& [name, ch] : channels)
      if (ch->kind() == Comm::ChannelKind::peer_to_peer) return name;
    return channels.begin()->first;
  }
};

}  // namespace

std::shared_ptr<ChannelPolicy> make_default_policy(const Config&) {
  return std::make_shared<DefaultPolicy>();
}

}  // namespace FMI::Utils
