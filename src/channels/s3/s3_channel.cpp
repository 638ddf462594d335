#include "channels/s3/s3_channel.h"

#include <algorithm>
#include <cstdio>
#include <set>
#include <thread>

#include "channels/s3/model.h"
#include "fmi/errors.h"

namespace FMI::Comm {

using Utils::Clock;
using Utils::Deadline;
using namespace std::chrono_literals;

namespace {

s3::ClientOptions client_options(const S3Config& c) {
  return s3::ClientOptions{c.bucket_name, c.s3_region, c.endpoint, s3::Credentials::from_env()};
}

}  // namespace

// ---- channel ----------------------------------------------------------------

// The values were checked when the configuration was parsed (descriptor.cpp).
S3Channel::S3Channel(const S3Config& config)
    : cfg_(config),
      client_(client_options(config)),
      model_(std::make_shared<S3Model>(config.model, config.timeout)) {}

S3Channel::~S3Channel() { finalize(); }

void S3Channel::check_init(const char* op) const {
  if (!inited_) FMI_THROW(UsageError, "S3 channel: ", op, " called before init()");
  if (finalized_) FMI_THROW(UsageError, "S3 channel: ", op, " called after finalize()");
}

void S3Channel::init(const ChannelContext& ctx) {
  if (ctx.comm_name.empty())
    FMI_THROW(UsageError, "S3 channel: empty communicator name (it prefixes every object key)");
  // The name prefixes every key: "a/../../other" would reach bucket "other".
  s3::check_key(ctx.comm_name, "communicator name");
  ctx_ = ctx;
  client_.head_bucket(Clock::now() + cfg_.max_timeout);
  inited_ = true;
  finalized_ = false;
  collective_ = false;
}

// Waiting for an object on S3 can only be done by asking again. The first pause
// is the configured `timeout`; it grows by 1.5x per miss up to kMaxPollInterval,
// so short waits stay short and long waits do not pay one request per few ms.
template <typename F>
void S3Channel::poll_until(F&& ready, Deadline deadline, const std::string& what,
                           const std::string& key) {
  const auto start = Clock::now();
  auto interval = std::chrono::duration<double, std::milli>(cfg_.timeout);
  const auto cap =
      std::chrono::duration<double, std::milli>(std::max(kMaxPollInterval, cfg_.timeout));
  std::uint64_t misses = 0;
  for (;;) {
    try {
      if (ready()) return;
    } catch (const TimeoutError& e) {
      FMI_THROW(TimeoutError, "S3 channel, peer ", ctx_.peer_id, ": ", what, " '", key,
                "' timed out after ", format_duration(Clock::now() - start), " (", misses,
                " polls): ", e.what());
    }
    ++misses;
    ++polls_;
    const auto now = Clock::now();
    if (now >= deadline)
      FMI_THROW(TimeoutError, "S3 channel, peer ", ctx_.peer_id, ": ", what, " '", key,
                "' did not appear within ", format_duration(now - start), " (", misses,
                " polls of bucket ", client_.where(), ")");
    const auto pause = std::min<Clock::duration>(
        std::chrono::duration_cast<Clock::duration>(interval), deadline - now);
    std::this_thread::sleep_for(pause);
    interval = std::min(interval * 1.5, cap);
  }
}

void S3Channel::put(const ObjectKey& key, ConstBytes data, unsigned readers, Deadline deadline) {
  check_init("put");
  if (key.tag.op != Utils::Operation::send) collective_ = true;
  if (readers == 0) return;  // nobody would read it: storing it would only leak it
  const std::string k = key.str(ctx_.comm_name);
  // The reader learns from this header whether it is the only one and may delete
  // the object itself: S3 cannot count reads atomically.
  client_.put_object(k, data, {{"x-amz-meta-fmi-readers", std::to_string(readers)}}, deadline);
  if (readers > 1) {
    std::lock_guard lk(mu_);
    owned_.push_back(k);
  }
}

void S3Channel::get(const ObjectKey& key, Bytes out, Deadline deadline) {
  check_init("get");
  if (key.tag.op != Utils::Operation::send) collective_ = true;
  const std::string k = key.str(ctx_.comm_name);
  s3::GetResult g;
  poll_until([&] { return (g = client_.get_object(k, out, deadline)).found; }, deadline,
             "get of object from peer " + std::to_string(key.from), k);
  const bool single_reader = g.readers.value_or(0) == 1;
  if (!g.size_matches) {
    if (single_reader) queue_delete(k, deadline);
    FMI_THROW(PeerError, "S3 channel: object '", k, "' from peer ", key.from, " holds ", g.size,
              " bytes, but peer ", ctx_.peer_id, " expects ", out.size(), " bytes");
  }
  if (single_reader) queue_delete(k, deadline);
}

void S3Channel::erase(const ObjectKey& key, Deadline deadline) {
  check_init("erase");
  const std::string k = key.str(ctx_.comm_name);
  client_.delete_object(k, deadline);
  std::lock_guard lk(mu_);
  std::erase(owned_, k);
  std::erase(pending_, k);
}

std::vector<std::string> S3Channel::list(const std::string& prefix, Deadline deadline) {
  check_init("list");
  auto keys = client_.list_objects(prefix, deadline, page_size_);
  // Consumed objects whose deletion is deferred are already gone logically.
  std::lock_guard lk(mu_);
  if (!pending_.empty()) {
    const std::set<std::string> gone(pending_.begin(), pending_.end());
    std::erase_if(keys, [&](const std::string& k) { return gone.count(k) > 0; });
  }
  return keys;
}

// An any-source receive wants "<comm>/send/<seq_s>/<s>-<me>" for every source s:
// they share "<comm>/send/" (plus the sub-communicator's element), so one LIST
// per poll sees them all, whatever the number of sources. A LIST returns up to
// page_size_ keys per request, including messages in flight to other peers.
std::optional<Probed> S3Channel::probe(std::span<const ObjectKey> wanted, bool block,
                                       Deadline deadline) {
  check_init("probe");
  std::vector<std::string> keys;
  for (const auto& k : wanted) keys.push_back(k.str(ctx_.comm_name));
  if (keys.empty()) return std::nullopt;
  std::string prefix = keys[0];
  for (const auto& k : keys)
    prefix.resize(std::mismatch(prefix.begin(), prefix.end(), k.begin(), k.end()).first -
                  prefix.begin());
  std::optional<Probed> found;
  // The size: a GET into an empty buffer stops at the headers (nothing is
  // downloaded, the object stays for the get that follows).
  auto sized = [&](std::size_t i) {
    const s3::GetResult g = client_.get_object(keys[i], {}, deadline);
    if (g.found) found = Probed{i, g.size};
    return g.found;
  };
  auto look = [&] {
    if (keys.size() == 1) {
      {
        std::lock_guard lk(mu_);  // consumed, its deletion deferred: gone logically
        if (std::find(pending_.begin(), pending_.end(), keys[0]) != pending_.end()) return false;
      }
      return sized(0);
    }
    const auto listed = list(prefix, deadline);  // without consumed objects
    const std::set<std::string> there(listed.begin(), listed.end());
    for (std::size_t i = 0; i < keys.size(); ++i)
      if (there.count(keys[i]) && sized(i)) return true;
    return false;
  };
  if (!block) {
    look();
    return found;
  }
  poll_until(
      look, deadline,
      "probe for the next message of " + std::to_string(keys.size()) + " source(s), objects under",
      prefix);
  return found;
}

void S3Channel::queue_delete(std::string key, Deadline deadline) {
  bool flush = false;
  {
    std::lock_guard lk(mu_);
    pending_.push_back(std::move(key));
    flush = pending_.size() >= kDeleteBatch;
  }
  if (flush) flush_deletes(deadline);
}

void S3Channel::flush_deletes(Deadline deadline) {
  std::vector<std::string> keys;
  {
    std::lock_guard lk(mu_);
    keys.swap(pending_);
  }
  try {
    client_.delete_objects(keys, deadline);
  } catch (...) {
    std::lock_guard lk(mu_);  // keep them for finalize
    pending_.insert(pending_.end(), keys.begin(), keys.end());
    throw;
  }
}

// A barrier through the store, so that the creators of multi-reader objects know
// every reader is done before deleting them. Peer 0 lists the arrival markers by
// their prefix (one request per poll, whatever the peer count), then releases each
// peer with its own marker, which that peer deletes: no object is ever read by
// more than one peer, so every marker has exactly one deleter.
void S3Channel::finalize_barrier(Deadline deadline) {
  const std::string pre = ctx_.comm_name + "/_fin/";
  const unsigned n = ctx_.num_peers;
  if (ctx_.peer_id == 0) {
    std::set<std::string> expected;
    for (unsigned i = 1; i < n; ++i) expected.insert(pre + "arrived-" + std::to_string(i));
    poll_until(
        [&] {
          for (const auto& k : client_.list_objects(pre + "arrived-", deadline, page_size_))
            expected.erase(k);
          return expected.empty();
        },
        deadline, "finalize: waiting for every peer's arrival marker", pre + "arrived-*");
    for (unsigned i = 1; i < n; ++i)
      client_.put_object(pre + "release-" + std::to_string(i), {}, {}, deadline);
    std::lock_guard lk(mu_);
    for (unsigned i = 1; i < n; ++i) pending_.push_back(pre + "arrived-" + std::to_string(i));
  } else {
    client_.put_object(pre + "arrived-" + std::to_string(ctx_.peer_id), {}, {}, deadline);
    const std::string rel = pre + "release-" + std::to_string(ctx_.peer_id);
    poll_until([&] { return client_.get_object(rel, {}, deadline).found; }, deadline,
               "finalize: waiting for peer 0's release marker", rel);
    std::lock_guard lk(mu_);
    pending_.push_back(rel);
  }
}

// The barrier only protects multi-reader objects, which only collectives create;
// objects of a send have one reader, who deletes them. Whether a collective ran on
// this channel is the same on every peer: the policy's choice is a pure function
// of shared inputs, so all peers run each collective on the same channel, and in
// every store algorithm each of n > 1 peers puts or gets at least one object of
// it. So either every peer runs the barrier or none does, and a channel the
// policy never used (all traffic on Direct, hint fast) costs and waits for nothing.
void S3Channel::finalize() noexcept {
  if (!inited_ || finalized_) return;
  finalized_ = true;
  try {
    if (collective_ && ctx_.num_peers > 1) finalize_barrier(Clock::now() + cfg_.max_timeout);
  } catch (const std::exception& e) {
    // Peer 0 will not delete this peer's arrival marker now: do it here.
    if (ctx_.peer_id != 0) {
      std::lock_guard lk(mu_);
      pending_.push_back(ctx_.comm_name + "/_fin/arrived-" + std::to_string(ctx_.peer_id));
    }
    // finalize must not throw (it runs in destructors); this is the only report.
    std::fprintf(stderr,
                 "FMI S3 channel: finalize barrier of peer %u in communicator '%s' failed: %s; "
                 "deleting this peer's objects anyway\n",
                 ctx_.peer_id, ctx_.comm_name.c_str(), e.what());
  }
  try {
    std::vector<std::string> keys;
    {
      std::lock_guard lk(mu_);
      keys = std::move(pending_);
      keys.insert(keys.end(), owned_.begin(), owned_.end());
      pending_.clear();
      owned_.clear();
    }
    if (!keys.empty()) client_.delete_objects(keys, Clock::now() + cfg_.max_timeout);
  } catch (const std::exception& e) {
    std::fprintf(stderr,
                 "FMI S3 channel: peer %u of communicator '%s' could not delete its objects "
                 "from %s: %s\n",
                 ctx_.peer_id, ctx_.comm_name.c_str(), client_.where().c_str(), e.what());
  }
}

}  // namespace FMI::Comm
