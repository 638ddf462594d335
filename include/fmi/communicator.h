// FMI::Communicator: a group of peers (serverless functions) with point-to-point
// and collective operations, API-compatible with the original FMI.
//
//   FMI::Communicator comm(peer_id, num_peers, "config/fmi.json", "MyApp", 512);
//   FMI::Comm::Data<std::vector<float>> grad(n), sum(n);
//   comm.allreduce(grad, sum, FMI::Utils::Function<std::vector<float>>::sum());
//
// Every call is collective over the communicator unless it is send/recv, and every
// peer must call collectives in the same order with matching sizes. Messages are
// matched as in MPI: the k-th send from A to B meets the k-th recv on B from A, and
// point-to-point messages never mix with collectives, whatever the interleaving.
// Sizes in error messages are in bytes. Each call is bounded by the chosen channel's max_timeout
// and throws FMI::TimeoutError after it; every error message starts with the call
// ("recv from peer 2 via Redis: ...").
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "fmi/channel.h"
#include "fmi/config.h"
#include "fmi/data.h"
#include "fmi/errors.h"
#include "fmi/function.h"
#include "fmi/policy.h"
#include "fmi/request.h"
#include "fmi/types.h"

namespace FMI {

/// What a receive or probe found: who sent the message and its size in bytes.
struct Status {
  Utils::peer_num source;
  std::size_t bytes;
};

/// Source of recv/probe/iprobe that matches a message from any peer. No peer has
/// this id (a communicator holds fewer than 2^32 - 1 peers); every other call
/// rejects it with UsageError. See docs/collectives.md, "Any-source receive".
inline constexpr Utils::peer_num any_source = std::numeric_limits<Utils::peer_num>::max();
namespace detail {
class WorkerPool;
struct RequestState;
}  // namespace detail

class Communicator {
 public:
  using peer_num = Utils::peer_num;

  /// Loads the configuration file and creates every enabled channel.
  /// Throws ConfigError (bad file) or UsageError (peer_id >= num_peers).
  Communicator(peer_num peer_id, peer_num num_peers, std::string config_path, std::string comm_name,
               unsigned int faas_memory = 128);
  /// Same, from an already loaded configuration.
  Communicator(peer_num peer_id, peer_num num_peers, const Config& config, std::string comm_name,
               unsigned int faas_memory = 128);
  /// Finalises every channel: closes connections, deletes keys and objects.
  ~Communicator();

  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  peer_num peer_id() const { return peer_id_; }
  peer_num num_peers() const { return num_peers_; }
  const std::string& comm_name() const { return comm_name_; }
  const Config& config() const { return config_; }

  // ---- point to point -------------------------------------------------------
  template <typename T>
  void send(Comm::Data<T>& buf, peer_num dest) {
    send_bytes(Comm::cbytes_of(buf), dest);
  }
  /// Receives the next message from `src` (the k-th recv from A meets A's k-th send
  /// here), or with src == any_source the next one of whichever peer's has arrived
  /// (from each peer in the order that peer sent them). The message must hold exactly
  /// buf's size (PeerError naming both sizes): probe() first when it is unknown.
  template <typename T>
  Status recv(Comm::Data<T>& buf, peer_num src) {
    return recv_bytes(Comm::bytes_of(buf), src);
  }
  /// Waits for the next message from `src` (or any_source) without receiving it;
  /// the recv from status.source that follows receives that message. The channel:
  /// the only one, or with several every channel is asked in turn (a send's channel
  /// depends on its size, which the receiver does not know); docs/collectives.md,
  /// "Any-source receive and probe". Bounded by the largest max_timeout.
  Status probe(peer_num src);
  /// probe() that never waits: nullopt when no such message has arrived yet.
  std::optional<Status> iprobe(peer_num src);

