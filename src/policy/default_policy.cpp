// The default channel policy: the channel with the lowest predicted latency
// (Hint::fast) or total cost (Hint::cheap), predicted by policy/models.cpp with the
// channel's model for the algorithm that would actually run on it. See docs/policy.md.
//
// Every peer must choose the same channel for the same call, so the choice is a
// pure function of what all peers share: the OperationInfo (which includes the
// hint), the registered channels' names, kinds and models, and the configuration.
// Ties are broken by the other objective, then by name (the map's order, which
// does not depend on registration order).
#include <cmath>
#include <limits>
#include <map>
#include <tuple>

#include "channels/registry.h"
#include "fmi/config.h"
#include "fmi/model.h"
#include "fmi/policy.h"

namespace FMI::Utils {
namespace {

class DefaultPolicy final : public ChannelPolicy {
 public:
  explicit DefaultPolicy(const Config& config) : config_(config) {
    // Built-in channels whose model() is null (or channels registered by the user
    // under a built-in name) are ranked with the reference model of that name.
    for (const Comm::ChannelDescriptor* d : Comm::channels())
      if (d->model) builtin_[d->name] = d->model(config_);
  }

  std::string get_channel(const OperationInfo& info, const ChannelMap& channels) override {
    constexpr double inf = std::numeric_limits<double>::infinity();
    const std::string* best = nullptr;
    std::tuple<double, double> best_key{inf, inf};
    for (const auto& [name, ch] : channels) {
      const auto model = model_of(name, *ch);
      if (!model) continue;
      const Prediction p = predict(info, ch->kind(), *model, config_);
      const double lat = sane(p.latency), cost = sane(p.cost());
      const auto key = info.hint == Hint::fast ? std::tuple{lat, cost} : std::tuple{cost, lat};
      if (!best || key < best_key) {
        best = &name;
        best_key = key;
      }
    }
    if (best) return *best;
    // Nothing is modelled: point-to-point channels first (no per-request price and
    // the lowest latency of any medium), then by name.
    for (const auto& [name, ch] : channels)
      if (ch->kind() == Comm::ChannelKind::peer_to_peer) return name;
    return channels.begin()->first;
  }

 private:
  std::shared_ptr<const Comm::ChannelModel> model_of(const std::string& name,
                                                     const Comm::Channel& ch) const {
    if (auto m = ch.model()) return m;
    auto it = builtin_.find(name);
    return it == builtin_.end() ? nullptr : it->second;
  }

  // A model that returns NaN or a negative value must not win by accident.
  static double sane(double v) {
    return std::isnan(v) || v < 0 ? std::numeric_limits<double>::infinity() : v;
  }

  Config config_;
  std::map<std::string, std::shared_ptr<const Comm::ChannelModel>> builtin_;
};

}  // namespace

std::shared_ptr<ChannelPolicy> make_default_policy(const Config& config) {
  return std::make_shared<DefaultPolicy>(config);
}

}  // namespace FMI::Utils
