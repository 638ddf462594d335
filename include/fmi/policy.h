// The channel policy picks, before each operation, the channel that runs it.
// It must be a pure function of inputs that every peer shares (operation, size,
// peer count, function properties, hint, configuration): two peers choosing
// different channels for the same collective would wait for each other forever.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "fmi/channel.h"
#include "fmi/types.h"

namespace FMI {
struct Config;
}

namespace FMI::Utils {

/// Everything the policy may base its choice on. Identical on every peer.
struct OperationInfo {
  Operation op = Operation::send;
  std::size_t data_size = 0;  // bytes of one peer's contribution (send buffer)
  peer_num num_peers = 1;
  bool commutative = true;
  bool associative = true;
  /// Bytes per element of an element-wise reduction (chunked algorithms allowed),
  /// 0 for a function that only works on whole buffers.
  std::size_t granularity = 1;
  Hint hint = Hint::cheap;
  unsigned faas_memory = 128;  // MiB

  /// The original API's name: an operation whose function must run left to right.
  bool left_to_right() const { return !commutative && !associative; }
};

using ChannelMap = std::map<std::string, std::shared_ptr<Comm::Channel>>;

class ChannelPolicy {
 public:
  virtual ~ChannelPolicy() = default;
  /// Returns the name of one of `channels` (never empty: there is at least one).
  virtual std::string get_channel(const OperationInfo& info, const ChannelMap& channels) = 0;
};

/// The default policy: predicted latency (Hint::fast) or total cost (Hint::cheap)
/// from each channel's model; see docs/policy.md.
std::shared_ptr<ChannelPolicy> make_default_policy(const Config& config);

}  // namespace FMI::Utils
