// The Direct channel: TCP connections between functions, opened by hole punching
// through the rendezvous server (mesh.h). See docs/direct.md.
//
// Each message on a connection is a 16-byte header (tag u64, payload length u64,
// both big-endian) followed by the payload. The receiver knows what it expects and
// checks both fields, so a peer that sends another operation or another size is
// reported (PeerError naming both) instead of silently corrupting the stream.
// With encryption (default) the payload travels as sealed records after the
// header (channels/direct/secure.h).
//
// Threads (issue 18): every public method may be called from several threads at
// once. One lock guards the channel's state; progress is leader/followers: each
// call registers a Waiter (its transfers, the connections it waits for, or its
// probe) in a channel-wide set, and whichever thread holds the leader role drives
// ALL registered waiters (one poll over the union of their sockets, headers read
// and handed to the receive that wants them or parked, queued sends written),
// releasing the lock only while it sleeps in poll or yields. The others wait on a
// condition variable with their own deadline; when the leader's own call is done
// it gives the role up and a waiting thread takes it. A thread that registers
// while the leader sleeps in poll wakes it through an eventfd. docs/direct.md
// "Threads" has the rules (stream ownership, send queues, failures).
#pragma once

#include <sys/uio.h>

#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <vector>

#include "channels/common/tag_matcher.h"
#include "channels/direct/config.h"
#include "channels/direct/mesh.h"
#include "channels/direct/spin.h"
#include "fmi/channel.h"
#include "wire/net.h"

namespace FMI::Comm {

class DirectChannel final : public PeerToPeerChannel {
 public:
  /// `cfg` holds checked values (descriptor.cpp checks them).
  explicit DirectChannel(DirectConfig cfg);
  ~DirectChannel() override;

  void init(const ChannelContext& ctx) override;
  void finalize() noexcept override;
  std::chrono::milliseconds max_timeout() const override { return cfg_.max_timeout; }

  void send(Utils::peer_num dest, ConstBytes data, Tag tag, Utils::Deadline deadline) override;
  void recv(Utils::peer_num src, Bytes out, Tag tag, Utils::Deadline deadline) override;
  void sendrecv(Utils::peer_num dest, ConstBytes data, Utils::peer_num src, Bytes out, Tag tag,
                Utils::Deadline deadline) override;
  void connect_all(Utils::Deadline deadline) override;
  void connect(std::span<const Utils::peer_num> peers, Utils::Deadline deadline) override;
  std::size_t max_connections() const override { return cfg_.max_connections; }
  std::optional<Probed> probe(std::span<const Envelope> wanted, bool block,
                              Utils::Deadline deadline) override;

  /// The local endpoint registered with the server (tests, logs).
  std::string local_endpoint() const;
  /// How many other peers this channel has an open connection to (tests, logs).
  unsigned connected_peers() const;
  /// The most connections (established, or being closed) this channel held at once
  /// since init (tests, fmi-bench).
  std::size_t max_open_connections() const;

  struct Transfer;
  struct Waiter;
  struct Inbound;
  struct Closing;

