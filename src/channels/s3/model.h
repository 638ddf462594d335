// The S3 channel's reference exchange model, polling included (docs/policy.md).
#pragma once

#include <chrono>

#include "channels/s3/config.h"
#include "fmi/channel.h"

namespace FMI::Comm {

class S3Model final : public ChannelModel {
 public:
  /// `first_poll`: the channel's first poll interval (backends.S3.timeout); the
  /// channel multiplies it by 1.5 after each miss, up to max(1 s, first_poll).
  S3Model(const S3Config::Model& m, std::chrono::milliseconds first_poll);
  double latency(unsigned producers, unsigned consumers, std::size_t bytes) const override;
  double cost(unsigned producers, unsigned consumers, std::size_t bytes) const override;
  double setup_cost(unsigned num_peers, double pairs, bool collective) const override;

  /// Seconds until a producer's object exists (one upload).
  double upload_time(std::size_t bytes) const;
  /// Unsuccessful GETs of a consumer that starts polling when the upload starts
  /// and whose object appears after `wait` seconds.
  unsigned misses(double wait) const;
  /// Poll interval in effect after `misses` misses (seconds).
  double interval_after(unsigned misses) const;

 private:
  S3Config::Model m_;
  double first_poll_;  // seconds
};

}  // namespace FMI::Comm