  // ---- collectives ----------------------------------------------------------
  /// buf on root is sent to every peer; every peer's buf has the same size.
  template <typename T>
  void bcast(Comm::Data<T>& buf, peer_num root) {
    bcast_bytes(Comm::bytes_of(buf), root);
  }
  void barrier();

  /// recvbuf on root receives num_peers x sendbuf, in peer order (ignored elsewhere).
  template <typename S, typename R>
  void gather(Comm::Data<S>& sendbuf, Comm::Data<R>& recvbuf, peer_num root) {
    gather_bytes(Comm::cbytes_of(sendbuf), Comm::bytes_of(recvbuf), root);
  }
  /// sendbuf on root (num_peers x recvbuf) is split in peer order.
  template <typename S, typename R>
  void scatter(Comm::Data<S>& sendbuf, Comm::Data<R>& recvbuf, peer_num root) {
    scatter_bytes(Comm::cbytes_of(sendbuf), Comm::bytes_of(recvbuf), root);
  }
  /// recvbuf on root = f over every peer's sendbuf (ignored elsewhere).
  template <typename T>
  void reduce(Comm::Data<T>& sendbuf, Comm::Data<T>& recvbuf, peer_num root, Utils::Function<T> f) {
    reduce_bytes(Comm::cbytes_of(sendbuf), Comm::bytes_of(recvbuf), root, f.op());
  }
  template <typename T>
  void allreduce(Comm::Data<T>& sendbuf, Comm::Data<T>& recvbuf, Utils::Function<T> f) {
    allreduce_bytes(Comm::cbytes_of(sendbuf), Comm::bytes_of(recvbuf), f.op());
  }
  /// Inclusive prefix: recvbuf on peer i = f over the sendbufs of peers 0..i.
  template <typename T>
  void scan(Comm::Data<T>& sendbuf, Comm::Data<T>& recvbuf, Utils::Function<T> f) {
    scan_bytes(Comm::cbytes_of(sendbuf), Comm::bytes_of(recvbuf), f.op());
  }
  /// recvbuf on every peer receives num_peers x sendbuf, in peer order.
  template <typename S, typename R>
  void allgather(Comm::Data<S>& sendbuf, Comm::Data<R>& recvbuf) {
    allgather_bytes(Comm::cbytes_of(sendbuf), Comm::bytes_of(recvbuf));
  }
  /// sendbuf holds num_peers blocks; block j goes to peer j, whose recvbuf holds
  /// the blocks from every peer in peer order.
  template <typename S, typename R>
  void alltoall(Comm::Data<S>& sendbuf, Comm::Data<R>& recvbuf) {
    alltoall_bytes(Comm::cbytes_of(sendbuf), Comm::bytes_of(recvbuf));
  }
  /// sendbuf holds num_peers blocks of recvbuf's size; peer i receives f over
  /// every peer's block i.
  template <typename T>
  void reduce_scatter(Comm::Data<T>& sendbuf, Comm::Data<T>& recvbuf, Utils::Function<T> f) {
    reduce_scatter_bytes(Comm::cbytes_of(sendbuf), Comm::bytes_of(recvbuf), f.op());
  }

  // ---- variable-size collectives ----------------------------------------------
  // Every peer contributes a block of its own size. Counts are in elements of the
  // buffer's element type (Comm::element_size_v: T, the A of std::vector<A>, a byte
  // for void*), one per peer; blocks are packed in peer order; a count may be zero.
  // Every peer passes the counts vector (num_peers entries); where the counts must
  // agree between peers and do not, the receiving peer raises PeerError naming the
  // size it expected and the size that arrived. Size errors on this peer raise
  // UsageError before anything is sent.

