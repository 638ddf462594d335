// Explainability: the predictions and the default policy's choice for a grid of
// operations and sizes, as rows or as the aligned table `fmi-model` prints.
// The choice is made by the real default policy over stand-in channels of the
// right kind and model, so the table cannot drift from what the policy does.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "channels/registry.h"
#include "fmi/config.h"
#include "fmi/errors.h"
#include "fmi/model.h"
#include "policy/models.h"

namespace FMI::policy {

// The sizes of the table, for people ("8 B", "64 MiB", "1.5 MiB"). The tools print
// sizes with their own copy in tools/common/cli.h: a library cannot depend on tools/,
// and a formatting helper is no part of the public API.
std::string format_size(std::size_t bytes) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = double(bytes);
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  char buf[32];
  if (v == std::floor(v))
    std::snprintf(buf, sizeof buf, "%.0f %s", v, units[u]);
  else
    std::snprintf(buf, sizeof buf, "%.3g %s", v, units[u]);
  return buf;
}

}  // namespace FMI::policy

namespace FMI::Utils {

using policy::format_size;

namespace {

// Stand-ins that only carry a kind and a model: the policy never moves bytes.
[[noreturn]] void phantom_io() { FMI_THROW(UsageError, "explain: stand-in channels move no data"); }

class PhantomP2P final : public Comm::PeerToPeerChannel {
 public:
  explicit PhantomP2P(std::shared_ptr<const Comm::ChannelModel> m) : model_(std::move(m)) {}
  void init(const Comm::ChannelContext&) override {}
  void finalize() noexcept override {}
  std::chrono::milliseconds max_timeout() const override { return {}; }
  std::shared_ptr<const Comm::ChannelModel> model() const override { return model_; }
  void send(peer_num, Comm::ConstBytes, Comm::Tag, Deadline) override { phantom_io(); }
  void recv(peer_num, Comm::Bytes, Comm::Tag, Deadline) override { phantom_io(); }
  void sendrecv(peer_num, Comm::ConstBytes, peer_num, Comm::Bytes, Comm::Tag, Deadline) override {
    phantom_io();
  }

 private:
  std::shared_ptr<const Comm::ChannelModel> model_;
};

class PhantomStore final : public Comm::ObjectStoreChannel {
 public:
  explicit PhantomStore(std::shared_ptr<const Comm::ChannelModel> m) : model_(std::move(m)) {}
  void init(const Comm::ChannelContext&) override {}
  void finalize() noexcept override {}
  std::chrono::milliseconds max_timeout() const override { return {}; }
  std::shared_ptr<const Comm::ChannelModel> model() const override { return model_; }
  void put(const Comm::ObjectKey&, Comm::ConstBytes, unsigned, Deadline) override { phantom_io(); }
  void get(const Comm::ObjectKey&, Comm::Bytes, Deadline) override { phantom_io(); }
  void erase(const Comm::ObjectKey&, Deadline) override { phantom_io(); }
  std::vector<std::string> list(const std::string&, Deadline) override { phantom_io(); }

