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

// P uploads and P x C downloads, each a request on the hourly-billed instance.
double RedisModel::cost(unsigned p, unsigned c, std::size_t bytes) const {
  if (p == 0 || c == 0) return 0.0;
  const double requests = double(p) + double(p) * c;
  return requests * per_request(m_.include_infrastructure_costs, m_.instance_price,
                                m_.requests_per_hour) +
         m_.transfer_price * volume(p, c, bytes) / kGiB;
}

}  // namespace FMI::Comm