  /// recv on root receives recv_counts[p] elements of R from each peer p, in peer
  /// order (ignored elsewhere); send holds this peer's recv_counts[peer_id()].
  template <typename S, typename R>
  void gatherv(Comm::Data<S>& send, Comm::Data<R>& recv,
               const std::vector<std::size_t>& recv_counts, peer_num root) {
    constexpr std::size_t es = Comm::element_size_v<R>;
    check_elements("gatherv", "send buffer", send.size_in_bytes(), es);
    gatherv_bytes(Comm::cbytes_of(send), Comm::bytes_of(recv),
                  counts_in_bytes("gatherv", "recv_counts", recv_counts, es), root);
  }
  /// send on root holds send_counts[p] elements of S for each peer p, in peer order;
  /// peer p's recv receives its block.
  template <typename S, typename R>
  void scatterv(Comm::Data<S>& send, const std::vector<std::size_t>& send_counts,
                Comm::Data<R>& recv, peer_num root) {
    constexpr std::size_t es = Comm::element_size_v<S>;
    check_elements("scatterv", "recv buffer", recv.size_in_bytes(), es);
    scatterv_bytes(Comm::cbytes_of(send),
                   counts_in_bytes("scatterv", "send_counts", send_counts, es),
                   Comm::bytes_of(recv), root);
  }
  /// recv on every peer receives recv_counts[p] elements of R from each peer p.
  template <typename S, typename R>
  void allgatherv(Comm::Data<S>& send, Comm::Data<R>& recv,
                  const std::vector<std::size_t>& recv_counts) {
    constexpr std::size_t es = Comm::element_size_v<R>;
    check_elements("allgatherv", "send buffer", send.size_in_bytes(), es);
    allgatherv_bytes(Comm::cbytes_of(send), Comm::bytes_of(recv),
                     counts_in_bytes("allgatherv", "recv_counts", recv_counts, es));
  }
  /// send holds send_counts[p] elements of S for each peer p; recv receives
  /// recv_counts[p] elements of R from each peer p. Peer p's send_counts[q] (in
  /// bytes) must equal peer q's recv_counts[p].
  template <typename S, typename R>
  void alltoallv(Comm::Data<S>& send, const std::vector<std::size_t>& send_counts,
                 Comm::Data<R>& recv, const std::vector<std::size_t>& recv_counts) {
    alltoallv_bytes(
        Comm::cbytes_of(send),
        counts_in_bytes("alltoallv", "send_counts", send_counts, Comm::element_size_v<S>),
        Comm::bytes_of(recv),
        counts_in_bytes("alltoallv", "recv_counts", recv_counts, Comm::element_size_v<R>));
  }

  // ---- non-blocking forms (docs/nonblocking.md) --------------------------------
  // The same arguments as the blocking forms. The call checks its arguments, takes
  // the operation's sequence number and chooses its channel in this thread (so
  // collectives are started in call order, which must be the same on every peer,
  // and usage errors are thrown here, as by the blocking form), then runs the
  // transfer on a worker thread of this communicator and returns at once. The
  // buffers belong to the operation until the Request completes (request.h); a
  // reduction's Function is copied into the operation. Any number may be in flight,
  // and blocking calls may be made meanwhile (they still run in this thread). Each
  // has the chosen channel's max_timeout, counted from the i-call. Like the
  // blocking calls, a communicator's i-calls come from one thread at a time.