 private:
  std::shared_ptr<const Comm::ChannelModel> model_;
};

// Durations with 3 significant digits in a readable unit.
std::string format_latency(double s) {
  char buf[32];
  if (s < 1e-3)
    std::snprintf(buf, sizeof buf, "%.3g us", s * 1e6);
  else if (s < 1.0)
    std::snprintf(buf, sizeof buf, "%.3g ms", s * 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.3g s", s);
  return buf;
}

std::string format_usd(double usd) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3e", usd);
  return buf;
}

}  // namespace

std::vector<ExplainRow> explain_rows(const Config& config, const ExplainOptions& o) {
  if (o.num_peers == 0) FMI_THROW(UsageError, "explain: num_peers must be at least 1");
  // No channel listed: every built-in channel that has a model, in registry order.
  std::vector<std::string> names = o.channels;
  std::string modelled;
  for (const Comm::ChannelDescriptor* d : Comm::channels()) {
    if (!d->model) continue;
    if (o.channels.empty()) names.push_back(d->name);
    modelled += (modelled.empty() ? "" : ", ") + std::string(d->name);
  }
  ChannelMap channels;
  for (const auto& name : names) {
    auto model = Comm::make_builtin_model(name, config);
    if (!model) FMI_THROW(UsageError, "explain: unknown channel '", name, "' (", modelled, ")");
    if (Comm::builtin_kind(name) == Comm::ChannelKind::peer_to_peer)
      channels[name] = std::make_shared<PhantomP2P>(model);
    else
      channels[name] = std::make_shared<PhantomStore>(model);
  }
  auto policy = make_default_policy(config);
  std::vector<ExplainRow> rows;
  for (Operation op : o.ops) {
    // A barrier moves no data: one row whatever the sizes.
    std::vector<std::size_t> sizes =
        op == Operation::barrier ? std::vector<std::size_t>{0} : o.sizes;
    for (std::size_t size : sizes) {
      OperationInfo info;
      info.op = op;
      info.data_size = size;
      info.num_peers = o.num_peers;
      info.commutative = o.commutative;
      info.associative = o.associative;
      info.faas_memory = o.faas_memory;
      ExplainRow row;
      row.op = op;
      row.size = size;
      for (const auto& name : names) {
        const auto& ch = channels.at(name);
        row.per_channel.emplace_back(name, predict(info, ch->kind(), *ch->model(), config));
      }
      if (!channels.empty())
        for (Hint h : o.hints) {
          info.hint = h;
          row.choice.emplace_back(h, policy->get_channel(info, channels));
        }
      rows.push_back(std::move(row));
    }
  }
  return rows;
}

std::string explain(const Config& config, const ExplainOptions& o) {
  const auto rows = explain_rows(config, o);
  std::vector<std::vector<std::string>> cells;
  cells.push_back({"operation", "size", "channel", "algorithm", "latency", "cost USD",
                   "requests+transfer USD", "servers USD", "functions USD", "chosen for"});
  for (const auto& r : rows) {
    bool first = true;
    for (const auto& [name, p] : r.per_channel) {
      std::string chosen;
      for (const auto& [h, c] : r.choice)
        if (c == name) chosen += (chosen.empty() ? "" : ", ") + std::string(to_string(h));
      cells.push_back({first ? to_string(r.op) : "", first ? format_size(r.size) : "", name,
                       p.algorithm, format_latency(p.latency), format_usd(p.cost()),
                       format_usd(p.channel_cost), format_usd(p.infra_cost),
                       format_usd(p.faas_cost), chosen});
      first = false;
    }
  }
  std::vector<std::size_t> width(cells[0].size(), 0);
  for (const auto& line : cells)
    for (std::size_t i = 0; i < line.size(); ++i) width[i] = std::max(width[i], line[i].size());
  // Numbers right-aligned, names left-aligned.
  const std::vector<bool> right = {false, true, false, false, true, true, true, true, true, false};
  std::ostringstream os;
  os << "# " << o.num_peers << " peers, " << o.faas_memory << " MiB functions";
  if (!o.commutative && !o.associative)
    os << ", reductions non-commutative and non-associative";
  else if (!o.commutative)
    os << ", reductions non-commutative";
  else if (!o.associative)
    os << ", reductions non-associative";
  os << "; latency until every peer is done; cost per call = requests + transfer + servers' hours "
        "by share of time + functions' "
        "GiB-seconds\n";
  for (std::size_t l = 0; l < cells.size(); ++l) {
    const auto& line = cells[l];
    std::string text;
    for (std::size_t i = 0; i < line.size(); ++i) {
      const std::size_t pad = width[i] - line[i].size();
      if (i) text += "  ";
      if (right[i]) text.append(pad, ' ');
      text += line[i];
      if (!right[i] && i + 1 < line.size()) text.append(pad, ' ');
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    os << text << '\n';
    if (l == 0) {
      std::size_t total = 0;
      for (auto w : width) total += w + 2;
      os << std::string(total - 2, '-') << '\n';
    }
  }
  return os.str();
}

}  // namespace FMI::Utils
