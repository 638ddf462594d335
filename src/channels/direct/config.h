// The Direct channel's configuration: backends.Direct and model.Direct (parsed by
// descriptor.cpp; docs/configuration.md and docs/direct.md list the fields).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "fmi/config.h"

namespace FMI::Comm {

struct DirectConfig final : ChannelConfigOf<DirectConfig> {
  static constexpr const char* kName = "Direct";
  using ms = std::chrono::milliseconds;

  std::string host;  // rendezvous server
  std::uint16_t port = 10000;
  ms max_timeout{10000};
  std::string secret;      // optional shared secret (HMAC key, >= 16 bytes); env FMI_SECRET wins
  bool encryption = true;  // X25519 + AES-256-GCM on every connection (docs/direct.md)
  /// Connections one function keeps open at once (docs/direct.md "Connection budget");
  /// >= 2. 128 leaves room in Lambda's 1,024 descriptors.
  std::size_t max_connections = 128;

  /// Model parameters: bandwidth in MiB/s, overhead in ms, prices in USD in the
  /// unit the service bills (docs/policy.md, "Prices").
  struct Model {
    double bandwidth = 250.0, overhead = 0.3, transfer_price = 0.0;
    // vm_price: USD per hour of the rendezvous VM, charged by share of time.
    // requests_per_hour: registrations and pairings the VM serves per hour (its
    // original meaning); each costs the job 1/requests_per_hour of a VM-hour at
    // set-up. Data messages never go to the VM (except relayed ones, below).
    double vm_price = 0.0134, requests_per_hour = 1000;
    bool include_infrastructure_costs = true;
    // Optional (not in the original schema): the share of the bytes relayed by
    // the VM (symmetric-NAT pairs), billed as the VM's egress in USD per GiB.
    double relayed_fraction = 0.0, vm_egress_price = 0.09;
  } model;
};

}  // namespace FMI::Comm
