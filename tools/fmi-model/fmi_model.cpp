// fmi-model: what the default channel policy predicts and chooses.
//
//   fmi-model --config config/fmi.json -n 8
//   fmi-model --config config/fmi.json -n 64 --memory 1024 --sizes 1K,16M --ops allreduce
//
// Prints, for each operation and size, the algorithm, the predicted latency and
// cost on each channel (Direct, Redis and S3 unless --channels says otherwise,
// whether or not the config enables them) and the channel chosen under each hint.
#include <CLI/CLI.hpp>
#include <iostream>

#include "fmi/config.h"
#include "fmi/errors.h"
#include "fmi/model.h"
#include "tools/common/cli.h"
#include "tools/common/operation.h"

int main(int argc, char** argv) {
  CLI::App app{"fmi-model: predicted latency and cost of FMI operations per channel, and the "
               "channel the default policy chooses (see docs/policy.md)"};
  std::string config_path, sizes, ops, hint, channels;
  unsigned peers = 0, memory = 128;
  bool non_commutative = false, non_associative = false;
  app.add_option("--config", config_path,
                 "configuration file (its \"model\" section); default: built-in defaults")
      ->check(CLI::ExistingFile);
  app.add_option("-n,--peers", peers, "number of peers")->required()->check(CLI::Range(1u, 1u << 20));
  app.add_option("--memory", memory, "function memory in MiB")->check(CLI::Range(1u, 1u << 20));
  app.add_option("--sizes", sizes, "comma-separated sizes per peer (8, 1K, 1M, 64M)");
  app.add_option("--ops", ops, "comma-separated operations (bcast, allreduce, ...)");
  app.add_option("--hint", hint, "show only the choice under this hint")
      ->check(CLI::IsMember({"fast", "cheap"}));
  app.add_option("--channels", channels, "comma-separated channels (Direct, Redis, S3)");
  app.add_flag("--non-commutative", non_commutative, "reductions use a non-commutative function");
  app.add_flag("--non-associative", non_associative, "reductions use a non-associative function");
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
      for (const auto& s : FMI::Tools::split_list(ops)) o.ops.push_back(FMI::Tools::parse_operation(s));
    }
    if (!channels.empty()) o.channels = FMI::Tools::split_list(channels);
    if (hint == "fast") o.hints = {FMI::Utils::Hint::fast};
    if (hint == "cheap") o.hints = {FMI::Utils::Hint::cheap};
    std::cout << "# config: " << (config_path.empty() ? "built-in defaults" : config_path) << '\n'
              << FMI::Utils::explain(config, o);
  } catch (const FMI::Error& e) {
    std::cerr << "fmi-model: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