  template <typename T>
  Request isend(Comm::Data<T>& buf, peer_num dest) {
    return start_nonblocking([&] { send(buf, dest); });
  }
  template <typename T>
  Request irecv(Comm::Data<T>& buf, peer_num src) {
    return start_nonblocking([&] { recv(buf, src); });
  }
  template <typename T>
  Request ibcast(Comm::Data<T>& buf, peer_num root) {
    return start_nonblocking([&] { bcast(buf, root); });
  }
  Request ibarrier() {
    return start_nonblocking([&] { barrier(); });
  }
  template <typename S, typename R>
  Request igather(Comm::Data<S>& sendbuf, Comm::Data<R>& recvbuf, peer_num root) {
    return start_nonblocking([&] { gather(sendbuf, recvbuf, root); });
  }
  template <typename S, typename R>
  Request iscatter(Comm::Data<S>& sendbuf, Comm::Data<R>& recvbuf, peer_num root) {
    return start_nonblocking([&] { scatter(sendbuf, recvbuf, root); });
  }
  template <typename T>
  Request ireduce(Comm::Data<T>& sendbuf, Comm::Data<T>& recvbuf, peer_num root,
                  Utils::Function<T> f) {
    auto fn = std::make_shared<const Utils::Function<T>>(std::move(f));
    return start_nonblocking(
        [&] { reduce_bytes(Comm::cbytes_of(sendbuf), Comm::bytes_of(recvbuf), root, fn->op()); },
        fn);
  }
  template <typename T>
  Request iallreduce(Comm::Data<T>& sendbuf, Comm::Data<T>& recvbuf, Utils::Function<T> f) {
    auto fn = std::make_shared<const Utils::Function<T>>(std::move(f));
    return start_nonblocking(
        [&] { allreduce_bytes(Comm::cbytes_of(sendbuf), Comm::bytes_of(recvbuf), fn->op()); }, fn);
  }
  template <typename T>
  Request iscan(Comm::Data<T>& sendbuf, Comm::Data<T>& recvbuf, Utils::Function<T> f) {
    auto fn = std::make_shared<const Utils::Function<T>>(std::move(f));
    return start_nonblocking(
        [&] { scan_bytes(Comm::cbytes_of(sendbuf), Comm::bytes_of(recvbuf), fn->op()); }, fn);
  }
  template <typename S, typename R>
  Request iallgather(Comm::Data<S>& sendbuf, Comm::Data<R>& recvbuf) {
    return start_nonblocking([&] { allgather(sendbuf, recvbuf); });
  }
  template <typename S, typename R>
  Request ialltoall(Comm::Data<S>& sendbuf, Comm::Data<R>& recvbuf) {
    return start_nonblocking([&] { alltoall(sendbuf, recvbuf); });
  }
  template <typename T>
  Request ireduce_scatter(Comm::Data<T>& sendbuf, Comm::Data<T>& recvbuf, Utils::Function<T> f) {
    auto fn = std::make_shared<const Utils::Function<T>>(std::move(f));
    return start_nonblocking(
        [&] { reduce_scatter_bytes(Comm::cbytes_of(sendbuf), Comm::bytes_of(recvbuf), fn->op()); },
        fn);
  }
  // The counts are copied at the call: they may change once it returns.
  template <typename S, typename R>
  Request igatherv(Comm::Data<S>& send, Comm::Data<R>& recv,
                   const std::vector<std::size_t>& recv_counts, peer_num root) {
    return start_nonblocking([&] { gatherv(send, recv, recv_counts, root); });
  }
  template <typename S, typename R>
  Request iscatterv(Comm::Data<S>& send, const std::vector<std::size_t>& send_counts,
                    Comm::Data<R>& recv, peer_num root) {
    return start_nonblocking([&] { scatterv(send, send_counts, recv, root); });
  }
  template <typename S, typename R>
  Request iallgatherv(Comm::Data<S>& send, Comm::Data<R>& recv,
                      const std::vector<std::size_t>& recv_counts) {
    return start_nonblocking([&] { allgatherv(send, recv, recv_counts); });
  }
  template <typename S, typename R>
  Request ialltoallv(Comm::Data<S>& send, const std::vector<std::size_t>& send_counts,
                     Comm::Data<R>& recv, const std::vector<std::size_t>& recv_counts) {
    return start_nonblocking([&] { alltoallv(send, send_counts, recv, recv_counts); });
  }

  /// The byte-level non-blocking entry point (used by the templates above and the
  /// Python module): runs `blocking_call`, which must make exactly one call of this
  /// communicator (a *_bytes function, send, barrier, ...), up to the point where
  /// the transfer would start, and hands the transfer to a worker. `keep` is held
  /// until the transfer is done (what the call's ReduceOp points to). UsageError if
  /// `blocking_call` makes no call or two.
  Request start_nonblocking(const std::function<void()>& blocking_call,
                            std::shared_ptr<const void> keep = {});