 private:
  using Lock = std::unique_lock<std::mutex>;
  void check_peer(Utils::peer_num p, const char* op) const;
  void open_mesh_for(Tag tag, Utils::Deadline deadline, Lock& lk);
  void ensure(std::span<const Utils::peer_num> peers, Utils::Deadline deadline, const char* op,
              Lock& lk, const Envelope* take = nullptr);
  bool connected(const Waiter& w) const;
  void connect_all_locked(Utils::Deadline deadline, Lock& lk);
  // The progress engine.
  void transfer(std::span<Transfer> ts, Utils::Deadline deadline, const char* op, Lock& lk);
  void wait(Waiter& w, Lock& lk);
  void lead(Waiter& w, Lock& lk);
  bool pump();
  bool pump_one(Waiter& w);
  // quiet_since: when the caller's wait began (its last progress); the default
  // (long ago) watches everything.
  void poll_once(Utils::Deadline until, Lock& lk, Utils::Clock::time_point quiet_since = {});
  void retire(Waiter& w);
  void wake_leader();
  std::optional<Probed> probed(std::span<const Envelope> wanted) const;
  bool is_done(Waiter& w);
  [[noreturn]] void timed_out(Waiter& w, Utils::Clock::time_point start);
  // The data path (one transfer's step, called by the leader).
  bool step(Transfer& t);
  [[noreturn]] void lose(Utils::peer_num peer, const std::string& why, const char* hint);
  void self_recv(Bytes out, Tag tag);
  ssize_t read_stream(Utils::peer_num peer, int fd, struct iovec* iov, int n);
  void unread(Utils::peer_num peer, const std::byte* a, std::size_t na, const std::byte* b,
              std::size_t nb);
  bool other_header(Transfer& t, Tag got, std::uint64_t len, const std::byte* rest,
                    std::size_t nrest);
  void check_park_budget(const Transfer& t, Tag got, std::uint64_t len);
  void start_parking(Transfer& t, Tag got, std::uint64_t len);
  void finish_parking(Utils::peer_num peer);
  bool park_step(Transfer& t);
  bool take_parked(Utils::peer_num src, Bytes out, Tag tag);
  void prepare(Transfer& t);
  [[noreturn]] void mismatch(Transfer& t, Tag got, std::uint64_t len);
  // Encrypted connections (channels/direct/secure.h).
  bool sealed_send(Transfer& t);
  bool sealed_recv(Transfer& t);
  bool sealed_park_step(Transfer& t);
  [[noreturn]] void io_failed(Transfer& t, ssize_t r);
  [[noreturn]] void forged(Utils::peer_num peer, Tag tag, std::size_t record);
  // The connection budget (docs/direct.md "Connection budget").
  bool bind(Transfer& t, bool reconnect = true);
  bool control(Transfer& t, std::uint64_t len, std::size_t nrest);
  void want_or_defer(Waiter& w);
  bool admit(Utils::peer_num p);
  bool settling() const;
  bool evict_one(std::span<const Utils::peer_num> keep);
  void try_ack(Utils::peer_num p);
  bool closed_by_peer(Transfer& t);
  void drain(Utils::peer_num p);
  bool drainable(Utils::peer_num p);
  void rewant(Utils::peer_num p);
  void after_handshakes();
  std::size_t held() const;

  DirectConfig cfg_;
  Direct::SpinBudget spin_;  // busy-retry before blocking in poll (spin.h)
  Direct::RelayMode relay_;
  ChannelContext ctx_;
  bool initialised_ = false;
  std::unique_ptr<Direct::Mesh> mesh_;
  bool meshed_ = false;  // the full mesh was opened (before the first collective)
  // Messages that arrived while no receive waited for their tag, and messages a
  // peer sent to itself (source = own id), matched later by (source, tag).
  TagMatcher matcher_;
  // Per source peer: who reads its stream, and a message being parked.
  std::vector<Inbound> in_;
  // Per destination peer: sends in call order; only the first one writes, so the
  // bytes (and sealed records) of two messages never interleave.
  std::vector<std::vector<Transfer*>> out_;
  std::vector<bool> probe_wanted_;  // a non-blocking probe asked for this connection
  // The connection budget: more peers than cfg_.max_connections + 1 (lru_), the least
  // recently used idle connection is closed by a CLOSE/ACK exchange (closing_, one per
  // peer at most); `drains_` read connections that no receive reads (a CLOSE may come).
  bool lru_ = false;
  std::vector<std::uint64_t> last_used_;  // per peer, from use_clock_
  std::uint64_t use_clock_ = 0;
  std::vector<std::unique_ptr<Closing>> closing_;
  std::size_t closing_n_ = 0;
  std::vector<Transfer> drains_;
  std::vector<Utils::peer_num> drain_at_;  // the peers of the drain entries of fds_
  // When poll_once watches the idle connections under the budget, and when it last
  // chose to (a close in progress has them watched on every poll regardless).
  static constexpr std::chrono::milliseconds kDrainAfter{20}, kDrainEvery{100};
  Utils::Clock::time_point drains_polled_{};
  std::vector<bool> rewanted_;  // wanted for transfers that lost their connection
  std::size_t rewanted_n_ = 0;
  std::size_t max_open_ = 0;
  std::uint64_t controls_ = 0;  // CLOSE/ACK frames read (progress of the leader)

  // Threads: everything above is guarded by mu_.
  mutable std::mutex mu_;
  std::condition_variable cv_;    // a waiter finished, or the leader role is free
  std::vector<Waiter*> waiters_;  // every call in progress
  bool leading_ = false;          // some thread drives progress
  bool polling_ = false;          // ... and sleeps in poll without mu_
  unsigned sleepers_ = 0;         // threads waiting on cv_
  std::uint64_t pumps_ = 0;       // passes of the leader over the waiters
  Wire::Socket wake_;             // eventfd: wakes the leader from poll
  std::vector<pollfd> fds_;       // the leader's, reused across polls
};

}  // namespace FMI::Comm
