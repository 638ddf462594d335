// The Direct channel's reference exchange model (docs/policy.md).
#pragma once

#include "channels/direct/config.h"
#include "fmi/channel.h"

namespace FMI::Comm {

class DirectModel final : public ChannelModel {
 public:
  explicit DirectModel(const DirectConfig::Model& m) : m_(m) {}
  double latency(unsigned producers, unsigned consumers, std::size_t bytes) const override;
  double cost(unsigned producers, unsigned consumers, std::size_t bytes) const override;
  double hourly_price() const override;
  double setup_cost(unsigned num_peers, double pairs, bool collective) const override;

 private:
  DirectConfig::Model m_;
};

}  // namespace FMI::Comm
