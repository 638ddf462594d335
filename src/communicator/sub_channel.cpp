// Adapters that give a sub-communicator its view of the owner's channels; see
// sub_channel.h for what they guarantee.
#include "communicator/sub_channel.h"

#include <utility>

#include "fmi/errors.h"

namespace FMI::Comm {

namespace {

using Utils::Deadline;
using Utils::peer_num;

// What both adapter kinds share: the rank map, the id, the owner's lifetime.
struct SubView {
  std::vector<peer_num> to_base;
  std::uint32_t comm = 0;
  std::weak_ptr<const void> owner_alive;

  void check_alive(const char* op) const {
    if (owner_alive.expired())
      FMI_THROW(UsageError, op,
                " on a sub-communicator (split/dup) whose parent communicator "
                "has been destroyed: a sub-communicator uses its parent's channels and is "
                "usable only while the parent lives");
  }
  peer_num map(peer_num p, const char* op) const {
    if (p >= to_base.size())
      FMI_THROW(UsageError, op, ": peer ", p, " is out of range for a sub-communicator of ",
                to_base.size(), " peers");
    return to_base[p];
  }
  Tag stamp(Tag t) const {
    t.comm = comm;
    return t;
  }
  void check_init(const ChannelContext& ctx) const {
    if (ctx.num_peers != to_base.size() || ctx.peer_id >= to_base.size())
      FMI_THROW(UsageError, "sub-communicator channel made for ", to_base.size(),
                " peers, initialised for peer ", ctx.peer_id, " of ", ctx.num_peers);
  }
};

class SubPeerToPeer final : public PeerToPeerChannel {
 public:
  SubPeerToPeer(std::shared_ptr<PeerToPeerChannel> base, SubView v)
      : base_(std::move(base)), v_(std::move(v)) {}

  // The owner initialised, connects and finalizes the base channel.
  void init(const ChannelContext& ctx) override { v_.check_init(ctx); }
  void finalize() noexcept override {}
  std::chrono::milliseconds max_timeout() const override { return base_->max_timeout(); }
  std::shared_ptr<const ChannelModel> model() const override { return base_->model(); }

  void send(peer_num dest, ConstBytes data, Tag tag, Deadline deadline) override {
    v_.check_alive("send");
    base_->send(v_.map(dest, "send"), data, v_.stamp(tag), deadline);
  }
  void recv(peer_num src, Bytes out, Tag tag, Deadline deadline) override {
    v_.check_alive("recv");
    base_->recv(v_.map(src, "recv"), out, v_.stamp(tag), deadline);
  }
  void sendrecv(peer_num dest, ConstBytes data, peer_num src, Bytes out, Tag tag,
                Deadline deadline) override {
    v_.check_alive("sendrecv");
    base_->sendrecv(v_.map(dest, "sendrecv"), data, v_.map(src, "sendrecv"), out, v_.stamp(tag),
                    deadline);
  }
  // Ranks and tags as the base sees them; the index into `wanted` is the same.
  std::optional<Probed> probe(std::span<const Envelope> wanted, bool block,
                              Deadline deadline) override {
    v_.check_alive("probe");
    std::vector<Envelope> base(wanted.begin(), wanted.end());
    for (auto& e : base) {
      e.src = v_.map(e.src, "probe");
      e.tag = v_.stamp(e.tag);
    }
    return base_->probe(base, block, deadline);
  }
  // The base's connect_all opens the owner's whole mesh, which needs every one of
  // the owner's peers; the members of a sub-communicator connect the pairs they use
  // on first use instead (none, when the owner has already opened its mesh, which
  // the split's own allgather does on a peer-to-peer channel).
  void connect_all(Deadline) override {}
  // The partners an algorithm of the sub-communicator names, as the base numbers them;
  // the budget is the base's (its connections are shared with the owner).
  void connect(std::span<const peer_num> peers, Deadline deadline) override {
    v_.check_alive("connect");
    std::vector<peer_num> base;
    base.reserve(peers.size());
    for (auto p : peers) base.push_back(v_.map(p, "connect"));
    base_->connect(base, deadline);
  }
  std::size_t max_connections() const override { return base_->max_connections(); }

  const std::shared_ptr<PeerToPeerChannel>& base() const { return base_; }
  const SubView& view() const { return v_; }

