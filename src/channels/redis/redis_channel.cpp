#include "channels/redis/redis_channel.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <thread>
#include <unordered_set>

#include "channels/redis/model.h"
#include "fmi/errors.h"

namespace FMI::Comm {

namespace redis {

namespace {

using Utils::Clock;
using Utils::Deadline;
using namespace std::chrono_literals;

// How much longer than a BLPOP's own timeout the socket waits for its answer: the
// server checks blocked clients' timeouts about every 100 ms.
constexpr auto kBlockGrace = 500ms;

// Element formats of the notification list (integers little-endian):
//   inline:  'I' u32 copies_left | payload     copies_left: elements after this one
//   stored:  'S' u32 readers u64 size u32 chunks u64 chunk_bytes
constexpr char kInline = 'I';
constexpr char kStored = 'S';
constexpr std::size_t kInlineHeader = 1 + 4;
constexpr std::size_t kStoredToken = 1 + 4 + 8 + 4 + 8;

void put_le(char* p, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
std::uint64_t get_le(const char* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= std::uint64_t(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

std::string_view view(ConstBytes b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

std::string purpose(const ObjectKey& key) {
  std::string s = to_string(key.tag);
  s += " from peer ";
  s += std::to_string(key.from);
  if (key.to == ObjectKey::all)
    s += " to all peers";
  else
    s += " to peer " + std::to_string(key.to);
  return s;
}

std::string seconds_arg(Clock::duration left) {
  // Redis >= 6 takes fractional seconds; 0 would mean "forever", so a deadline
  // that has passed still gets one quick look.
  const double s = std::max(std::chrono::duration<double>(left).count(), 0.001);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", s);
  return buf;
}

// Smallest string greater than every string that starts with `prefix`, as a
// ZRANGEBYLEX bound; "+" when there is none.
std::string lex_upper(std::string prefix) {
  while (!prefix.empty() && static_cast<unsigned char>(prefix.back()) == 0xff) prefix.pop_back();
  if (prefix.empty()) return "+";
  prefix.back() = static_cast<char>(static_cast<unsigned char>(prefix.back()) + 1);
  return "(" + prefix;
}

// FMI_REDIS_PASSWORD (if set and non-empty) replaces backends.Redis.password, as
// FMI_SECRET does for the Direct secret: a password in the environment of the
// functions need not be written into a configuration file.
std::string redis_password(const std::string& configured) {
  if (const char* env = std::getenv("FMI_REDIS_PASSWORD"); env && *env) return env;
  return configured;
}

long long integer_of(const redisReply& r, std::string_view what) {
  if (r.type != REDIS_REPLY_INTEGER)
    FMI_THROW(ChannelError, "Redis: unexpected reply type ", r.type, " to ", what);
  return r.integer;
}

}  // namespace

struct RedisChannel::Names {
  std::string logical;  // ObjectKey::str
  std::string list;     // fmi:K#n
  std::string data;     // fmi:K#d
  std::string what;     // "bcast#3 from peer 0 to all peers"
  std::string list_role, data_role;
};

// A connection of the pool for the duration of one call.
class RedisChannel::Lease {
 public:
  explicit Lease(RedisChannel& ch) : ch_(ch) {
    std::lock_guard lk(ch_.pool_mu_);
    if (ch_.idle_.empty()) {
      conn_ = std::make_unique<Connection>(ch_.endpoint_);
    } else {
      conn_ = std::move(ch_.idle_.back());
      ch_.idle_.pop_back();
    }
  }
  ~Lease() {
    std::lock_guard lk(ch_.pool_mu_);
    ch_.idle_.push_back(std::move(conn_));
  }
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  Connection& operator*() { return *conn_; }
  Connection* operator->() { return conn_.get(); }

 private:
  RedisChannel& ch_;
  std::unique_ptr<Connection> conn_;
};

RedisChannel::Names RedisChannel::names(const ObjectKey& key) const {
  Names n;
  n.logical = key.str(ctx_.comm_name);
  n.list = "fmi:" + n.logical + "#n";
  n.data = "fmi:" + n.logical + "#d";
  n.what = purpose(key);
  n.list_role = "notification list of " + n.what;
  n.data_role = "data of " + n.what;
  return n;
}

// The values were checked when the configuration was parsed (descriptor.cpp).
RedisChannel::RedisChannel(const RedisConfig& config)
    : max_timeout_(config.max_timeout),
      first_wait_(std::max(config.timeout, std::chrono::milliseconds(1))),
      model_(std::make_shared<RedisModel>(config.model)),
      endpoint_{config.host, config.port, config.username, redis_password(config.password),
                config.db} {
  idle_.push_back(std::make_unique<Connection>(endpoint_));
  address_ = idle_.back()->address();
  // A crashed peer's keys outlive it by a few operation timeouts at most; at least
  // 10 s so that a reader that starts a little late still finds its message.
  const auto ttl = std::max<std::chrono::milliseconds>(4 * max_timeout_, 10s);
  ttl_ms_ = std::to_string(ttl.count());
}

RedisChannel::~RedisChannel() { finalize(); }

void RedisChannel::init(const ChannelContext& ctx) {
  ctx_ = ctx;
  index_key_ = "fmi:" + ctx_.comm_name + "#idx";
  index_role_ = "object index of communicator '" + ctx_.comm_name + "'";
  finalised_ = false;
  Lease(*this)->connect(Clock::now() + max_timeout_);
  initialised_ = true;
}

void RedisChannel::require_init(const char* op) const {
  if (!initialised_ || finalised_)
    FMI_THROW(UsageError, "Redis channel: ", op, " before init() or after finalize()");
}

void RedisChannel::put(const ObjectKey& key, ConstBytes data, unsigned readers, Deadline deadline) {
  require_init("put");
  const Names n = names(key);
  // Recorded first: whatever part of a failed put reached the server is cleaned up.
  bool prune_now = false;
  {
    std::lock_guard lk(created_mu_);
    bool& awaited = created_[n.logical];
    awaited = awaited || readers > 0;
    prune_now = created_.size() >= prune_at_;
  }

  Batch b;
  const std::size_t size = data.size();
  const std::string_view ttl = ttl_ms_;
  std::vector<std::string_view> rpush = {"RPUSH", n.list};
  const bool inline_fits =
      readers > 0 && size <= kInlineBytes && kInlineHeader + size <= kInlineBytes / readers;
  if (inline_fits) {
    // One element per reader, each carrying the payload and how many copies follow
    // it, so the reader that pops the last copy knows it is the last.
    const std::size_t elem = kInlineHeader + size;
    std::string buf(std::size_t(readers) * elem, '\0');
    for (unsigned i = 0; i < readers; ++i) {
      char* e = buf.data() + i * elem;
      e[0] = kInline;
      put_le(e + 1, readers - 1 - i, 4);
      if (size > 0) std::memcpy(e + kInlineHeader, data.data(), size);
    }
    const std::string_view all = b.keep(std::move(buf));
    for (unsigned i = 0; i < readers; ++i) rpush.push_back(all.substr(i * elem, elem));
  } else {
    // The hash exists with its TTL and read counter before any chunk is written
    // (HSET keeps an existing key's TTL), so no key is ever without a TTL.
    const std::size_t chunks = (size + kChunkBytes - 1) / kChunkBytes;
    b.add({"MULTI"}, n.data_role)
        .add({"HSET", n.data, "r", b.keep(std::to_string(readers))}, n.data_role)
        .add({"PEXPIRE", n.data, ttl}, n.data_role)
        .add({"EXEC"}, n.data_role);
    for (std::size_t c = 0; c < chunks; ++c) {
      const std::size_t off = c * kChunkBytes;
      b.add({"HSET", n.data, b.keep(std::to_string(c)),
             view(data.subspan(off, std::min(kChunkBytes, size - off)))},
            n.data_role);
    }
    std::string token(kStoredToken, '\0');
    token[0] = kStored;
    put_le(&token[1], readers, 4);
    put_le(&token[5], size, 8);
    put_le(&token[13], chunks, 4);
    put_le(&token[17], kChunkBytes, 8);
    const std::string_view t = b.keep(std::move(token));
    for (unsigned i = 0; i < readers; ++i) rpush.push_back(t);
  }
  // The notification comes last: a reader woken by it finds the data complete.
  // Each key gets its TTL in the same write (one pipeline, which Redis runs in
  // order without other clients' commands in between, except the readers that the
  // RPUSH wakes): no MULTI, so a blocked reader is served the moment RPUSH runs.
  b.add({"ZADD", index_key_, "0", n.logical}, index_role_)
      .add({"PEXPIRE", index_key_, ttl}, index_role_);
  if (readers > 0) b.add(std::move(rpush), n.list_role);
  b.add({"PEXPIRE", n.list, ttl}, n.list_role);
  Lease conn(*this);
  conn->exchange(b, deadline);

  if (prune_now) {
    try {
      prune(*conn, deadline);
    } catch (const Error&) {
      // The put itself is done; a broken connection fails the next call.
    }
  }
}

void RedisChannel::get(const ObjectKey& key, Bytes out, Deadline deadline) {
  require_init("get");
  const auto start = Clock::now();
  const Names n = names(key);
  Lease conn(*this);

  // Wait for the notification: the payload itself, or a token for the data hash.
  bool arrived = false;
  char kind = 0;
  std::size_t size = 0, chunks = 0, chunk_bytes = 0;
  unsigned copies_left = 0, readers = 0;
  auto take = [&](const char* str, std::size_t len) {
    arrived = true;
    kind = len > 0 ? str[0] : 0;
    if (kind == kInline && len >= kInlineHeader) {
      copies_left = static_cast<unsigned>(get_le(str + 1, 4));
      size = len - kInlineHeader;
      if (size == out.size() && size > 0) std::memcpy(out.data(), str + kInlineHeader, size);
    } else if (kind == kStored && len == kStoredToken) {
      readers = static_cast<unsigned>(get_le(str + 1, 4));
      size = get_le(str + 5, 8);
      chunks = get_le(str + 13, 4);
      chunk_bytes = get_le(str + 17, 8);
    } else {
      FMI_THROW(PeerError, "Redis ", address_, ": get of ", n.what,
                ": the notification list holds an element FMI did not write (", len, " bytes)");
    }
  };
  Batch wait;
  if (auto e = take_probed(n.list)) {
    take(e->data(), e->size());  // a probe popped it already
  } else {
    wait.add({"BLPOP", n.list, wait.keep(seconds_arg(deadline - start))}, n.list_role,
             [&](const redisReply& r) {
               if (r.type == REDIS_REPLY_NIL) return;  // timed out
               if (r.type != REDIS_REPLY_ARRAY || r.elements != 2 ||
                   r.element[1]->type != REDIS_REPLY_STRING)
                 FMI_THROW(ChannelError, "Redis ", address_, ": BLPOP on ", n.list_role,
                           ": unexpected reply type ", r.type);
               take(r.element[1]->str, r.element[1]->len);
             });
  }
  if (!wait.empty()) conn->exchange(wait, deadline, kBlockGrace);
  if (!arrived)
    FMI_THROW(TimeoutError, "Redis ", address_, ": get of ", n.what, ": nothing arrived in ",
              format_duration(Clock::now() - start), " (BLPOP on ", n.list_role, " timed out)");

  auto mismatch = [&] {
    FMI_THROW(PeerError, "Redis ", address_, ": get of ", n.what, ": the peer sent ", size,
              " bytes, the receive buffer holds ", out.size(), " bytes");
  };
  if (kind == kInline) {
    if (copies_left == 0) {
      // The message is gone from Redis with the pop; only the index entry is left.
      // It rides along with this connection's next request (list() checks that
      // what it reports still exists), so a get stays one request.
      Batch tidy;
      tidy.add({"ZREM", index_key_, n.logical}, index_role_);
      conn->defer(tidy);
    }
    if (size != out.size()) mismatch();
    return;
  }

  // Stored: the data sits in the hash until its last reader is done. A mismatch
  // leaves it to the writer's finalize (or the TTL).
  if (size != out.size()) mismatch();
  // Without overflow: `size + chunk_bytes - 1` wraps for a forged chunk_bytes near
  // 2^64 and made chunks=0 pass, a "stored" message that fetched nothing.
  if (chunk_bytes == 0 || chunks != (size == 0 ? 0 : (size - 1) / chunk_bytes + 1))
    FMI_THROW(PeerError, "Redis ", address_, ": get of ", n.what, ": inconsistent notification (",
              size, " bytes in ", chunks, " chunks of ", chunk_bytes, ")");
  Batch fetch;
  for (std::size_t c = 0; c < chunks; ++c) {
    const std::size_t off = c * chunk_bytes;
    const std::size_t len = std::min(chunk_bytes, size - off);
    fetch.add_into({"HGET", n.data, fetch.keep(std::to_string(c))}, n.data_role,
                   out.subspan(off, len), [&, c](const redisReply& r) {
                     if (r.type == REDIS_REPLY_NIL)
                       FMI_THROW(ChannelError, "Redis ", address_, ": HGET on ", n.data_role,
                                 ": chunk ", c, " is gone (erased, or expired after ", ttl_ms_,
                                 " ms)");
                     FMI_THROW(ChannelError, "Redis ", address_, ": HGET on ", n.data_role,
                               ": chunk ", c, ": unexpected reply type ", r.type);
                   });
  }
  std::optional<long long> left;  // reads still to come after this one
  if (readers == 1) {
    // The only reader deletes in the same round trip.
    fetch.add({"DEL", n.data}, n.data_role).add({"ZREM", index_key_, n.logical}, index_role_);
  } else {
    fetch.add({"HINCRBY", n.data, "r", "-1"}, n.data_role,
              [&](const redisReply& r) { left = integer_of(r, "HINCRBY on " + n.data_role); });
  }
  // The last reader deletes; so does one that found the hash gone (HINCRBY then
  // recreated it, without TTL), also when the exchange fails.
  auto last_reader_tidies = [&] {
    if (!left || *left > 0) return;
    Batch tidy;
    tidy.add({"DEL", n.data}, n.data_role).add({"ZREM", index_key_, n.logical}, index_role_);
    tidy_up(*conn, tidy, deadline);
  };
  try {
    conn->exchange(fetch, deadline);
  } catch (...) {
    last_reader_tidies();
    throw;
  }
  last_reader_tidies();
}

std::optional<std::string> RedisChannel::take_probed(const std::string& list) {
  std::lock_guard lk(probed_mu_);
  auto it = probed_.find(list);
  if (it == probed_.end()) return std::nullopt;
  std::string e = std::move(it->second);
  probed_.erase(it);
  return e;
}

// Redis blocks one client on many lists at once, so an any-source wait costs no
// polling: BLPOP returns the first wanted list (in the order given) that has an
// element, or nil at its timeout without having popped anything. What it pops is
// the message's notification (payload or token of the data hash), kept in
// probed_ until get() asks for that list.
std::optional<Probed> RedisChannel::probe(std::span<const ObjectKey> wanted, bool block,
                                          Deadline deadline) {
  require_init("probe");
  Lease conn(*this);
  const auto start = Clock::now();
  std::vector<Names> ns;
  for (const auto& k : wanted) ns.push_back(names(k));
  auto size_of = [&](std::string_view e, const Names& n) -> std::size_t {
    if (e.size() >= kInlineHeader && e[0] == kInline) return e.size() - kInlineHeader;
    if (e.size() == kStoredToken && e[0] == kStored) return get_le(e.data() + 5, 8);
    FMI_THROW(PeerError, "Redis ", address_, ": probe for ", n.what,
              ": the notification list holds an element FMI did not write (", e.size(), " bytes)");
  };
  {
    std::lock_guard lk(probed_mu_);
    for (std::size_t i = 0; i < ns.size(); ++i)
      if (auto it = probed_.find(ns[i].list); it != probed_.end())
        return Probed{i, size_of(it->second, ns[i])};
  }
  if (ns.empty()) return std::nullopt;
  std::optional<Probed> found;
  auto string_reply = [&](const redisReply& r, const char* cmd) {
    if (r.type != REDIS_REPLY_STRING)
      FMI_THROW(ChannelError, "Redis ", address_, ": ", cmd,
                " on the notification lists of a probe: unexpected reply type ", r.type);
    return std::string_view(r.str, r.len);
  };
  Batch b;
  if (!block) {
    for (std::size_t i = 0; i < ns.size(); ++i)
      b.add({"LINDEX", ns[i].list, "0"}, ns[i].list_role, [&, i](const redisReply& r) {
        if (r.type == REDIS_REPLY_NIL || found) return;
        found = Probed{i, size_of(string_reply(r, "LINDEX"), ns[i])};
      });
    conn->exchange(b, deadline);
    return found;
  }
  std::vector<std::string_view> args = {"BLPOP"};
  for (const auto& n : ns) args.push_back(n.list);
  args.push_back(b.keep(seconds_arg(deadline - start)));
  b.add(std::move(args), "notification lists of a probe", [&](const redisReply& r) {
    if (r.type == REDIS_REPLY_NIL) return;  // timed out, nothing popped
    if (r.type != REDIS_REPLY_ARRAY || r.elements != 2)
      FMI_THROW(ChannelError, "Redis ", address_,
                ": BLPOP on the notification lists of a probe: unexpected reply type ", r.type);
    const std::string_view list = string_reply(*r.element[0], "BLPOP");
    const std::string_view e = string_reply(*r.element[1], "BLPOP");
    for (std::size_t i = 0; i < ns.size(); ++i)
      if (ns[i].list == list) {
        // Kept before anything can throw: a popped element is never dropped.
        {
          std::lock_guard lk(probed_mu_);
          probed_[ns[i].list] = std::string(e);
        }
        found = Probed{i, size_of(e, ns[i])};
        return;
      }
    FMI_THROW(ChannelError, "Redis ", address_, ": BLPOP of a probe popped list '", list,
              "', which it did not wait on");
  });
  conn->exchange(b, deadline, kBlockGrace);
  if (!found)
    FMI_THROW(TimeoutError, "Redis ", address_, ": probe of peer ", ctx_.peer_id, " for ",
              ns.size(), " source(s): nothing arrived in ", format_duration(Clock::now() - start),
              " (BLPOP on ", ns.size(), " notification lists timed out)");
  return found;
}

void RedisChannel::tidy_up(Connection& conn, Batch& batch, Deadline deadline) {
  try {
    conn.send_unacknowledged(batch, deadline);
  } catch (const Error&) {
    // The message has been delivered: the get succeeded. A connection that broke
    // while sending the clean-up fails the next call (reconnecting, it reports
    // host:port if the server is gone); what was not deleted is left to the
    // writer's finalize and to the TTL.
  }
}

void RedisChannel::erase(const ObjectKey& key, Deadline deadline) {
  require_init("erase");
  const Names n = names(key);
  Batch b;
  b.add({"DEL", n.list, n.data}, n.data_role).add({"ZREM", index_key_, n.logical}, index_role_);
  Lease(*this)->exchange(b, deadline);
  std::lock_guard lk(created_mu_);
  created_.erase(n.logical);
}

std::vector<std::string> RedisChannel::list(const std::string& prefix, Deadline deadline) {
  require_init("list");
  std::vector<std::string> keys;
  const std::string lo = prefix.empty() ? std::string("-") : "[" + prefix;
  const std::string hi = lex_upper(prefix);
  Batch b;
  b.add({"ZRANGEBYLEX", index_key_, lo, hi}, index_role_, [&](const redisReply& r) {
    if (r.type != REDIS_REPLY_ARRAY)
      FMI_THROW(ChannelError, "Redis ", address_, ": ZRANGEBYLEX on ", index_role_,
                ": unexpected reply type ", r.type);
    for (std::size_t i = 0; i < r.elements; ++i)
      keys.emplace_back(r.element[i]->str, r.element[i]->len);
  });
  Lease conn(*this);
  conn->exchange(b, deadline);
  // Index entries are removed a little after their object (by the reader's next
  // request, see get), so report only what still exists.
  return keys.empty() ? keys : still_there(*conn, keys, deadline);
}

std::vector<std::string> RedisChannel::still_there(Connection& conn,
                                                   const std::vector<std::string>& keys,
                                                   Deadline deadline) {
  std::vector<std::string> there;
  Batch b;
  for (const auto& k : keys) {
    b.add({"EXISTS", b.keep("fmi:" + k + "#n"), b.keep("fmi:" + k + "#d")}, "object keys",
          [&there, &k](const redisReply& r) {
            if (integer_of(r, "EXISTS") > 0) there.push_back(k);
          });
  }
  if (!b.empty()) conn.exchange(b, deadline);
  return there;
}

void RedisChannel::prune(Connection& conn, Deadline deadline) {
  std::vector<std::string> keys;
  {
    std::lock_guard lk(created_mu_);
    keys.reserve(created_.size());
    for (const auto& [k, awaited] : created_) keys.push_back(k);
  }
  const auto there = still_there(conn, keys, deadline);
  // Only what was looked at goes: keys put by other threads meanwhile stay.
  std::unordered_set<std::string> kept(there.begin(), there.end());
  std::lock_guard lk(created_mu_);
  for (const auto& k : keys)
    if (!kept.count(k)) created_.erase(k);
  prune_at_ = std::max<std::size_t>(1024, 2 * created_.size());
}

void RedisChannel::finalize() noexcept {
  if (!initialised_ || finalised_) return;
  finalised_ = true;
  // Called once no other call runs (the Communicator waits for its operations
  // first): every connection is idle.
  std::vector<std::unique_ptr<Connection>> conns;
  {
    std::lock_guard lk(pool_mu_);
    conns.swap(idle_);
  }
  if (conns.empty()) conns.push_back(std::make_unique<Connection>(endpoint_));
  Connection& conn = *conns.front();
  try {
    const Deadline deadline = Clock::now() + max_timeout_;
    for (auto& c : conns) {
      try {
        c->drain(deadline);
      } catch (const Error&) {
        // A connection that broke has nothing more to send; the others go on.
      }
    }
    // Objects that peers will still read are left to them for up to max_timeout:
    // a root that returns from bcast and finalises at once must not delete the
    // message its peers are about to read. Redis cannot notify a deletion, so this
    // wait (and only this one) polls, with a growing interval.
    std::vector<std::string> awaited, unread;
    for (const auto& [k, a] : created_) (a ? awaited : unread).push_back(k);
    auto wait = first_wait_;
    while (!awaited.empty()) {
      awaited = still_there(conn, awaited, deadline);
      if (awaited.empty() || Clock::now() + wait >= deadline) break;
      std::this_thread::sleep_for(wait);
      wait = std::min<std::chrono::milliseconds>(wait * 2, 100ms);
    }
    unread.insert(unread.end(), awaited.begin(), awaited.end());
    // Whatever is left: delete only what this peer created (DEL of a key that is
    // gone is a no-op), in batches so that one round trip stays bounded.
    for (std::size_t i = 0; i < unread.size(); i += 256) {
      Batch b;
      for (std::size_t j = i; j < std::min(unread.size(), i + 256); ++j) {
        const auto& k = unread[j];
        b.add({"DEL", b.keep("fmi:" + k + "#n"), b.keep("fmi:" + k + "#d")}, "objects of this peer")
            .add({"ZREM", index_key_, k}, index_role_);
      }
      conn.exchange(b, deadline);
    }
    conn.drain(deadline);
  } catch (...) {
    // Nothing to report to: finalize runs from destructors. The TTL removes what
    // could not be deleted here.
  }
  created_.clear();
  {
    std::lock_guard lk(probed_mu_);
    probed_.clear();  // popped, never received: the TTL removes a data hash left behind
  }
  for (auto& c : conns) c->close();
  // One closed connection stays for a later init (it reconnects on first use).
  std::lock_guard lk(pool_mu_);
  idle_.push_back(std::move(conns.front()));
}

}  // namespace redis
}  // namespace FMI::Comm