  // ---- sub-communicators ------------------------------------------------------
  /// Collective over this communicator: the peers that pass the same color >= 0
  /// form a new communicator, ranked by (key, rank here); a peer passing a color
  /// < 0 joins none and gets nullptr. Costs one allgather of (color, key) here.
  /// The new communicator uses this one's configuration, hint, policy and channel
  /// objects (no channel is created, registered or connected again): its messages
  /// travel over the same connections and stores, kept apart by the
  /// sub-communicator's id in every tag and object key, so messages of parent and
  /// children never mix whatever the interleaving. A sub-communicator is usable
  /// while the communicator that owns the channels lives (calls after that raise
  /// UsageError); its destructor never finalizes those channels. Splits of a split
  /// work the same way. Sharing channels, a communicator and its sub-communicators
  /// are one communicator for thread safety: call them from one thread at a time.
  /// See docs/collectives.md, "Sub-communicators".
  std::unique_ptr<Communicator> split(int color, int key);
  /// split(0, peer_id()): the same group in the same order, with its own tag space
  /// (for a library that must not see the caller's messages).
  std::unique_ptr<Communicator> dup();

  // ---- channels and policy --------------------------------------------------
  /// What the policy optimises for. Set it identically on every peer (it is an
  /// input of the channel choice, which all peers must make the same way).
  void hint(Utils::Hint h) { hint_ = h; }
  Utils::Hint get_hint() const { return hint_; }

  /// Adds (or replaces) a channel; it is initialised for this communicator.
  void register_channel(std::string name, std::shared_ptr<Comm::Channel> channel);
  void set_channel_policy(std::shared_ptr<Utils::ChannelPolicy> policy);
  const Utils::ChannelMap& channels() const { return channels_; }
  /// The channel the policy picks for an operation (what the next call would use).
  std::string channel_for(const Utils::OperationInfo& info) const;

  // ---- byte-level entry points (used by the templates and the Python module) --
  // Under start_nonblocking the spans' memory must stay valid until the Request
  // completes.
  void send_bytes(Comm::ConstBytes data, peer_num dest);
  Status recv_bytes(Comm::Bytes data, peer_num src);
  void bcast_bytes(Comm::Bytes data, peer_num root);
  void gather_bytes(Comm::ConstBytes send, Comm::Bytes recv, peer_num root);
  void scatter_bytes(Comm::ConstBytes send, Comm::Bytes recv, peer_num root);
  void reduce_bytes(Comm::ConstBytes send, Comm::Bytes recv, peer_num root,
                    const Utils::ReduceOp& op);
  void allreduce_bytes(Comm::ConstBytes send, Comm::Bytes recv, const Utils::ReduceOp& op);
  void scan_bytes(Comm::ConstBytes send, Comm::Bytes recv, const Utils::ReduceOp& op);
  void allgather_bytes(Comm::ConstBytes send, Comm::Bytes recv);
  void alltoall_bytes(Comm::ConstBytes send, Comm::Bytes recv);
  void reduce_scatter_bytes(Comm::ConstBytes send, Comm::Bytes recv, const Utils::ReduceOp& op);
  // Variable-size forms: the counts are in bytes, one per peer.
  void gatherv_bytes(Comm::ConstBytes send, Comm::Bytes recv,
                     const std::vector<std::size_t>& recv_bytes_per_peer, peer_num root);
  void scatterv_bytes(Comm::ConstBytes send, const std::vector<std::size_t>& send_bytes_per_peer,
                      Comm::Bytes recv, peer_num root);
  void allgatherv_bytes(Comm::ConstBytes send, Comm::Bytes recv,
                        const std::vector<std::size_t>& recv_bytes_per_peer);
  void alltoallv_bytes(Comm::ConstBytes send, const std::vector<std::size_t>& send_bytes_per_peer,
                       Comm::Bytes recv, const std::vector<std::size_t>& recv_bytes_per_peer);

