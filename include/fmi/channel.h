// Channels move bytes and know nothing above that. There are two kinds:
//  - point-to-point channels (Direct, in-process): send/recv of a byte span to a peer;
//  - object-store channels (Redis, S3, in-process store): put/get/erase/list of named objects.
// The collective algorithms (src/collectives/) are written once against these two
// interfaces; the channel policy (include/fmi/policy.h) picks a channel per operation.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "fmi/types.h"

namespace FMI::Comm {

enum class ChannelKind { peer_to_peer, object_store };

/// One message a receive is willing to take: from `src`, carrying `tag`.
struct Envelope {
  Utils::peer_num src;
  Tag tag;
};
/// What probe() found: which wanted envelope matched, and the message's size in bytes.
struct Probed {
  std::size_t index;
  std::size_t bytes;
};

/// Who this channel works for; given to Channel::init by the Communicator.
struct ChannelContext {
  Utils::peer_num peer_id = 0;
  Utils::peer_num num_peers = 1;
  std::string comm_name;
  unsigned faas_memory = 128;  // MiB of the function, for cost models
};

/// Performance and cost model of one exchange on a channel: `producers` peers each
/// deliver `bytes` to `consumers` peers. Parameters come from the config's "model"
/// section. Used by the channel policy; see docs/policy.md for the formulas.
class ChannelModel {
 public:
  virtual ~ChannelModel() = default;
  /// Predicted seconds until every consumer holds every producer's data.
  virtual double latency(unsigned producers, unsigned consumers, std::size_t bytes) const = 0;
  /// Predicted USD that the exchange itself is billed: requests (where the service
  /// bills per request) and transfer. Excludes servers billed per hour (below) and
  /// the functions' own run time (the policy adds both from the latency).
  virtual double cost(unsigned producers, unsigned consumers, std::size_t bytes) const = 0;
  /// USD per hour of servers the channel holds for the job's lifetime (a Redis
  /// instance, the rendezvous VM); an operation is charged its share of time,
  /// hourly_price() x latency / 3600. 0 for channels without such a server.
  virtual double hourly_price() const { return 0.0; }
  /// USD of the requests that set-up and tear-down cost a job of `num_peers`
  /// functions (docs/policy.md, "Job cost"): for being enabled, plus `pairs`
  /// pairs of functions connected on first use (point-to-point channels; 0 when
  /// unused), plus, if `collective`, what a collective's use adds at finalize.
  virtual double setup_cost(unsigned num_peers, double pairs, bool collective) const {
    (void)num_peers, (void)pairs, (void)collective;
    return 0.0;
  }
};

/// Base of every channel. Channels are created by the Communicator from the config
/// (see src/channels/registry.cpp) or registered by the user (register_channel).
class Channel {
 public:
  virtual ~Channel() = default;
  Channel() = default;
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  virtual ChannelKind kind() const = 0;

  /// Called once by the Communicator before any transfer.
  virtual void init(const ChannelContext& ctx) = 0;

  /// Releases everything the channel created (connections, keys, objects).
  /// Called by the Communicator's destructor; idempotent; must not throw.
  /// Peers finish at different times: finalize must not delete what another peer
  /// may still read (a bcast root can be destroyed right after its upload). Object
  /// stores that count reads leave that to the last reader (with a TTL for peers
  /// that die); stores that cannot (S3) synchronise the peers in finalize first.
  virtual void finalize() noexcept = 0;

  /// Longest time one operation on this channel may take before it raises
  /// TimeoutError; the Communicator turns it into each operation's deadline.
  virtual std::chrono::milliseconds max_timeout() const = 0;

  /// The channel's performance/cost model, or nullptr when it has none (the
  /// default policy then ranks it after every modelled channel).
  virtual std::shared_ptr<const ChannelModel> model() const { return nullptr; }
};

/// A channel with direct, ordered, reliable byte streams between each pair of peers.
/// Messages between one ordered pair arrive in the order sent. Every call throws
/// TimeoutError after `deadline`, PeerError when the peer is gone or the message
/// does not match (tag or size), ChannelError on transport failures.
class PeerToPeerChannel : public Channel {
 public:
  ChannelKind kind() const final { return ChannelKind::peer_to_peer; }

  /// Sends `data` to `dest`. May return before the peer has received it.
  virtual void send(Utils::peer_num dest, ConstBytes data, Tag tag, Utils::Deadline deadline) = 0;

