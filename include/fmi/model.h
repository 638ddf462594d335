// Performance and cost models of the built-in channels, the prediction of one
// operation on one channel (the algorithm the collectives would run on it, costed
// exchange by exchange), and the explain table behind the `fmi-model` tool.
// The default channel policy (fmi/policy.h) ranks channels with these same
// functions, so what `explain` prints is what the policy does. See docs/policy.md.
//
//   FMI::Utils::ExplainOptions o;
//   o.num_peers = 8;
//   std::cout << FMI::Utils::explain(FMI::Config::load("config/fmi.json"), o);
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "fmi/channel.h"
#include "fmi/policy.h"
#include "fmi/types.h"

namespace FMI {
struct Config;
}

namespace FMI::Comm {

/// The reference exchange model of a built-in channel (Direct, Redis, S3: every
/// channel of the registry that has one), with the parameters of its model.<Name>
/// section (bandwidth MiB/s, overhead ms, prices USD) and, for S3, the poll
/// interval backends.S3.timeout. nullptr for any other name.
std::shared_ptr<const ChannelModel> make_builtin_model(const std::string& channel_name,
                                                       const Config& config);

/// The kind of a built-in channel (Direct, InProcess: peer_to_peer; Redis, S3,
/// InProcessStore: object_store). Throws UsageError for any other name.
ChannelKind builtin_kind(const std::string& channel_name);

}  // namespace FMI::Comm

namespace FMI::Utils {

/// Predicted latency and cost of one operation on one channel.
struct Prediction {
  std::string algorithm;      // the algorithm the collectives would run (e.g. "ring")
  double latency = 0.0;       // seconds, until every peer is done
  double channel_cost = 0.0;  // USD billed per use of the channel: requests, transfer
  double infra_cost = 0.0;    // USD of servers billed per hour, by share of time
  double faas_cost = 0.0;     // USD of the functions' GiB-seconds while they take part
  double cost() const { return channel_cost + infra_cost + faas_cost; }
};

/// Latency and cost of `info` on a channel of `kind` whose exchanges follow `model`:
/// the exchanges of the algorithm that coll::choose_p2p / choose_store would pick,
/// plus model.hourly_price() x latency / 3600 (servers) and
/// gib_second_price x faas_memory/1024 x latency x participating functions.
Prediction predict(const OperationInfo& info, Comm::ChannelKind kind,
                   const Comm::ChannelModel& model, const Config& config);

/// What `explain` tabulates. Defaults: every operation, sizes 8 B .. 64 MiB, every
/// built-in channel that has a model (whether or not the config enables them).
struct ExplainOptions {
  peer_num num_peers = 8;
  unsigned faas_memory = 128;  // MiB
  std::vector<std::size_t> sizes = {8, 1024, 1024 * 1024, 64 * 1024 * 1024};
  std::vector<Operation> ops = {
      Operation::send,      Operation::bcast,    Operation::barrier,       Operation::gather,
      Operation::scatter,   Operation::reduce,   Operation::allreduce,     Operation::scan,
      Operation::allgather, Operation::alltoall, Operation::reduce_scatter};
  std::vector<std::string> channels;  // empty: the built-in channels with a model
  std::vector<Hint> hints = {Hint::fast, Hint::cheap};
  bool commutative = true;  // properties of the reduction function (reductions only)
  bool associative = true;
};

/// One (operation, size): the prediction per channel and the default policy's choice.
struct ExplainRow {
  Operation op{};
  std::size_t size = 0;
  std::vector<std::pair<std::string, Prediction>> per_channel;  // in options' order
  std::vector<std::pair<Hint, std::string>> choice;             // per hint in options
};

/// The rows of the explain table: the choice is made by the default policy over
/// the listed channels. Throws UsageError for an unknown channel name or 0 peers.
std::vector<ExplainRow> explain_rows(const Config& config, const ExplainOptions& options);

/// The same as an aligned text table (what `fmi-model` prints).
std::string explain(const Config& config, const ExplainOptions& options);

}  // namespace FMI::Utils
