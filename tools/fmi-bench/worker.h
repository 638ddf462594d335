// The measuring side of fmi-bench: what every function runs, over one
// Communicator (a process started by fmirun, or a thread over the in-process hub).
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "bench_common.h"
#include "fmi/communicator.h"

namespace fmibench {

inline const std::vector<std::string>& all_ops() {
  static const std::vector<std::string> ops = {
      "pingpong", "bandwidth",      "bcast",     "barrier",   "gather",
      "scatter",  "reduce",         "allreduce", "scan",      "allgather",
      "alltoall", "reduce_scatter", "mesh",      "alltoallv", "overlap"};
  return ops;
}

struct WorkerOptions {
  std::vector<std::string> ops;
  std::vector<std::size_t> sizes;
  std::size_t iters = 1000;   // most timed iterations per point
  std::size_t min_iters = 5;  // fewest, even when one iteration is slower than the budget
  std::size_t warmup = 10;
  double budget_s = 1.0;                // measurement time per point, approximately
  std::size_t max_buffer = 512u << 20;  // bytes per peer; bigger points are skipped
  std::string channel_label;            // the row's channel; empty: the one the policy picks
  unsigned faas_memory = 128;           // MiB, for the model's cost of the functions' time
};

struct WorkerEvents {
  /// Peer 0 only: one finished point.
  std::function<void(const Row&)> row;
  /// Peer 0 only: a point starts (op, bytes) or is skipped (reason non-empty).
  std::function<void(const std::string& op, std::size_t bytes, const std::string& skipped)>
      progress;
};

/// Runs every (op, size) point on this peer. Collective over the communicator:
/// every peer calls it with the same options. Throws FMI errors as they come.
void run_worker(FMI::Communicator& comm, const WorkerOptions& opt, const WorkerEvents& ev);

}  // namespace fmibench
