// In-process channels: the medium is memory shared by threads. Each peer's
// endpoint behaves like a real channel: messages are tagged and size-checked,
// receivers block with a deadline, the store counts readers and deletes objects
// after the last read.
#include "fmi/inproc.h"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include "channels/common/tag_matcher.h"
#include "fmi/errors.h"

namespace FMI::Comm {

using Utils::Deadline;
using Utils::peer_num;

struct InProcessHub::State {
  explicit State(peer_num n, std::chrono::milliseconds t)
      : num_peers(n), max_timeout(t), boxes(n) {}

  // One mailbox per receiving peer; its matcher keeps one FIFO per sender, so
  // messages of one ordered pair stay in order, as on a TCP connection.
  struct Mailbox {
    std::mutex mu;
    std::condition_variable cv;
    TagMatcher matcher;
  };
  struct Object {
    std::vector<std::byte> data;
    unsigned readers_left;
  };

  const peer_num num_peers;
  const std::chrono::milliseconds max_timeout;
  std::vector<Mailbox> boxes;

  mutable std::mutex store_mu;
  std::condition_variable store_cv;
  std::map<std::string, Object> objects;
  std::size_t requests = 0;
};

namespace {

void check_init(bool inited, const char* what) {
  if (!inited) FMI_THROW(UsageError, "in-process channel: ", what, " before init()");
}

class InProcP2P final : public PeerToPeerChannel {
 public:
  explicit InProcP2P(std::shared_ptr<InProcessHub::State> s) : s_(std::move(s)) {}

  void init(const ChannelContext& ctx) override {
    if (ctx.num_peers != s_->num_peers)
      FMI_THROW(UsageError, "in-process channel: hub made for ", s_->num_peers,
                " peers, communicator has ", ctx.num_peers);
    self_ = ctx.peer_id;
    inited_ = true;
  }
  void finalize() noexcept override {}
  std::chrono::milliseconds max_timeout() const override { return s_->max_timeout; }

  void send(peer_num dest, ConstBytes data, Tag tag, Deadline) override {
    check_init(inited_, "send");
    auto& box = s_->boxes.at(dest);
    {
      std::lock_guard lk(box.mu);
      box.matcher.park(self_, tag, {data.begin(), data.end()});
    }
    box.cv.notify_all();
  }

  // Messages are matched by (sender, tag) (channels/common/tag_matcher.h): a
  // point-to-point message that arrives while the receiver is inside a collective
  // waits in the matcher until its recv comes, and vice versa.
  void recv(peer_num src, Bytes out, Tag tag, Deadline deadline) override {
    check_init(inited_, "recv");
    auto& box = s_->boxes.at(self_);
    std::unique_lock lk(box.mu);
    std::optional<std::vector<std::byte>> data;
    auto arrived = [&] { return (data = box.matcher.pop(src, tag)).has_value(); };
    if (!box.cv.wait_until(lk, deadline, arrived))
      FMI_THROW(TimeoutError, "in-process recv of ", to_string(tag), " from peer ", src,
                " on peer ", self_, " timed out after ", format_duration(s_->max_timeout));
    lk.unlock();  // the copy needs no lock: the message is ours now
    TagMatcher::deliver(*data, out, [&](std::size_t size) {
      FMI_THROW(PeerError, "in-process recv of ", to_string(tag), " on peer ", self_, ": peer ",
                src, " sent ", size, " bytes, expected ", out.size());
    });
  }

  void sendrecv(peer_num dest, ConstBytes data, peer_num src, Bytes out, Tag tag,
                Deadline deadline) override {
    // Sends never block here, so sequential is deadlock-free.
    send(dest, data, tag, deadline);
    recv(src, out, tag, deadline);
  }

  // The oldest (by arrival, any source) of `wanted` that is parked in this peer's
  // mailbox; it stays there for the recv that follows.
  std::optional<Probed> probe(std::span<const Envelope> wanted, bool block,
                              Deadline deadline) override {
    check_init(inited_, "probe");
    auto& box = s_->boxes.at(self_);
    std::unique_lock lk(box.mu);
    std::optional<Probed> found;
    auto arrived = [&] {
      std::uint64_t oldest = 0;
      for (std::size_t i = 0; i < wanted.size(); ++i)
        if (auto m = box.matcher.peek(wanted[i].src, wanted[i].tag))
          if (!found || m->arrival < oldest) {
            found = Probed{i, m->bytes};
            oldest = m->arrival;
          }
      return found.has_value();
    };
    if (!block) {
      arrived();
      return found;
    }
    if (!box.cv.wait_until(lk, deadline, arrived))
      FMI_THROW(TimeoutError, "in-process probe for ", wanted.size(), " source(s) on peer ", self_,
                " timed out after ", format_duration(s_->max_timeout));
    return found;
  }

