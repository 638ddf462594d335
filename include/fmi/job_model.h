// Job-level cost: what a whole workload (operations and sizes, calls per epoch,
// epochs, functions, memory) is predicted to take and cost on each channel, and
// with the default policy's per-call choice, before anything is deployed. Built
// on the per-call predictions of fmi/model.h; formulas in docs/policy.md ("Job
// cost"). `fmi-model --epochs` prints it.
//
//   FMI::Utils::JobOptions j;
//   j.num_peers = 64;
//   j.faas_memory = 2048;
//   j.epochs = 1000;
//   j.items = {{FMI::Utils::Operation::allreduce, 704, 1}};
//   std::cout << FMI::Utils::job_table(FMI::Config::load("config/fmi.json"), j);
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "fmi/model.h"

namespace FMI::Utils {

/// `per_epoch` calls of `op` with `size` bytes per peer (as OperationInfo::data_size).
struct WorkloadItem {
  Operation op = Operation::allreduce;
  std::size_t size = 0;
  double per_epoch = 1;
};

struct JobOptions {
  peer_num num_peers = 8;
  unsigned faas_memory = 128;  // MiB
  double epochs = 1;
  std::vector<WorkloadItem> items;
  /// Channels enabled for the job (each one is set up whether the policy uses it
  /// or not); one row each, and the policy chooses among them. Empty: every
  /// built-in channel with a model, in registry order (as ExplainOptions).
  std::vector<std::string> channels;
  std::vector<Hint> hints = {Hint::cheap};  // one "policy" row per hint
  bool commutative = true, associative = true;
};

/// Totals of the job on one channel, or with the policy's choice per call.
struct JobCost {
  std::string label;                // channel name, or "policy (cheap)"
  double time = 0;                  // s: sum over items of epochs x per_epoch x latency
  double functions = 0;             // USD: GiB-seconds of every participating function
  double requests = 0;              // USD: requests and transfer of the calls
  double servers = 0;               // USD: servers billed per hour, by the calls' share of time
  double setup = 0;                 // USD: set-up and tear-down requests (registrations,
                                    // pairings, S3 HEAD and finalize barrier)
  std::vector<std::string> chosen;  // policy rows: the channel of each item
  double total() const { return functions + requests + servers + setup; }
};

struct JobEstimate {
  std::vector<JobCost> per_channel;  // in options' channel order (or registry order)
  std::vector<JobCost> policy;       // one per hint
};

/// Throws UsageError for an unknown channel, 0 peers, no items or negative counts.
JobEstimate estimate_job(const Config& config, const JobOptions& options);

/// The estimate as an aligned text table with every term (what fmi-model prints).
std::string job_table(const Config& config, const JobOptions& options);

/// Upper bound of the pairs of functions that `items` connect on a point-to-point
/// channel: min(n(n-1)/2, the messages of one call of each item, summed).
double pairings_bound(const JobOptions& options, const std::vector<WorkloadItem>& items);

}  // namespace FMI::Utils