  /// Counts in elements of `elem_size` bytes, as bytes (UsageError naming `op` and
  /// `name` when a product overflows). Used by the templates and the Python module.
  static std::vector<std::size_t> counts_in_bytes(const char* op, const char* name,
                                                  const std::vector<std::size_t>& counts,
                                                  std::size_t elem_size);
  /// UsageError unless `bytes` is a whole number of `elem_size`-byte elements.
  static void check_elements(const char* op, const char* what, std::size_t bytes,
                             std::size_t elem_size);

 private:
  struct Selected;
  Selected select(Utils::Operation op, std::size_t bytes, const Utils::ReduceOp* f);
  // The one dispatch path of every operation (communicator.cpp).
  template <typename What, typename P2P, typename Store>
  void run(Utils::Operation op, std::size_t bytes, const Utils::ReduceOp* f, std::uint32_t& seq,
           const What& what, const P2P& p2p, const Store& store);
  // Runs `task` on a worker (started on first use) and returns its request.
  void submit(std::function<void(detail::RequestState&)> task);
  void check_peer(const char* what, peer_num p, const char* role) const;
  // Where the next message from `src` (or any_source) waits: probe/iprobe/recv.
  struct Found;
  std::optional<Found> find_message(peer_num src, bool block, const std::string& what);
  void create_channels();
  // A sub-communicator of `parent` (split.cpp): rank `peer_id` of the members
  // to_parent (ranks in the parent), tag space `comm_id`, ids `avoid` taken.
  Communicator(const Communicator& parent, peer_num peer_id, const std::vector<peer_num>& to_parent,
               std::uint32_t comm_id, std::vector<std::uint32_t> avoid);

  peer_num peer_id_;
  peer_num num_peers_;
  std::string comm_name_;
  unsigned faas_memory_;
  Config config_;
  Utils::Hint hint_ = Utils::Hint::cheap;
  Utils::ChannelMap channels_;
  std::shared_ptr<Utils::ChannelPolicy> policy_;
  // The default policy is a pure function of the OperationInfo, so its answers are
  // remembered (the models cost a few hundred ns per call, as much as a small
  // message's whole latency). A user's policy is asked every time.
  bool policy_is_default_ = true;
  std::map<std::tuple<int, std::size_t, int, bool, bool, std::size_t>, std::string> choice_cache_;
  // Sequence numbers that tag messages: one counter for collectives (every peer
  // calls them in the same order) and one per peer and direction for send/recv.
  std::uint32_t coll_seq_ = 0;
  std::vector<std::uint32_t> send_seq_;
  std::vector<std::uint32_t> recv_seq_;
  // Sub-communicators (split.cpp). comm_id_ is this communicator's Tag::comm (0
  // when it owns its channels). Every member counts its splits identically, and
  // remembers the ids its ancestors hold and all its splits handed out (every
  // color's, not only its own), so a new id never repeats one of them.
  // alive_ expires with this communicator: adapters over its channels check it.
  std::uint32_t comm_id_ = 0;
  std::uint32_t split_count_ = 0;
  std::vector<std::uint32_t> taken_ids_;
  std::shared_ptr<const int> alive_ = std::make_shared<const int>(0);
  // Non-blocking operations (request.cpp, worker_pool.h). While start_nonblocking
  // runs its call, starting_ is set and run() submits the transfer (holding
  // start_keep_) instead of running it, leaving its request in started_. The pool
  // is declared last: it is destroyed first, waiting for the operations that use
  // the members above.
  bool starting_ = false;
  std::shared_ptr<const void> start_keep_;
  std::shared_ptr<detail::RequestState> started_;
  std::unique_ptr<detail::WorkerPool> pool_;
};

}  // namespace FMI
