// fmi-model: what the default channel policy predicts and chooses.
//
//   fmi-model --config config/fmi.json -n 8
//   fmi-model --config config/fmi.json -n 64 --memory 1024 --sizes 1K,16M --ops allreduce
//   fmi-model --config config/fmi.json -n 64 --memory 1024 --workload allreduce:704 --epochs 1000
//
// Prints, for each operation and size, the algorithm, the predicted latency and
// cost on each channel (Direct, Redis and S3 unless --channels says otherwise,
// whether or not the config enables them) and the channel chosen under each hint.
// With --epochs (or --workload), also the job's total time and cost per channel
// and with the policy's choice per call, term by term (fmi/job_model.h).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <iostream>

#include "fmi/config.h"
#include "fmi/errors.h"
#include "fmi/job_model.h"
#include "fmi/model.h"
#include "tools/common/cli.h"
#include "tools/common/operation.h"

namespace {

// "allreduce:704:2" -> 2 allreduce calls of 704 bytes per epoch (count default 1).
FMI::Utils::WorkloadItem parse_item(const std::string& text) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (std::size_t colon; (colon = text.find(':', start)) != std::string::npos; start = colon + 1)
    parts.push_back(text.substr(start, colon - start));
  parts.push_back(text.substr(start));
  if (parts.size() < 2 || parts.size() > 3)
    FMI_THROW(FMI::UsageError, "workload item '", text, "': expected op:size[:calls per epoch]");
  FMI::Utils::WorkloadItem item;
  item.op = FMI::Tools::parse_operation(parts[0]);
  item.size = FMI::Tools::parse_size<FMI::UsageError>(parts[1]);
  if (parts.size() == 3) {
    std::size_t pos = 0;
    try {
      item.per_epoch = std::stod(parts[2], &pos);
    } catch (const std::exception&) {
      pos = 0;
    }
    if (pos == 0 || pos != parts[2].size() || !(item.per_epoch >= 0))
      FMI_THROW(FMI::UsageError, "workload item '", text, "': calls per epoch '", parts[2],
                "' must be a number >= 0");
  }
  return item;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "fmi-model: predicted latency and cost of FMI operations per channel, and the "
      "channel the default policy chooses (see docs/policy.md)"};
  std::string config_path, sizes, ops, hint, channels;
  unsigned peers = 0, memory = 128;
  bool non_commutative = false, non_associative = false;
  double epochs = -1, per_epoch = 1;
  std::string workload;
  app.add_option("--config", config_path,
                 "configuration file (its \"model\" section); default: built-in defaults")
      ->check(CLI::ExistingFile);
  app.add_option("-n,--peers", peers, "number of peers")
      ->required()
      ->check(CLI::Range(1u, 1u << 20));
  app.add_option("--memory", memory, "function memory in MiB")->check(CLI::Range(1u, 1u << 20));
  app.add_option("--sizes", sizes, "comma-separated sizes per peer (8, 1K, 1M, 64M)");
  app.add_option("--ops", ops, "comma-separated operations (bcast, allreduce, ...)");
  app.add_option("--hint", hint, "show only the choice under this hint")
      ->check(CLI::IsMember({"fast", "cheap"}));
  app.add_option("--channels", channels, "comma-separated channels (Direct, Redis, S3)");
  app.add_flag("--non-commutative", non_commutative, "reductions use a non-commutative function");
  app.add_flag("--non-associative", non_associative, "reductions use a non-associative function");
  app.add_option("--epochs", epochs,
                 "job cost: epochs of the workload (each --ops x --sizes, or --workload)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--per-epoch", per_epoch, "job cost: calls of each --ops x --sizes per epoch")
      ->check(CLI::NonNegativeNumber);
  app.add_option(
      "--workload", workload,
      "job cost: comma-separated op:size[:calls per epoch], e.g. allreduce:704,bcast:1M:2");
  CLI11_PARSE(app, argc, argv);

  try {
    FMI::Config config;
    if (!config_path.empty()) config = FMI::Config::load(config_path);
    FMI::Utils::ExplainOptions o;
    o.num_peers = peers;
    o.faas_memory = memory;
    o.commutative = !non_commutative;
    o.associative = !non_associative;
    if (!sizes.empty()) {
      o.sizes.clear();
      for (const auto& s : FMI::Tools::split_list(sizes))
        o.sizes.push_back(FMI::Tools::parse_size<FMI::UsageError>(s));
    }
    if (!ops.empty()) {
      o.ops.clear();
      for (const auto& s : FMI::Tools::split_list(ops))
        o.ops.push_back(FMI::Tools::parse_operation(s));
    }
    if (!channels.empty()) o.channels = FMI::Tools::split_list(channels);
    if (hint == "fast") o.hints = {FMI::Utils::Hint::fast};
    if (hint == "cheap") o.hints = {FMI::Utils::Hint::cheap};
    std::cout << "# config: " << (config_path.empty() ? "built-in defaults" : config_path) << '\n';
    FMI::Utils::JobOptions job;
    if (!workload.empty()) {
      for (const auto& s : FMI::Tools::split_list(workload)) job.items.push_back(parse_item(s));
      // The per-call table shows the workload's own operations and sizes.
      o.ops.clear();
      o.sizes.clear();
      for (const auto& it : job.items) {
        if (std::find(o.ops.begin(), o.ops.end(), it.op) == o.ops.end()) o.ops.push_back(it.op);
        if (std::find(o.sizes.begin(), o.sizes.end(), it.size) == o.sizes.end())
          o.sizes.push_back(it.size);
      }
    } else if (epochs >= 0) {
      for (auto op : o.ops)
        for (auto size :
             op == FMI::Utils::Operation::barrier ? std::vector<std::size_t>{0} : o.sizes)
          job.items.push_back({op, size, per_epoch});
    }
    std::cout << FMI::Utils::explain(config, o);
    if (!job.items.empty()) {
      job.num_peers = peers;
      job.faas_memory = memory;
      job.epochs = epochs >= 0 ? epochs : 1;
      job.channels = o.channels;
      job.hints = o.hints;
      job.commutative = o.commutative;
      job.associative = o.associative;
      std::cout << '\n' << FMI::Utils::job_table(config, job);
    }
  } catch (const FMI::Error& e) {
    std::cerr << "fmi-model: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
