// The Redis channel: an object store on a Redis server, without polling.
//
// One logical object K = ObjectKey::str(comm) ("<comm>/<op>/<seq>/<from>-<to>") is
// held under at most three keys, all with a TTL (see docs/redis.md):
//   fmi:K#n          notification list: one element per reader; readers BLPOP it
//   fmi:K#d          data hash (large or many-reader objects): field "r" counts the
//                    reads still to come, fields "0", "1", ... hold 32 MiB chunks
//   fmi:<comm>#idx   sorted set of the communicator's live objects (list by prefix)
// A small object goes into the list elements themselves, so a one-reader message is
// one RPUSH and one BLPOP, as fast as Redis hands data over. The last reader deletes
// what the object used; finalize() deletes what this peer created that is left.
//
// Thread-safe (channel.h): every call takes a connection of its own from a small
// pool for as long as it runs (a BLPOP holds its connection until the message
// comes), so calls from several threads (a communicator's non-blocking operations)
// run side by side; the pool grows to the number of calls in flight at once and
// keeps its connections until finalize.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "channels/redis/config.h"
#include "channels/redis/connection.h"
#include "fmi/channel.h"

namespace FMI::Comm::redis {

class RedisChannel final : public ObjectStoreChannel {
 public:
  /// No network yet; `config` holds checked values (descriptor.cpp checks them).
  explicit RedisChannel(const RedisConfig& config);
  ~RedisChannel() override;

  /// Connects (ChannelError naming host:port when that fails), authenticates,
  /// selects the database.
  void init(const ChannelContext& ctx) override;
  /// Waits (up to max_timeout) for the peers to read what this peer put, then
  /// deletes whatever of it is left, and disconnects. Idempotent, never throws.
  void finalize() noexcept override;
  std::chrono::milliseconds max_timeout() const override { return max_timeout_; }
  std::shared_ptr<const ChannelModel> model() const override { return model_; }

  void put(const ObjectKey& key, ConstBytes data, unsigned readers,
           Utils::Deadline deadline) override;
  void get(const ObjectKey& key, Bytes out, Utils::Deadline deadline) override;
  void erase(const ObjectKey& key, Utils::Deadline deadline) override;
  /// Objects of this channel's communicator (put and not yet read by all their
  /// readers, erased or expired) whose key starts with `prefix`, in byte order.
  std::vector<std::string> list(const std::string& prefix, Utils::Deadline deadline) override;
  /// Blocking: one BLPOP on all the wanted notification lists at once; the element
  /// it pops is kept here for the get() that follows (a BLPOP that times out pops
  /// nothing). Non-blocking: one LINDEX per list in one round trip, popping nothing.
  std::optional<Probed> probe(std::span<const ObjectKey> wanted, bool block,
                              Utils::Deadline deadline) override;

  /// Messages up to this size (times the number of readers) travel inside the
  /// notification list; larger ones go to the data hash.
  static constexpr std::size_t kInlineBytes = 1024 * 1024;
  /// Chunk size of the data hash: far below Redis' 512 MB limit per value, large
  /// enough that per-command overhead vanishes.
  static constexpr std::size_t kChunkBytes = 32 * 1024 * 1024;

 private:
  struct Names;
  class Lease;
  Names names(const ObjectKey& key) const;
  void require_init(const char* op) const;
  // Which of `keys` still exist (notification list or data hash); one round trip.
  std::vector<std::string> still_there(Connection& conn, const std::vector<std::string>& keys,
                                       Utils::Deadline deadline);
  void prune(Connection& conn, Utils::Deadline deadline);
  // Clean-up a reader sends after it has its data, without waiting for the reply.
  void tidy_up(Connection& conn, Batch& batch, Utils::Deadline deadline);

  std::chrono::milliseconds max_timeout_;
  std::chrono::milliseconds first_wait_;  // first interval of finalize's wait
  std::string ttl_ms_;                    // PEXPIRE argument of every key
  std::shared_ptr<const ChannelModel> model_;
  Endpoint endpoint_;
  std::string address_;  // "host:port", for messages
  std::mutex pool_mu_;   // guards idle_
  // Connections no call is using; a call takes one (or opens a new one) and gives
  // it back when done. Deferred clean-up rides with a connection's next use.
  std::vector<std::unique_ptr<Connection>> idle_;
  ChannelContext ctx_;
  std::string index_key_, index_role_;
  bool initialised_ = false;
  bool finalised_ = false;
  // Logical keys this peer put, and whether anyone will read them (readers > 0):
  // what finalize waits for and then deletes. Pruned of consumed objects as it grows.
  std::mutex created_mu_;  // guards created_ and prune_at_
  std::unordered_map<std::string, bool> created_;
  std::size_t prune_at_ = 1024;
  // Notification elements a probe popped, by list name, until their get().
  std::mutex probed_mu_;
  std::unordered_map<std::string, std::string> probed_;
  std::optional<std::string> take_probed(const std::string& list);
};

}  // namespace FMI::Comm::redis