 private:
  std::shared_ptr<PeerToPeerChannel> base_;
  SubView v_;
};

class SubObjectStore final : public ObjectStoreChannel {
 public:
  SubObjectStore(std::shared_ptr<ObjectStoreChannel> base, SubView v)
      : base_(std::move(base)), v_(std::move(v)) {}

  void init(const ChannelContext& ctx) override { v_.check_init(ctx); }
  void finalize() noexcept override {}
  std::chrono::milliseconds max_timeout() const override { return base_->max_timeout(); }
  std::shared_ptr<const ChannelModel> model() const override { return base_->model(); }

  void put(const ObjectKey& key, ConstBytes data, unsigned readers, Deadline deadline) override {
    v_.check_alive("put");
    base_->put(translate(key, "put"), data, readers, deadline);
  }
  void get(const ObjectKey& key, Bytes out, Deadline deadline) override {
    v_.check_alive("get");
    base_->get(translate(key, "get"), out, deadline);
  }
  void erase(const ObjectKey& key, Deadline deadline) override {
    v_.check_alive("erase");
    base_->erase(translate(key, "erase"), deadline);
  }
  // Prefixes are in the owner's key space (the keys as the base stores them).
  std::vector<std::string> list(const std::string& prefix, Deadline deadline) override {
    v_.check_alive("list");
    return base_->list(prefix, deadline);
  }

  std::optional<Probed> probe(std::span<const ObjectKey> wanted, bool block,
                              Deadline deadline) override {
    v_.check_alive("probe");
    std::vector<ObjectKey> base;
    for (const auto& k : wanted) base.push_back(translate(k, "probe"));
    return base_->probe(base, block, deadline);
  }

  const std::shared_ptr<ObjectStoreChannel>& base() const { return base_; }
  const SubView& view() const { return v_; }

 private:
  ObjectKey translate(const ObjectKey& key, const char* op) const {
    ObjectKey k = key;
    k.tag = v_.stamp(key.tag);
    k.from = v_.map(key.from, op);
    if (key.to != ObjectKey::all) k.to = v_.map(key.to, op);
    return k;
  }

  std::shared_ptr<ObjectStoreChannel> base_;
  SubView v_;
};

// to_parent composed with the parent adapter's map: ranks of the new communicator
// straight to the owner's.
SubView compose(const SubView& parent, const std::vector<peer_num>& to_parent, std::uint32_t comm) {
  SubView v;
  v.to_base.reserve(to_parent.size());
  for (peer_num p : to_parent) v.to_base.push_back(parent.map(p, "split"));
  v.comm = comm;
  v.owner_alive = parent.owner_alive;
  return v;
}

}  // namespace

std::shared_ptr<Channel> make_sub_channel(const std::shared_ptr<Channel>& parent,
                                          const std::vector<peer_num>& to_parent,
                                          std::uint32_t comm,
                                          std::weak_ptr<const void> owner_alive) {
  if (!parent) FMI_THROW(UsageError, "split: a channel of the parent is null");
  if (comm == 0 || comm > Tag::max_comm)
    FMI_THROW(UsageError, "split: sub-communicator id ", comm, " is out of range (1..",
              Tag::max_comm, ")");
  if (auto* sp = dynamic_cast<SubPeerToPeer*>(parent.get()))
    return std::make_shared<SubPeerToPeer>(sp->base(), compose(sp->view(), to_parent, comm));
  if (auto* ss = dynamic_cast<SubObjectStore*>(parent.get()))
    return std::make_shared<SubObjectStore>(ss->base(), compose(ss->view(), to_parent, comm));
  SubView v{to_parent, comm, std::move(owner_alive)};
  if (parent->kind() == ChannelKind::peer_to_peer)
    return std::make_shared<SubPeerToPeer>(std::static_pointer_cast<PeerToPeerChannel>(parent),
                                           std::move(v));
  return std::make_shared<SubObjectStore>(std::static_pointer_cast<ObjectStoreChannel>(parent),
                                          std::move(v));
}

bool is_sub_channel(const Channel& ch) {
  return dynamic_cast<const SubPeerToPeer*>(&ch) || dynamic_cast<const SubObjectStore*>(&ch);
}

}  // namespace FMI::Comm