  /// Receives the oldest message from `src` that carries `tag`; it must hold
  /// exactly `out.size()` bytes (PeerError otherwise). Messages from `src` with
  /// other tags (a point-to-point message arriving while this peer is inside a
  /// collective, or the reverse) are kept for the recv that asks for them, as
  /// MPI matches by (source, tag).
  virtual void recv(Utils::peer_num src, Bytes out, Tag tag, Utils::Deadline deadline) = 0;

  /// Sends to `dest` and receives from `src` at the same time. Needed by exchange
  /// and ring algorithms: two blocking sends facing each other would deadlock once
  /// the messages exceed the transport's buffers. dest may equal src.
  virtual void sendrecv(Utils::peer_num dest, ConstBytes data, Utils::peer_num src, Bytes out,
                        Tag tag, Utils::Deadline deadline) = 0;

  /// Optional: open connections to all peers now (collectives that talk to many
  /// peers call it so that set-up is not serialised inside the algorithm).
  virtual void connect_all(Utils::Deadline /*deadline*/) {}

  /// Opens connections to `peers` now, all in parallel (an algorithm calls it with the
  /// partners it is about to use, so that set-up is not serialised round by round).
  /// Default: nothing (channels without connections).
  virtual void connect(std::span<const Utils::peer_num> /*peers*/, Utils::Deadline /*deadline*/) {}
  /// Most connections this channel keeps open at once; 0: no limit. The same on every
  /// peer (it comes from the configuration), so algorithms may choose by it.
  virtual std::size_t max_connections() const { return 0; }

  /// Waits until a message matching one of `wanted` has arrived and returns which one and its
  /// size; the message stays for the recv(wanted[index].src, out, wanted[index].tag, ...) that
  /// follows. With `block` false it never waits and returns nullopt when none has arrived.
  /// TimeoutError after `deadline`; PeerError when a wanted source is gone.
  /// (An any-source receive: one envelope per source, each with that source's next tag.)
  virtual std::optional<Probed> probe(std::span<const Envelope> wanted, bool block,
                                      Utils::Deadline deadline);  // default: throws UsageError
};

/// Names one object of one operation. Channels turn it into a key with
/// str(comm_name): keys of different communicators never collide.
struct ObjectKey {
  static constexpr Utils::peer_num all = 0xffffffffu;  // "to every peer"
  Tag tag;
  Utils::peer_num from = 0;
  Utils::peer_num to = all;

  /// "<comm>/<op>/<seq>/<from>-<to>"; `to` is "all" for objects read by every peer.
  /// A sub-communicator's objects (tag.comm != 0) get "<comm>/c<6 hex digits>/..."
  std::string str(const std::string& comm_name) const;
};

/// A channel that exchanges data through named objects in a shared store.
/// Every call throws TimeoutError after its deadline and ChannelError on failures
/// of the store (naming the command/request and the object's purpose).
class ObjectStoreChannel : public Channel {
 public:
  ChannelKind kind() const final { return ChannelKind::object_store; }

  /// Stores `data` under `key`. `readers` is how many get() calls will read it:
  /// a store that can count reads deletes the object after the last one; the
  /// others delete it at finalize at the latest.
  virtual void put(const ObjectKey& key, ConstBytes data, unsigned readers,
                   Utils::Deadline deadline) = 0;

  /// Waits until `key` exists and reads it into `out`; its size must be exactly
  /// out.size() (PeerError otherwise, naming both sizes).
  virtual void get(const ObjectKey& key, Bytes out, Utils::Deadline deadline) = 0;

  /// Deletes `key` if it exists.
  virtual void erase(const ObjectKey& key, Utils::Deadline deadline) = 0;

  /// Keys (as produced by ObjectKey::str) that exist under `prefix`; a store lists
  /// only by prefix, never everything.
  virtual std::vector<std::string> list(const std::string& prefix, Utils::Deadline deadline) = 0;

  /// The same as PeerToPeerChannel::probe for objects (key.from is the source): waits until
  /// one of `wanted` exists and returns which one and its size; the object stays for the
  /// get(wanted[index], ...) that follows. With `block` false it never waits.
  virtual std::optional<Probed> probe(std::span<const ObjectKey> wanted, bool block,
                                      Utils::Deadline deadline);  // default: throws UsageError
};

}  // namespace FMI::Comm
