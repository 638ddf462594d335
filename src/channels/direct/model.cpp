#include "channels/direct/model.h"

#include "channels/common/exchange_model.h"

namespace FMI::Comm {

using namespace model;

// Direct: TCP connections between the functions. One overhead per level of the
// request tree, then the P x C messages through the busiest link.
double DirectModel::latency(unsigned p, unsigned c, std::size_t bytes) const {
  if (p == 0 || c == 0) return 0.0;
  return fan(p, c) * seconds(m_.overhead) + volume(p, c, bytes) / (m_.bandwidth * kMiB);
}

// One "request" per message: the rendezvous VM's hourly price is spread over the
// requests it serves in an hour.
double DirectModel::cost(unsigned p, unsigned c, std::size_t bytes) const {
  if (p == 0 || c == 0) return 0.0;
  const double messages = double(p) * c;
  return messages * per_request(m_.include_infrastructure_costs, m_.vm_price,
                                m_.requests_per_hour) +
         m_.transfer_price * volume(p, c, bytes) / kGiB;
}

}  // namespace FMI::Comm
