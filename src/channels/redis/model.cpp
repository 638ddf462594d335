#include "channels/redis/model.h"

#include "channels/common/exchange_model.h"

namespace FMI::Comm {

using namespace model;

// Redis: one server; one consumer reads at bandwidth_single, several consumers
// together reach bandwidth_multiple. Consumers block (BLPOP): no polling delay.
double RedisModel::latency(unsigned p, unsigned c, std::size_t bytes) const {
  if (p == 0 || c == 0) return 0.0;
  const double bw = c == 1 ? m_.bandwidth_single : m_.bandwidth_multiple;
  return fan(p, c) * seconds(m_.overhead) + volume(p, c, bytes) / (bw * kMiB);
}

// An ElastiCache node is billed per hour, not per request: an exchange pays only
// the transfer of the bytes read out of it (USD/GiB, 0 within an availability zone).
double RedisModel::cost(unsigned p, unsigned c, std::size_t bytes) const {
  if (p == 0 || c == 0) return 0.0;
  return m_.transfer_price * volume(p, c, bytes) / kGiB;
}

double RedisModel::hourly_price() const {
  return m_.include_infrastructure_costs ? m_.instance_price : 0.0;
}

}  // namespace FMI::Comm
