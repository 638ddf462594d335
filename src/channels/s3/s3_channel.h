// The S3 channel: an object-store channel over S3 or an S3-compatible server.
// How it works, its configuration, polling, lifecycle and cost model: docs/s3.md.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "channels/s3/config.h"
#include "channels/s3/s3_client.h"
#include "fmi/channel.h"

namespace FMI::Comm {

class S3Channel final : public ObjectStoreChannel {
 public:
  /// Reads the AWS_* environment variables (ConfigError naming a missing one);
  /// `config` holds checked values (descriptor.cpp checks them). No network yet.
  explicit S3Channel(const S3Config& config);
  ~S3Channel() override;

  /// Checks that the bucket exists (ChannelError naming bucket and endpoint).
  void init(const ChannelContext& ctx) override;
  /// Store-level barrier of all peers (only if a collective ran on this channel),
  /// then deletes what this peer created or consumed and has not deleted yet. A
  /// channel that moved nothing sends no request. Bounded by max_timeout; never
  /// throws.
  void finalize() noexcept override;
  std::chrono::milliseconds max_timeout() const override { return cfg_.max_timeout; }
  std::shared_ptr<const ChannelModel> model() const override { return model_; }

  void put(const ObjectKey& key, ConstBytes data, unsigned readers,
           Utils::Deadline deadline) override;
  void get(const ObjectKey& key, Bytes out, Utils::Deadline deadline) override;
  void erase(const ObjectKey& key, Utils::Deadline deadline) override;
  std::vector<std::string> list(const std::string& prefix, Utils::Deadline deadline) override;
  /// S3 cannot wait on keys: polls like get (same intervals), each poll one LIST
  /// of the wanted keys' common prefix (one GET of the key for a single source),
  /// then one GET that stops at the headers for the size. Cost: docs/s3.md.
  std::optional<Probed> probe(std::span<const ObjectKey> wanted, bool block,
                              Utils::Deadline deadline) override;

  /// HTTP requests sent (every one is billed by S3), retries and polls included.
  std::uint64_t requests() const { return client_.requests(); }
  /// GETs (or LISTs in finalize) that found nothing yet: the cost of waiting.
  std::uint64_t polls() const { return polls_.load(); }
  /// Connections opened (keep-alive keeps this near 1 on servers that allow it).
  std::uint64_t connections() const { return client_.connections(); }
  /// ListObjectsV2 page size (S3's maximum and default 1000; tests lower it).
  void set_list_page_size(unsigned n) { page_size_ = n; }
  /// Longest pause between two polls of a missing object (at least config timeout).
  static constexpr std::chrono::milliseconds kMaxPollInterval{1000};
  /// Consumed single-reader objects are deleted in batches of this many (and at
  /// finalize), which keeps the DELETE round trip off the receive path.
  static constexpr std::size_t kDeleteBatch = 100;

  s3::Client& client() { return client_; }

 private:
  /// Polls until `ready()` returns true (adaptive interval, never past deadline).
  template <typename F>
  void poll_until(F&& ready, Utils::Deadline deadline, const std::string& what,
                  const std::string& key);
  void queue_delete(std::string key, Utils::Deadline deadline);
  void flush_deletes(Utils::Deadline deadline);
  void finalize_barrier(Utils::Deadline deadline);
  void check_init(const char* op) const;

  S3Config cfg_;
  s3::Client client_;
  std::shared_ptr<const ChannelModel> model_;  // the reference S3 model (model.h)
  ChannelContext ctx_;
  bool inited_ = false;
  bool finalized_ = false;
  // A collective's object was put or read here (tag other than send): then every
  // peer of the communicator did so, and all of them run the finalize barrier.
  std::atomic<bool> collective_{false};
  unsigned page_size_ = 1000;
  std::atomic<std::uint64_t> polls_{0};

  std::mutex mu_;                     // guards the two lists below
  std::vector<std::string> owned_;    // multi-reader objects put here: deleted at finalize
  std::vector<std::string> pending_;  // consumed single-reader objects not yet deleted
};

}  // namespace FMI::Comm
