// Job-level cost (include/fmi/job_model.h): the per-call predictions of
// explain_rows, summed over a workload, plus what a channel costs the job to be
// set up and torn down. Formulas and units: docs/policy.md, "Job cost".
#include "fmi/job_model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include "channels/registry.h"
#include "fmi/config.h"
#include "fmi/errors.h"
#include "policy/models.h"

namespace FMI::Utils {

using policy::format_size;

double pairings_bound(const JobOptions& o, const std::vector<WorkloadItem>& items) {
  const double n = double(o.num_peers);
  double messages = 0;
  for (const auto& item : items) {
    OperationInfo info;
    info.op = item.op;
    info.data_size = item.size;
    info.num_peers = o.num_peers;
    info.commutative = o.commutative;
    info.associative = o.associative;
    info.faas_memory = o.faas_memory;
    // Every message connects one pair: one call's messages bound its pairs.
    for (const auto& x : policy::pattern(info, Comm::ChannelKind::peer_to_peer).traffic)
      messages += x.count * x.producers * x.consumers;
  }
  return std::min(n * (n - 1) / 2, messages);
}

namespace {

void add(JobCost& j, const Prediction& p, double calls) {
  j.time += calls * p.latency;
  j.functions += calls * p.faas_cost;
  j.requests += calls * p.channel_cost;
  j.servers += calls * p.infra_cost;
}

std::string usd(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

std::string seconds(double s) {
  char buf[32];
  if (s < 1)
    std::snprintf(buf, sizeof buf, "%.3g ms", s * 1e3);
  else if (s < 3600)
    std::snprintf(buf, sizeof buf, "%.3g s", s);
  else
    std::snprintf(buf, sizeof buf, "%.3g h", s / 3600);
  return buf;
}

}  // namespace

JobEstimate estimate_job(const Config& config, const JobOptions& o) {
  if (o.num_peers == 0) FMI_THROW(UsageError, "job: num_peers must be at least 1");
  if (o.items.empty()) FMI_THROW(UsageError, "job: the workload has no operations");
  if (!(o.epochs >= 0)) FMI_THROW(UsageError, "job: epochs must be >= 0");
  // No channel listed: every built-in channel that has a model, in registry order
  // (the same list explain_rows uses, so the rows line up).
  std::vector<std::string> names = o.channels;
  if (names.empty())
    for (const Comm::ChannelDescriptor* d : Comm::channels())
      if (d->model) names.push_back(d->name);
  JobEstimate e;
  auto labelled = [](std::string label) {
    JobCost c;
    c.label = std::move(label);
    return c;
  };
  for (const auto& name : names) e.per_channel.push_back(labelled(name));
  for (Hint h : o.hints) e.policy.push_back(labelled(std::string("policy (") + to_string(h) + ")"));
  // Per hint, the items the policy put on each point-to-point channel (pairings).
  std::vector<std::map<std::string, std::vector<WorkloadItem>>> p2p_items(o.hints.size());
  std::vector<std::set<std::string>> used(o.hints.size()), collective(o.hints.size());
  for (const auto& item : o.items) {
    if (!(item.per_epoch >= 0))
      FMI_THROW(UsageError, "job: calls per epoch of ", to_string(item.op), " must be >= 0");
    ExplainOptions x;
    x.num_peers = o.num_peers;
    x.faas_memory = o.faas_memory;
    x.sizes = {item.size};
    x.ops = {item.op};
    x.channels = names;
    x.hints = o.hints;
    x.commutative = o.commutative;
    x.associative = o.associative;
    const ExplainRow row = explain_rows(config, x).at(0);
    const double calls = o.epochs * item.per_epoch;
    for (std::size_t i = 0; i < row.per_channel.size(); ++i)
      add(e.per_channel[i], row.per_channel[i].second, calls);
    for (std::size_t h = 0; h < row.choice.size(); ++h) {
      const std::string& name = row.choice[h].second;
      for (const auto& [n, p] : row.per_channel)
        if (n == name) add(e.policy[h], p, calls);
      e.policy[h].chosen.push_back(name);
      if (calls > 0) {
        used[h].insert(name);
        if (Comm::builtin_kind(name) == Comm::ChannelKind::peer_to_peer)
          p2p_items[h][name].push_back(item);
        if (item.op != Operation::send) collective[h].insert(name);
      }
    }
  }
  std::vector<WorkloadItem> called;
  bool any_collective = false;
  for (const auto& item : o.items)
    if (o.epochs > 0 && item.per_epoch > 0) {
      called.push_back(item);
      any_collective |= item.op != Operation::send;
    }
  const double all_pairings = pairings_bound(o, called);
  auto p2p = [](const std::string& name) {
    return Comm::builtin_kind(name) == Comm::ChannelKind::peer_to_peer;
  };
  for (auto& j : e.per_channel)
    j.setup = Comm::make_builtin_model(j.label, config)
                  ->setup_cost(o.num_peers, p2p(j.label) ? all_pairings : 0.0, any_collective);
  // Every enabled channel is set up; only those the policy used pay for use.
  for (std::size_t h = 0; h < e.policy.size(); ++h)
    for (const auto& name : names) {
      const auto it = p2p_items[h].find(name);
      const double pairs = it == p2p_items[h].end() ? 0.0 : pairings_bound(o, it->second);
      e.policy[h].setup += Comm::make_builtin_model(name, config)
                               ->setup_cost(o.num_peers, pairs, collective[h].count(name) > 0);
    }
  return e;
}

std::string job_table(const Config& config, const JobOptions& o) {
  const JobEstimate e = estimate_job(config, o);
  std::ostringstream os;
  os << "# job: " << o.num_peers << " functions x " << o.faas_memory << " MiB, " << o.epochs
     << (o.epochs == 1 ? " epoch" : " epochs") << " of";
  for (std::size_t i = 0; i < o.items.size(); ++i)
    os << (i ? ", " : " ") << to_string(o.items[i].op) << ' ' << format_size(o.items[i].size)
       << " x" << o.items[i].per_epoch;
  os << "\n# time = calls x latency (communication only); total = functions (USD/GiB-s x GiB x s"
        " x functions) + requests+transfer + servers (USD/h x time / 3600) + set-up (requests"
        " of init, pairing, finalize)\n";
  std::vector<std::vector<std::string>> cells = {{"channel", "time", "total USD", "functions USD",
                                                  "requests+transfer USD", "servers USD",
                                                  "set-up USD", "x cheapest"}};
  double cheapest = INFINITY;
  for (const auto& j : e.per_channel) cheapest = std::min(cheapest, j.total());
  for (const auto& j : e.policy) cheapest = std::min(cheapest, j.total());
  auto line = [&](const JobCost& j) {
    char ratio[32];
    std::snprintf(ratio, sizeof ratio, "%.3g", cheapest > 0 ? j.total() / cheapest : 1.0);
    cells.push_back({j.label, seconds(j.time), usd(j.total()), usd(j.functions), usd(j.requests),
                     usd(j.servers), usd(j.setup), ratio});
  };
  for (const auto& j : e.per_channel) line(j);
  for (const auto& j : e.policy) line(j);
  std::vector<std::size_t> w(cells[0].size(), 0);
  for (const auto& c : cells)
    for (std::size_t i = 0; i < c.size(); ++i) w[i] = std::max(w[i], c[i].size());
  for (std::size_t l = 0; l < cells.size(); ++l) {
    std::string text;
    for (std::size_t i = 0; i < cells[l].size(); ++i) {
      if (i) text += "  ";
      const std::size_t pad = w[i] - cells[l][i].size();
      if (i == 0)
        text += cells[l][i] + std::string(pad, ' ');
      else
        text += std::string(pad, ' ') + cells[l][i];
    }
    os << text << '\n';
    if (l == 0) os << std::string(text.size(), '-') << '\n';
  }
  for (const auto& j : e.policy) {
    os << "# " << j.label << " runs:";
    for (std::size_t i = 0; i < o.items.size(); ++i)
      os << ' ' << to_string(o.items[i].op) << ' ' << format_size(o.items[i].size) << " on "
         << j.chosen[i] << (i + 1 < o.items.size() ? ";" : "");
    os << '\n';
  }
  return os.str();
}

}  // namespace FMI::Utils
