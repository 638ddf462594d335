// In-process channels: peers are threads of one process. Real channels in every
// respect except the medium (buffers in memory), used by the tests of every
// algorithm and useful to users for testing their own code without servers.
#pragma once

#include <chrono>
#include <memory>

#include "fmi/channel.h"

namespace FMI::Comm {

/// Shared medium of one in-process communicator: create one, then give each
/// peer's Communicator its own endpoint via p2p_endpoint() / store_endpoint().
class InProcessHub {
 public:
  explicit InProcessHub(Utils::peer_num num_peers,
                        std::chrono::milliseconds max_timeout = std::chrono::seconds(30));
  ~InProcessHub();
  InProcessHub(const InProcessHub&) = delete;
  InProcessHub& operator=(const InProcessHub&) = delete;

  /// A point-to-point channel endpoint for one peer (init() sets which one).
  std::shared_ptr<PeerToPeerChannel> p2p_endpoint();
  /// An object-store channel endpoint for one peer.
  std::shared_ptr<ObjectStoreChannel> store_endpoint();

  /// Objects currently held by the store (tests: nothing left behind).
  std::size_t objects_in_store() const;
  /// Every get() that had to wait and every put/get/erase/list call, for tests.
  std::size_t store_requests() const;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace FMI::Comm
