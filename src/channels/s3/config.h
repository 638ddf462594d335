// The S3 channel's configuration: backends.S3 and model.S3 (parsed by
// descriptor.cpp; docs/configuration.md and docs/s3.md list the fields).
#pragma once

#include <chrono>
#include <string>

#include "fmi/config.h"

namespace FMI::Comm {

struct S3Config final : ChannelConfigOf<S3Config> {
  static constexpr const char* kName = "S3";
  using ms = std::chrono::milliseconds;

  std::string bucket_name;
  std::string s3_region;
  ms timeout{100};  // first poll interval while waiting for an object
  ms max_timeout{10000};
  std::string endpoint;  // optional; empty = https://s3.<region>.amazonaws.com

  /// Model parameters: bandwidth in MiB/s, overhead in ms, prices in USD per
  /// request (upload_price a PUT, download_price a GET) and per GiB (transfer).
  struct Model {
    double bandwidth = 50.0, overhead = 40.4, transfer_price = 0.0;
    double download_price = 0.00000043, upload_price = 0.0000054;
  } model;
};

}  // namespace FMI::Comm