 private:
  std::shared_ptr<InProcessHub::State> s_;
  peer_num self_ = 0;
  bool inited_ = false;
};

class InProcStore final : public ObjectStoreChannel {
 public:
  explicit InProcStore(std::shared_ptr<InProcessHub::State> s) : s_(std::move(s)) {}

  void init(const ChannelContext& ctx) override {
    if (ctx.num_peers != s_->num_peers)
      FMI_THROW(UsageError, "in-process store: hub made for ", s_->num_peers,
                " peers, communicator has ", ctx.num_peers);
    ctx_ = ctx;
    inited_ = true;
  }
  void finalize() noexcept override {}
  std::chrono::milliseconds max_timeout() const override { return s_->max_timeout; }

  void put(const ObjectKey& key, ConstBytes data, unsigned readers, Deadline) override {
    check_init(inited_, "put");
    if (readers == 0) return;  // nobody will read it: storing it would leak it
    const std::string k = key.str(ctx_.comm_name);
    {
      std::lock_guard lk(s_->store_mu);
      ++s_->requests;
      auto [it, fresh] = s_->objects.try_emplace(
          k, InProcessHub::State::Object{{data.begin(), data.end()}, readers});
      if (!fresh)
        FMI_THROW(ChannelError, "in-process store: object ", k, " already exists (put by peer ",
                  ctx_.peer_id, ")");
    }
    s_->store_cv.notify_all();
  }

  void get(const ObjectKey& key, Bytes out, Deadline deadline) override {
    check_init(inited_, "get");
    const std::string k = key.str(ctx_.comm_name);
    std::unique_lock lk(s_->store_mu);
    ++s_->requests;
    if (!s_->store_cv.wait_until(lk, deadline, [&] { return s_->objects.count(k) > 0; }))
      FMI_THROW(TimeoutError, "in-process store: peer ", ctx_.peer_id, " waited for ", k,
                " (from peer ", key.from, ") for ", format_duration(s_->max_timeout));
    auto it = s_->objects.find(k);
    if (it->second.data.size() != out.size())
      FMI_THROW(PeerError, "in-process store: object ", k, " from peer ", key.from, " has ",
                it->second.data.size(), " bytes, peer ", ctx_.peer_id, " expected ", out.size());
    if (!out.empty()) std::memcpy(out.data(), it->second.data.data(), out.size());
    if (--it->second.readers_left == 0) s_->objects.erase(it);
  }

  // One request per call, as get counts one however long it waits.
  std::optional<Probed> probe(std::span<const ObjectKey> wanted, bool block,
                              Deadline deadline) override {
    check_init(inited_, "probe");
    std::vector<std::string> keys;
    for (const auto& k : wanted) keys.push_back(k.str(ctx_.comm_name));
    std::unique_lock lk(s_->store_mu);
    ++s_->requests;
    std::optional<Probed> found;
    auto arrived = [&] {
      for (std::size_t i = 0; i < keys.size(); ++i)
        if (auto it = s_->objects.find(keys[i]); it != s_->objects.end()) {
          found = Probed{i, it->second.data.size()};
          return true;
        }
      return false;
    };
    if (!block) {
      arrived();
      return found;
    }
    if (!s_->store_cv.wait_until(lk, deadline, arrived))
      FMI_THROW(TimeoutError, "in-process store: probe of peer ", ctx_.peer_id, " for ",
                keys.size(), " object(s) timed out after ", format_duration(s_->max_timeout));
    return found;
  }

  void erase(const ObjectKey& key, Deadline) override {
    std::lock_guard lk(s_->store_mu);
    ++s_->requests;
    s_->objects.erase(key.str(ctx_.comm_name));
  }

  std::vector<std::string> list(const std::string& prefix, Deadline) override {
    std::lock_guard lk(s_->store_mu);
    ++s_->requests;
    std::vector<std::string> keys;
    for (auto it = s_->objects.lower_bound(prefix);
         it != s_->objects.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it)
      keys.push_back(it->first);
    return keys;
  }

 private:
  std::shared_ptr<InProcessHub::State> s_;
  ChannelContext ctx_;
  bool inited_ = false;
};

}  // namespace

InProcessHub::InProcessHub(peer_num num_peers, std::chrono::milliseconds max_timeout)
    : state_(std::make_shared<State>(num_peers, max_timeout)) {}
InProcessHub::~InProcessHub() = default;

std::shared_ptr<PeerToPeerChannel> InProcessHub::p2p_endpoint() {
  return std::make_shared<InProcP2P>(state_);
}
std::shared_ptr<ObjectStoreChannel> InProcessHub::store_endpoint() {
  return std::make_shared<InProcStore>(state_);
}
std::size_t InProcessHub::objects_in_store() const {
  std::lock_guard lk(state_->store_mu);
  return state_->objects.size();
}
std::size_t InProcessHub::store_requests() const {
  std::lock_guard lk(state_->store_mu);
  return state_->requests;
}

}  // namespace FMI::Comm
