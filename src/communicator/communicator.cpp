// The Communicator: checks arguments, asks the policy for a channel, and runs the
// algorithm family that fits the channel's kind. It holds no algorithm itself.
#include "fmi/communicator.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <thread>

#include "channels/registry.h"
#include "collectives/collectives.h"
#include "communicator/request.h"
#include "communicator/worker_pool.h"
#include "fmi/inproc.h"

namespace FMI {

using Comm::Bytes;
using Comm::ConstBytes;
using Utils::Operation;

struct Communicator::Selected {
  Comm::Channel* channel;
  const std::string* name;
  coll::Context ctx;
};

Communicator::Communicator(peer_num peer_id, peer_num num_peers, std::string config_path,
                           std::string comm_name, unsigned int faas_memory)
    : Communicator(peer_id, num_peers, Config::load(config_path), std::move(comm_name),
                   faas_memory) {}

Communicator::Communicator(peer_num peer_id, peer_num num_peers, const Config& config,
                           std::string comm_name, unsigned int faas_memory)
    : peer_id_(peer_id),
      num_peers_(num_peers),
      comm_name_(std::move(comm_name)),
      faas_memory_(faas_memory),
      config_(config),
      send_seq_(num_peers, 0),
      recv_seq_(num_peers, 0) {
  if (num_peers == 0) FMI_THROW(UsageError, "Communicator: num_peers must be at least 1");
  if (peer_id >= num_peers)
    FMI_THROW(UsageError, "Communicator: peer_id ", peer_id, " is out of range for ", num_peers,
              " peers (valid: 0..", num_peers - 1, ")");
  if (comm_name_.empty()) FMI_THROW(UsageError, "Communicator: comm_name must not be empty");
  policy_ = Utils::make_default_policy(config_);
  create_channels();
}

void Communicator::create_channels() {
  for (const Comm::ChannelDescriptor* d : Comm::channels())
    if (config_.enabled(d->name)) register_channel(d->name, d->make(config_));
}

Communicator::~Communicator() {
  pool_.reset();  // waits for the non-blocking operations still running
  for (auto& [name, ch] : channels_) ch->finalize();
}

void Communicator::register_channel(std::string name, std::shared_ptr<Comm::Channel> channel) {
  if (!channel) FMI_THROW(UsageError, "register_channel: channel '", name, "' is null");
  channel->init(Comm::ChannelContext{peer_id_, num_peers_, comm_name_, faas_memory_});
  auto& slot = channels_[std::move(name)];
  if (slot) slot->finalize();
  slot = std::move(channel);
  choice_cache_.clear();
}

void Communicator::set_channel_policy(std::shared_ptr<Utils::ChannelPolicy> policy) {
  if (!policy) FMI_THROW(UsageError, "set_channel_policy: policy is null");
  policy_ = std::move(policy);
  policy_is_default_ = false;
  choice_cache_.clear();
}

std::string Communicator::channel_for(const Utils::OperationInfo& info) const {
  if (channels_.empty())
    FMI_THROW(UsageError, Utils::to_string(info.op),
              ": no channel available (enable a backend in the config or call register_channel)");
  std::string name = policy_->get_channel(info, channels_);
  if (!channels_.count(name))
    FMI_THROW(UsageError, Utils::to_string(info.op), ": the channel policy chose '", name,
              "', which is not a registered channel");
  return name;
}

Communicator::Selected Communicator::select(Operation op, std::size_t bytes,
                                            const Utils::ReduceOp* f) {
  Utils::OperationInfo info;
  info.op = op;
  info.data_size = bytes;
  info.num_peers = num_peers_;
  if (f) {
    info.commutative = f->commutative;
    info.associative = f->associative;
    info.granularity = f->granularity;
  }
  info.hint = hint_;
  info.faas_memory = faas_memory_;
  Utils::ChannelMap::iterator it;
  if (channels_.size() == 1 && policy_is_default_) {
    it = channels_.begin();
  } else if (policy_is_default_) {
    const auto key = std::make_tuple(int(op), bytes, int(hint_), info.commutative, info.associative,
                                     info.granularity);
    auto c = choice_cache_.find(key);
    if (c == choice_cache_.end()) {
      if (choice_cache_.size() > 4096) choice_cache_.clear();  // bounded memory
      c = choice_cache_.emplace(key, channel_for(info)).first;
    }
    it = channels_.find(c->second);
  } else {
    it = channels_.find(channel_for(info));
  }
  Selected s{it->second.get(), &it->first, {}};
  s.ctx.rank = peer_id_;
  s.ctx.size = num_peers_;
  s.ctx.tag = Comm::Tag{op, 0};
  s.ctx.deadline = Utils::Clock::now() + s.channel->max_timeout();
  return s;
}

void Communicator::check_peer(const char* what, peer_num p, const char* role) const {
  if (p == any_source)
    FMI_THROW(UsageError, what, ": ", role,
              " is any_source, which only recv, probe and iprobe "
              "accept as their source");
  if (p >= num_peers_)
    FMI_THROW(UsageError, what, ": ", role, " ", p, " is out of range for ", num_peers_,
              " peers (valid: 0..", num_peers_ - 1, ")");
}

namespace {
// Re-throws `e` as the same type with the operation the user called in front:
// a channel knows its own request, not which API call it serves.
template <typename E>
[[noreturn]] void rethrow_as(const E& e, const std::string& what) {
  throw E(what + ": " + e.what());
}

[[noreturn]] void size_error(const char* op, const char* what, std::size_t have,
                             const std::string& need) {
  FMI_THROW(UsageError, op, ": ", what, " holds ", have, " bytes, ", need);
}

// "needs num_peers x send = 4 x 3 = 12": the requirement of the gather family.
std::string needs_n_times(Utils::peer_num n, const char* name, std::size_t each) {
  return "needs num_peers x " + std::string(name) + " = " + std::to_string(n) + " x " +
         std::to_string(each) + " = " + std::to_string(each * n);
}

// Runs `body`; its errors are re-thrown as the same type with `prefix()` in front
// ("recv from peer 2 via Redis: ..."), since a channel knows its own request, not
// the API call it serves.
template <typename Prefix, typename Body>
void guarded(const Prefix& prefix, const Body& body) {
  try {
    body();
  } catch (const TimeoutError& e) {
    rethrow_as(e, prefix());
  } catch (const PeerError& e) {
    rethrow_as(e, prefix());
  } catch (const ChannelError& e) {
    rethrow_as(e, prefix());
  } catch (const UsageError& e) {
    rethrow_as(e, prefix());
  } catch (const ConfigError& e) {
    rethrow_as(e, prefix());
  }
}

// Runs an operation on the chosen channel: the algorithm family that matches the
// channel's kind, errors prefixed with what() + " via <channel>".
template <typename What, typename P2P, typename Store>
void execute(Comm::Channel& channel, const std::string& name, const coll::Context& ctx,
             const What& what, const P2P& p2p, const Store& store) {
  guarded([&] { return what() + " via " + name; },
          [&] {
            if (channel.kind() == Comm::ChannelKind::peer_to_peer)
              p2p(static_cast<Comm::PeerToPeerChannel&>(channel), ctx);
            else
              store(static_cast<Comm::ObjectStoreChannel&>(channel), ctx);
          });
}
}  // namespace

// Every operation: the policy's channel and the next tag of `seq`, in the calling
// thread; then the transfer, here (blocking calls, unchanged: no thread, no
// allocation on this path) or, under start_nonblocking, on a worker. The lambdas
// capture by value, so that a worker's copy owns the spans, options and counts.
template <typename What, typename P2P, typename Store>
void Communicator::run(Operation op, std::size_t bytes, const Utils::ReduceOp* f,
                       std::uint32_t& seq, const What& what, const P2P& p2p, const Store& store) {
  if (starting_ && started_)
    FMI_THROW(UsageError, "start_nonblocking: the call starts more than one operation (", what(),
              " is the second)");
  Selected s = select(op, bytes, f);
  s.ctx.tag.seq = seq++;
  if (!starting_) {
    execute(*s.channel, *s.name, s.ctx, what, p2p, store);
    return;
  }
  // The worker holds the channel: a register_channel that replaces it meanwhile
  // must not destroy it under the transfer.
  submit([ch = channels_.find(*s.name)->second, name = *s.name, ctx = s.ctx, what, p2p, store,
          keep = std::move(start_keep_)](detail::RequestState& st) mutable {
    std::exception_ptr error;
    try {
      execute(*ch, name, ctx, what, p2p, store);
    } catch (...) {
      error = std::current_exception();
    }
    // What the operation held goes before the waiter wakes.
    keep.reset();
    ch.reset();
    detail::complete(st, std::move(error));
  });
}

void Communicator::submit(std::function<void(detail::RequestState&)> task) {
  auto st = std::make_shared<detail::RequestState>();
  if (!pool_) pool_ = std::make_unique<detail::WorkerPool>();
  // The worker holds no reference: the Request owns the state, and every way of
  // dropping a Request waits for completion first, after which the worker no
  // longer touches it. So the state, and the operation's exception in it, is
  // always destroyed by the thread that owns the request, never by a worker.
  pool_->submit([raw = st.get(), task = std::move(task)]() mutable { task(*raw); });
  started_ = std::move(st);
}

Request Communicator::start_nonblocking(const std::function<void()>& blocking_call,
                                        std::shared_ptr<const void> keep) {
  if (starting_)
    FMI_THROW(UsageError, "start_nonblocking: called from inside another non-blocking start");
  struct Reset {
    Communicator& c;
    ~Reset() {
      c.starting_ = false;
      c.start_keep_.reset();
      // An operation submitted by a call that then threw: wait for it (a Request
      // that goes out of scope), it uses the caller's buffers.
      if (c.started_) Request(std::move(c.started_));
    }
  } reset{*this};
  starting_ = true;
  start_keep_ = std::move(keep);
  blocking_call();
  if (!started_)
    FMI_THROW(UsageError, "start_nonblocking: the call started no operation of this communicator");
  return Request(std::move(started_));
}

namespace {
std::string rooted(const char* op, Utils::peer_num root) {
  return std::string(op) + " (root " + std::to_string(root) + ")";
}
// The prefix of an operation that has no argument worth naming.
struct Named {
  const char* op;
  std::string operator()() const { return op; }
};
}  // namespace

// ---- point to point -----------------------------------------------------------

void Communicator::send_bytes(ConstBytes data, peer_num dest) {
  check_peer("send", dest, "destination peer");
  if (dest == peer_id_) FMI_THROW(UsageError, "send: peer ", peer_id_, " cannot send to itself");
  run(
      Operation::send, data.size(), nullptr, send_seq_[dest],
      [=] { return "send to peer " + std::to_string(dest); },
      [=](auto& ch, const coll::Context& c) { ch.send(dest, data, c.tag, c.deadline); },
      [=](auto& ch, const coll::Context& c) { coll::store::send(ch, c, data, dest); });
}

struct Communicator::Found {
  Status status;
  Comm::Channel* channel;
  const std::string* name;
};

Status Communicator::recv_bytes(Bytes data, peer_num src) {
  if (src == any_source) {
    // A receive from any source claims the next sequence number of whichever peer
    // sent first; on a worker that would race with this thread's own receives from
    // that peer (which number is whose), so the non-blocking form leaves the
    // matching to the caller: iprobe, then irecv from the source it names.
    if (starting_)
      FMI_THROW(UsageError,
                "irecv from any_source is not supported: use iprobe(any_source) and then irecv "
                "from the source it returns (docs/nonblocking.md)");
    // The message is received from the channel the probe found it on: with
    // several channels that is where its sender's policy put it.
    const std::string what = "recv from any source";
    const Found f = *find_message(src, true, what);
    const peer_num from = f.status.source;
    coll::Context c{peer_id_, num_peers_, Comm::Tag{Operation::send, recv_seq_[from]++},
                    Utils::Clock::now() + f.channel->max_timeout()};
    guarded(
        [&] { return what + " (peer " + std::to_string(from) + ") via " + *f.name; },
        [&] {
          if (f.channel->kind() == Comm::ChannelKind::peer_to_peer)
            static_cast<Comm::PeerToPeerChannel&>(*f.channel).recv(from, data, c.tag, c.deadline);
          else
            coll::store::recv(static_cast<Comm::ObjectStoreChannel&>(*f.channel), c, data, from);
        });
    return Status{from, data.size()};
  }
  check_peer("recv", src, "source peer");
  if (src == peer_id_)
    FMI_THROW(UsageError, "recv: peer ", peer_id_, " cannot receive from itself");
  run(
      Operation::send, data.size(), nullptr, recv_seq_[src],
      [=] { return "recv from peer " + std::to_string(src); },
      [=](auto& ch, const coll::Context& c) { ch.recv(src, data, c.tag, c.deadline); },
      [=](auto& ch, const coll::Context& c) { coll::store::recv(ch, c, data, src); });
  return Status{src, data.size()};
}

// ---- probe ------------------------------------------------------------------------
//
// The next message from peer s is the one tagged (send, recv_seq_[s]): a probe
// asks the channel for one envelope (or object key) per wanted source, each with
// that source's next sequence number, so that per-pair order is kept whatever
// the source. Which channel: a send's channel is chosen by its size, which the
// receiver of a probe does not know. With one channel (the usual case) the probe
// blocks on it. With several, every registered channel is asked without waiting,
// in rounds with a pause that grows from 100 us to 100 ms (at most ~10 rounds per
// second of waiting, each one request to each store channel): any channel the
// sender's policy may have picked is seen. See docs/collectives.md.

std::optional<Communicator::Found> Communicator::find_message(peer_num src, bool block,
                                                              const std::string& what) {
  std::vector<peer_num> from;
  if (src == any_source) {
    for (peer_num p = 0; p < num_peers_; ++p)
      if (p != peer_id_) from.push_back(p);
    if (from.empty() && !block) return std::nullopt;  // nothing can ever arrive
    if (from.empty())
      FMI_THROW(UsageError, what, ": peer ", peer_id_,
                " is the only peer of its communicator: no other peer can send to it");
  } else {
    check_peer(what.c_str(), src, "source peer");
    if (src == peer_id_)
      FMI_THROW(UsageError, what, ": peer ", peer_id_, " cannot receive from itself");
    from.push_back(src);
  }
  if (channels_.empty())
    FMI_THROW(UsageError, what,
              ": no channel available (enable a backend in the config or call register_channel)");
  std::vector<Comm::Envelope> envelopes;
  std::vector<Comm::ObjectKey> keys;
  for (peer_num p : from) {
    const Comm::Tag tag{Operation::send, recv_seq_[p]};
    envelopes.push_back({p, tag});
    keys.push_back(Comm::ObjectKey{tag, p, peer_id_});
  }
  auto max_wait = std::chrono::milliseconds(0);
  for (const auto& [name, ch] : channels_) max_wait = std::max(max_wait, ch->max_timeout());
  const auto start = Utils::Clock::now();
  const Utils::Deadline deadline = start + max_wait;
  // One look at each channel (a wait on the only one when `wait`).
  auto look = [&](bool wait) -> std::optional<Found> {
    for (const auto& [name, ch] : channels_) {
      std::optional<Comm::Probed> p;
      guarded([&] { return what + " via " + name; },
              [&] {
                if (ch->kind() == Comm::ChannelKind::peer_to_peer)
                  p = static_cast<Comm::PeerToPeerChannel&>(*ch).probe(envelopes, wait, deadline);
                else
                  p = static_cast<Comm::ObjectStoreChannel&>(*ch).probe(keys, wait, deadline);
              });
      if (p) {
        if (p->index >= from.size())
          FMI_THROW(ChannelError, what, " via ", name, ": the channel's probe matched entry ",
                    p->index, " of ", from.size());
        return Found{Status{from[p->index], p->bytes}, ch.get(), &name};
      }
    }
    return std::nullopt;
  };
  if (!block || channels_.size() == 1) return look(block);
  auto pause = std::chrono::microseconds(100);
  for (;;) {
    if (auto f = look(false)) return f;
    const auto now = Utils::Clock::now();
    if (now >= deadline)
      FMI_THROW(TimeoutError, what, ": no message from ",
                src == any_source ? std::string("any peer") : "peer " + std::to_string(src),
                " arrived on any of the ", channels_.size(), " channels within ",
                format_duration(now - start));
    std::this_thread::sleep_for(std::min<Utils::Clock::duration>(pause, deadline - now));
    pause = std::min<std::chrono::microseconds>(pause * 2, std::chrono::milliseconds(100));
  }
}

namespace {
std::string probe_what(const char* op, Utils::peer_num src) {
  return std::string(op) +
         (src == any_source ? std::string(" of any source") : " of peer " + std::to_string(src));
}
}  // namespace

Status Communicator::probe(peer_num src) {
  return find_message(src, true, probe_what("probe", src))->status;
}

std::optional<Status> Communicator::iprobe(peer_num src) {
  auto f = find_message(src, false, probe_what("iprobe", src));
  if (!f) return std::nullopt;
  return f->status;
}

// ---- collectives ----------------------------------------------------------------
// The same call on both families: `coll::p2p::X` or `coll::store::X`.
#define FMI_BOTH(call)                                                           \
  [=](Comm::PeerToPeerChannel& ch, const coll::Context& c) { coll::p2p::call; }, \
      [=](Comm::ObjectStoreChannel& ch, const coll::Context& c) { coll::store::call; }

void Communicator::bcast_bytes(Bytes data, peer_num root) {
  check_peer("bcast", root, "root");
  const coll::Options o{root};
  run(
      Operation::bcast, data.size(), nullptr, coll_seq_, [=] { return rooted("bcast", root); },
      FMI_BOTH(bcast(ch, c, data, o)));
}

void Communicator::barrier() {
  const coll::Options o{};
  run(Operation::barrier, 0, nullptr, coll_seq_, Named{"barrier"}, FMI_BOTH(barrier(ch, c, o)));
}

void Communicator::gather_bytes(ConstBytes send, Bytes recv, peer_num root) {
  check_peer("gather", root, "root");
  if (peer_id_ == root && recv.size() != send.size() * num_peers_)
    size_error("gather", "recv buffer on root", recv.size(),
               needs_n_times(num_peers_, "send", send.size()));
  const coll::Options o{root};
  run(
      Operation::gather, send.size(), nullptr, coll_seq_, [=] { return rooted("gather", root); },
      FMI_BOTH(gather(ch, c, send, recv, o)));
}

void Communicator::scatter_bytes(ConstBytes send, Bytes recv, peer_num root) {
  check_peer("scatter", root, "root");
  if (peer_id_ == root && send.size() != recv.size() * num_peers_) {
    if (send.size() % num_peers_ != 0)
      size_error("scatter", "send buffer on root", send.size(),
                 "not divisible by num_peers = " + std::to_string(num_peers_));
    size_error("scatter", "send buffer on root", send.size(),
               needs_n_times(num_peers_, "recv", recv.size()));
  }
  const coll::Options o{root};
  run(
      Operation::scatter, recv.size(), nullptr, coll_seq_, [=] { return rooted("scatter", root); },
      FMI_BOTH(scatter(ch, c, send, recv, o)));
}

namespace {
void check_same(const char* op, ConstBytes send, Bytes recv) {
  if (send.size() != recv.size())
    FMI_THROW(UsageError, op, ": send buffer holds ", send.size(), " bytes, recv buffer holds ",
              recv.size(), " bytes; they must be equal");
}
void check_granular(const char* op, std::size_t bytes, const Utils::ReduceOp& f) {
  if (f.granularity > 0 && bytes % f.granularity != 0)
    FMI_THROW(UsageError, op, ": buffer of ", bytes, " bytes is not a whole number of ",
              f.granularity, "-byte elements");
}
}  // namespace

void Communicator::reduce_bytes(ConstBytes send, Bytes recv, peer_num root,
                                const Utils::ReduceOp& f) {
  check_peer("reduce", root, "root");
  if (peer_id_ == root) check_same("reduce", send, recv);
  check_granular("reduce", send.size(), f);
  const coll::Options o{root};
  run(
      Operation::reduce, send.size(), &f, coll_seq_, [=] { return rooted("reduce", root); },
      FMI_BOTH(reduce(ch, c, send, recv, f, o)));
}

void Communicator::allreduce_bytes(ConstBytes send, Bytes recv, const Utils::ReduceOp& f) {
  check_same("allreduce", send, recv);
  check_granular("allreduce", send.size(), f);
  const coll::Options o{};
  run(Operation::allreduce, send.size(), &f, coll_seq_, Named{"allreduce"},
      FMI_BOTH(allreduce(ch, c, send, recv, f, o)));
}

void Communicator::scan_bytes(ConstBytes send, Bytes recv, const Utils::ReduceOp& f) {
  check_same("scan", send, recv);
  check_granular("scan", send.size(), f);
  const coll::Options o{};
  run(Operation::scan, send.size(), &f, coll_seq_, Named{"scan"},
      FMI_BOTH(scan(ch, c, send, recv, f, o)));
}

void Communicator::allgather_bytes(ConstBytes send, Bytes recv) {
  if (recv.size() != send.size() * num_peers_)
    size_error("allgather", "recv buffer", recv.size(),
               needs_n_times(num_peers_, "send", send.size()));
  const coll::Options o{};
  run(Operation::allgather, send.size(), nullptr, coll_seq_, Named{"allgather"},
      FMI_BOTH(allgather(ch, c, send, recv, o)));
}

void Communicator::alltoall_bytes(ConstBytes send, Bytes recv) {
  if (send.size() % num_peers_ != 0)
    size_error("alltoall", "send buffer", send.size(),
               "not divisible by num_peers = " + std::to_string(num_peers_));
  if (recv.size() != send.size())
    size_error("alltoall", "recv buffer", recv.size(),
               "must equal the send buffer's " + std::to_string(send.size()) + " bytes");
  const coll::Options o{};
  run(Operation::alltoall, send.size() / num_peers_, nullptr, coll_seq_, Named{"alltoall"},
      FMI_BOTH(alltoall(ch, c, send, recv, o)));
}

void Communicator::reduce_scatter_bytes(ConstBytes send, Bytes recv, const Utils::ReduceOp& f) {
  if (send.size() != recv.size() * num_peers_)
    size_error("reduce_scatter", "send buffer", send.size(),
               needs_n_times(num_peers_, "recv", recv.size()));
  check_granular("reduce_scatter", recv.size(), f);
  const coll::Options o{};
  run(Operation::reduce_scatter, recv.size(), &f, coll_seq_, Named{"reduce_scatter"},
      FMI_BOTH(reduce_scatter(ch, c, send, recv, f, o)));
}

// ---- variable-size collectives ---------------------------------------------------
//
// The counts arrive in bytes. Each call checks what this peer can see before
// anything is sent: one count per peer, the counts adding up to the packed buffer,
// this peer's own block matching its count. Counts that differ between peers are
// caught where the mismatched message arrives (the channel's exact-size check).
// The channel is chosen on the mean block, which every peer computes from the same
// counts, except for alltoallv (below).

namespace {
std::size_t counts_total(const char* op, const char* name, const std::vector<std::size_t>& counts,
                         Utils::peer_num n) {
  if (counts.size() != n)
    FMI_THROW(UsageError, op, ": ", name, " has ", counts.size(),
              " entries, needs one per peer (num_peers = ", n, ")");
  std::size_t total = 0;
  for (std::size_t c : counts) {
    if (c > SIZE_MAX - total)
      FMI_THROW(UsageError, op, ": ", name, " add up to more bytes than a buffer can hold");
    total += c;
  }
  return total;
}
void check_total(const char* op, const char* what, std::size_t have, const char* name,
                 std::size_t total) {
  if (have != total)
    FMI_THROW(UsageError, op, ": ", what, " holds ", have, " bytes, ", name, " add up to ", total,
              " bytes");
}
void check_own(const char* op, const char* what, std::size_t have, const char* name,
               Utils::peer_num me, std::size_t count) {
  if (have != count)
    FMI_THROW(UsageError, op, ": ", what, " holds ", have, " bytes, ", name, "[", me,
              "] (this peer's block) is ", count, " bytes");
}
}  // namespace

std::vector<std::size_t> Communicator::counts_in_bytes(const char* op, const char* name,
                                                       const std::vector<std::size_t>& counts,
                                                       std::size_t elem_size) {
  std::vector<std::size_t> bytes(counts.size());
  for (std::size_t p = 0; p < counts.size(); ++p) {
    if (elem_size != 0 && counts[p] > SIZE_MAX / elem_size)
      FMI_THROW(UsageError, op, ": ", name, "[", p, "] = ", counts[p], " elements of ", elem_size,
                " bytes overflow a buffer size");
    bytes[p] = counts[p] * elem_size;
  }
  return bytes;
}

void Communicator::check_elements(const char* op, const char* what, std::size_t bytes,
                                  std::size_t elem_size) {
  if (elem_size > 1 && bytes % elem_size != 0)
    FMI_THROW(UsageError, op, ": ", what, " holds ", bytes, " bytes, not a whole number of ",
              elem_size, "-byte elements (the unit of the counts)");
}

void Communicator::gatherv_bytes(ConstBytes send, Bytes recv,
                                 const std::vector<std::size_t>& counts, peer_num root) {
  check_peer("gatherv", root, "root");
  const std::size_t total = counts_total("gatherv", "recv_counts", counts, num_peers_);
  check_own("gatherv", "send buffer", send.size(), "recv_counts", peer_id_, counts[peer_id_]);
  if (peer_id_ == root)
    check_total("gatherv", "recv buffer on root", recv.size(), "recv_counts", total);
  const coll::Options o{root};
  run(
      Operation::gatherv, total / num_peers_, nullptr, coll_seq_,
      [=] { return rooted("gatherv", root); }, FMI_BOTH(gatherv(ch, c, send, recv, counts, o)));
}

void Communicator::scatterv_bytes(ConstBytes send, const std::vector<std::size_t>& counts,
                                  Bytes recv, peer_num root) {
  check_peer("scatterv", root, "root");
  const std::size_t total = counts_total("scatterv", "send_counts", counts, num_peers_);
  check_own("scatterv", "recv buffer", recv.size(), "send_counts", peer_id_, counts[peer_id_]);
  if (peer_id_ == root)
    check_total("scatterv", "send buffer on root", send.size(), "send_counts", total);
  const coll::Options o{root};
  run(
      Operation::scatterv, total / num_peers_, nullptr, coll_seq_,
      [=] { return rooted("scatterv", root); }, FMI_BOTH(scatterv(ch, c, send, counts, recv, o)));
}

void Communicator::allgatherv_bytes(ConstBytes send, Bytes recv,
                                    const std::vector<std::size_t>& counts) {
  const std::size_t total = counts_total("allgatherv", "recv_counts", counts, num_peers_);
  check_own("allgatherv", "send buffer", send.size(), "recv_counts", peer_id_, counts[peer_id_]);
  check_total("allgatherv", "recv buffer", recv.size(), "recv_counts", total);
  const coll::Options o{};
  run(Operation::allgatherv, total / num_peers_, nullptr, coll_seq_, Named{"allgatherv"},
      FMI_BOTH(allgatherv(ch, c, send, recv, counts, o)));
}

void Communicator::alltoallv_bytes(ConstBytes send, const std::vector<std::size_t>& send_counts,
                                   Bytes recv, const std::vector<std::size_t>& recv_counts) {
  const std::size_t stotal = counts_total("alltoallv", "send_counts", send_counts, num_peers_);
  const std::size_t rtotal = counts_total("alltoallv", "recv_counts", recv_counts, num_peers_);
  check_total("alltoallv", "send buffer", send.size(), "send_counts", stotal);
  check_total("alltoallv", "recv buffer", recv.size(), "recv_counts", rtotal);
  if (send_counts[peer_id_] != recv_counts[peer_id_])
    FMI_THROW(UsageError, "alltoallv: send_counts[", peer_id_, "] is ", send_counts[peer_id_],
              " bytes, recv_counts[", peer_id_, "] is ", recv_counts[peer_id_],
              " bytes; the block this peer keeps for itself must have one size");
  // No size is known to every peer (each holds one row and one column of the
  // matrix), and all peers must choose the same channel: the choice is made as for
  // empty blocks. A single channel, or set_channel_policy, pins it.
  const coll::Options o{};
  run(Operation::alltoallv, 0, nullptr, coll_seq_, Named{"alltoallv"},
      FMI_BOTH(alltoallv(ch, c, send, send_counts, recv, recv_counts, o)));
}

#undef FMI_BOTH

}  // namespace FMI
