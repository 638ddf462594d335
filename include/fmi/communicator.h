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
// Sizes in error messages are in bytes. Each call is bounded by the chosen channel's max_timeout and throws
// FMI::TimeoutError after it; every error message starts with the call
// ("recv from peer 2 via Redis: ...").
#pragma once

#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "fmi/channel.h"
#include "fmi/config.h"
#include "fmi/data.h"
#include "fmi/errors.h"
#include "fmi/function.h"
#include "fmi/policy.h"
#include "fmi/types.h"

namespace FMI {

class Communicator {
 public:
  using peer_num = Utils::peer_num;

  /// Loads the configuration file and creates every enabled channel.
  /// Throws ConfigError (bad file) or UsageError (peer_id >= num_peers).
  Communicator(peer_num peer_id, peer_num num_peers, std::string config_path,
               std::string comm_name, unsigned int faas_memory = 128);
  /// Same, from an already loaded configuration.
  Communicator(peer_num peer_id, peer_num num_peers, const Config& config,
               std::string comm_name, unsigned int faas_memory = 128);
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
  template <typename T>
  void recv(Comm::Data<T>& buf, peer_num src) {
    recv_bytes(Comm::bytes_of(buf), src);
  }

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
  void reduce(Comm::Data<T>& sendbuf, Comm::Data<T>& recvbuf, peer_num root,
              Utils::Function<T> f) {
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
  void send_bytes(Comm::ConstBytes data, peer_num dest);
  void recv_bytes(Comm::Bytes data, peer_num src);
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

 private:
  struct Selected;
  Selected select(Utils::Operation op, std::size_t bytes, const Utils::ReduceOp* f);
  // The one dispatch path of every operation (communicator.cpp).
  template <typename What, typename P2P, typename Store>
  void run(Utils::Operation op, std::size_t bytes, const Utils::ReduceOp* f, std::uint32_t& seq,
           const What& what, const P2P& p2p, const Store& store);
  void check_peer(const char* what, peer_num p, const char* role) const;
  void create_channels();

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
};

}  // namespace FMI
