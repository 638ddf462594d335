// Descriptors of the in-process channels, so that threads of one process can form
// a Communicator from a config file alone:
//   "backends": {"InProcess": {"enabled": true}}
// Each peer's channel joins, at init(), the process-wide hub of its communicator
// (by comm name), created by the first peer that joins it. The hub is dropped
// when all num_peers peers have joined and left again, so the next group that
// uses the same name starts empty. One name serves one group at a time.
#include <map>
#include <mutex>
#include <string>

#include "channels/inproc/config.h"
#include "channels/registry.h"
#include "fmi/errors.h"
#include "fmi/inproc.h"

namespace FMI::Comm {
namespace {

// The hubs of one channel kind, by communicator name.
class Hubs {
 public:
  std::shared_ptr<InProcessHub> join(const ChannelContext& ctx, std::chrono::milliseconds t) {
    std::lock_guard lk(mu_);
    Entry& e = hubs_[ctx.comm_name];
    if (!e.hub) e = Entry{std::make_shared<InProcessHub>(ctx.num_peers, t), ctx.num_peers, 0, 0};
    ++e.joined;
    return e.hub;
  }
  void leave(const std::string& comm_name) {
    std::lock_guard lk(mu_);
    auto it = hubs_.find(comm_name);
    if (it == hubs_.end()) return;
    Entry& e = it->second;
    ++e.left;
    if (e.joined >= e.num_peers && e.left == e.joined) hubs_.erase(it);
  }

 private:
  struct Entry {
    std::shared_ptr<InProcessHub> hub;
    Utils::peer_num num_peers = 0;
    std::size_t joined = 0, left = 0;
  };
  std::mutex mu_;
  std::map<std::string, Entry> hubs_;
};

Hubs& p2p_hubs() {
  static Hubs h;
  return h;
}
Hubs& store_hubs() {
  static Hubs h;
  return h;
}

// Joins the hub at init() and forwards every call to an endpoint of it.
template <typename Base>
class HubChannel : public Base {
 public:
  HubChannel(Hubs& hubs, std::chrono::milliseconds max_timeout)
      : hubs_(hubs), max_timeout_(max_timeout) {}
  ~HubChannel() override { finalize(); }

  void init(const ChannelContext& ctx) override {
    finalize();
    auto hub = hubs_.join(ctx, max_timeout_);
    comm_name_ = ctx.comm_name;
    joined_ = true;
    if constexpr (std::is_same_v<Base, PeerToPeerChannel>)
      inner_ = hub->p2p_endpoint();
    else
      inner_ = hub->store_endpoint();
    inner_->init(ctx);  // UsageError when the hub was made for another peer count
  }
  void finalize() noexcept override {
    if (inner_) inner_->finalize();
    inner_.reset();
    if (joined_) hubs_.leave(comm_name_);
    joined_ = false;
  }
  std::chrono::milliseconds max_timeout() const override { return max_timeout_; }

 protected:
  Base& inner(const char* op) const {
    if (!inner_) FMI_THROW(UsageError, "in-process channel: ", op, " before init()");
    return *inner_;
  }

 private:
  Hubs& hubs_;
  std::chrono::milliseconds max_timeout_;
  std::shared_ptr<Base> inner_;
  std::string comm_name_;
  bool joined_ = false;
};

class HubP2P final : public HubChannel<PeerToPeerChannel> {
 public:
  using HubChannel::HubChannel;
  void send(Utils::peer_num dest, ConstBytes data, Tag tag, Utils::Deadline d) override {
    inner("send").send(dest, data, tag, d);
  }
  void recv(Utils::peer_num src, Bytes out, Tag tag, Utils::Deadline d) override {
    inner("recv").recv(src, out, tag, d);
  }
  void sendrecv(Utils::peer_num dest, ConstBytes data, Utils::peer_num src, Bytes out, Tag tag,
                Utils::Deadline d) override {
    inner("sendrecv").sendrecv(dest, data, src, out, tag, d);
  }
  std::optional<Probed> probe(std::span<const Envelope> wanted, bool block,
                              Utils::Deadline d) override {
    return inner("probe").probe(wanted, block, d);
  }
};

class HubStore final : public HubChannel<ObjectStoreChannel> {
 public:
  using HubChannel::HubChannel;
  void put(const ObjectKey& key, ConstBytes data, unsigned readers, Utils::Deadline d) override {
    inner("put").put(key, data, readers, d);
  }
  void get(const ObjectKey& key, Bytes out, Utils::Deadline d) override {
    inner("get").get(key, out, d);
  }
  void erase(const ObjectKey& key, Utils::Deadline d) override { inner("erase").erase(key, d); }
  std::vector<std::string> list(const std::string& prefix, Utils::Deadline d) override {
    return inner("list").list(prefix, d);
  }
  std::optional<Probed> probe(std::span<const ObjectKey> wanted, bool block,
                              Utils::Deadline d) override {
    return inner("probe").probe(wanted, block, d);
  }
};

template <typename C>
void check(const C& c, const std::string& source) {
  if (c.max_timeout <= std::chrono::milliseconds(0))
    config::fail(source, std::string("backends.") + C::kName + ".max_timeout", "must be > 0 ms");
}

template <typename C>
void parse_backend(const config::Reader& r, ChannelConfig& out) {
  auto& c = static_cast<C&>(out);
  if (r.has("max_timeout")) c.max_timeout = r.millis("max_timeout");
  check(c, r.source());
}

template <typename C>
std::unique_ptr<ChannelConfig> make_default() {
  return std::make_unique<C>();
}

std::shared_ptr<Channel> make_p2p(const Config& config) {
  const auto& c = config.section<InProcessConfig>();
  check(c, config.source);
  return std::make_shared<HubP2P>(p2p_hubs(), c.max_timeout);
}

std::shared_ptr<Channel> make_store(const Config& config) {
  const auto& c = config.section<InProcessStoreConfig>();
  check(c, config.source);
  return std::make_shared<HubStore>(store_hubs(), c.max_timeout);
}

}  // namespace

// No model: the default policy ranks them after every modelled channel (and a
// point-to-point channel before an object store).
constinit const ChannelDescriptor kInProcessDescriptor = {
    {InProcessConfig::kName, &make_default<InProcessConfig>, &parse_backend<InProcessConfig>,
     nullptr},
    ChannelKind::peer_to_peer,
    &make_p2p,
    nullptr,
};

constinit const ChannelDescriptor kInProcessStoreDescriptor = {
    {InProcessStoreConfig::kName, &make_default<InProcessStoreConfig>,
     &parse_backend<InProcessStoreConfig>, nullptr},
    ChannelKind::object_store,
    &make_store,
    nullptr,
};

}  // namespace FMI::Comm
