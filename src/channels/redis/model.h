// The Redis channel's reference exchange model (docs/policy.md).
#pragma once

#include "channels/redis/config.h"
#include "fmi/channel.h"

namespace FMI::Comm {

class RedisModel final : public ChannelModel {
 public:
  explicit RedisModel(const RedisConfig::Model& m) : m_(m) {}
  double latency(unsigned producers, unsigned consumers, std::size_t bytes) const override;
  double cost(unsigned producers, unsigned consumers, std::size_t bytes) const override;
  double hourly_price() const override;

 private:
  RedisConfig::Model m_;
};

}  // namespace FMI::Comm
