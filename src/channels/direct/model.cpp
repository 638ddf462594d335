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

// Data goes from function to function: it is billed as transfer (USD/GiB: 0
// within an availability zone, the inter-AZ or internet rate otherwise). The
// rendezvous VM carries no data messages, so it charges none of them; only the
// relayed share of the bytes leaves the VM and pays its egress (USD/GiB).
double DirectModel::cost(unsigned p, unsigned c, std::size_t bytes) const {
  if (p == 0 || c == 0) return 0.0;
  const double gib = volume(p, c, bytes) / kGiB;
  return m_.transfer_price * gib + m_.relayed_fraction * m_.vm_egress_price * gib;
}

// The VM is billed per hour (EC2 on-demand) for as long as the job holds it.
double DirectModel::hourly_price() const {
  return m_.include_infrastructure_costs ? m_.vm_price : 0.0;
}

// The rendezvous VM's work for a job is registrations (one per function, at init)
// and pairings (one per pair that talks, on first use). Each takes
// 1/requests_per_hour of a VM-hour: the original FMI's vm_price /
// requests_per_hour per request, applied to the requests the VM really serves.
double DirectModel::setup_cost(unsigned n, double pairs, bool) const {
  if (!m_.include_infrastructure_costs || m_.requests_per_hour <= 0) return 0.0;
  return (double(n) + pairs) * m_.vm_price / m_.requests_per_hour;
}

}  // namespace FMI::Comm
