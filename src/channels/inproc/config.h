// The in-process channels' configuration: backends.InProcess and
// backends.InProcessStore (docs/configuration.md). Neither has a model section.
#pragma once

#include <chrono>

#include "fmi/config.h"

namespace FMI::Comm {

/// Point-to-point channel between the threads of one process.
struct InProcessConfig final : ChannelConfigOf<InProcessConfig> {
  static constexpr const char* kName = "InProcess";
  std::chrono::milliseconds max_timeout{30000};
};

/// Object-store channel between the threads of one process.
struct InProcessStoreConfig final : ChannelConfigOf<InProcessStoreConfig> {
  static constexpr const char* kName = "InProcessStore";
  std::chrono::milliseconds max_timeout{30000};
};

}  // namespace FMI::Comm
