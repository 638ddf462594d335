// Internals of the policy's models: the communication pattern of each collective
// algorithm, expressed in exchanges. (The channels' own exchange models live in
// their folders: src/channels/<name>/model.h.)
// Public entry points are in include/fmi/model.h; this header is for the policy's
// own files and its tests.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "collectives/collectives.h"
#include "fmi/channel.h"
#include "fmi/config.h"
#include "fmi/policy.h"

namespace FMI::policy {

/// `count` exchanges of `producers` -> `consumers` peers, `bytes` each.
struct Exchange {
  double count = 1;
  unsigned producers = 1;
  unsigned consumers = 1;
  std::size_t bytes = 0;
  bool operator==(const Exchange&) const = default;
};

/// What one algorithm does on one channel kind, in exchanges:
///  - `path`: the exchanges on the critical path, one after the other
///    (latency = sum of count x latency(P, C, bytes));
///  - `traffic`: every exchange that happens, wherever it happens
///    (channel cost = sum of count x cost(P, C, bytes)).
/// On a point-to-point channel a round of k parallel 1 -> 1 messages costs the
/// latency of one message (every function has its own link) and k messages.
/// On an object store every exchange goes through the one store.
struct Pattern {
  coll::Algorithm algorithm = coll::Algorithm::linear;
  std::vector<Exchange> path;
  std::vector<Exchange> traffic;
  unsigned participants = 0;  // functions that take part and pay for the time
};

/// The reduction properties the policy assumes: OperationInfo carries no element
/// size, so element-wise functions are assumed (granularity 1 byte).
coll::ReduceProps assumed_props(const Utils::OperationInfo& info);

/// The pattern of the algorithm that `kind`'s collectives choose for `info`.
Pattern pattern(const Utils::OperationInfo& info, Comm::ChannelKind kind);

/// Sizes for people ("8 B", "64 MiB", "1.5 MiB"): the tables of explain and of the
/// job model (the tools have their own copy in tools/common/cli.h).
std::string format_size(std::size_t bytes);

}  // namespace FMI::policy
