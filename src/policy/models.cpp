// The policy's models: the exchanges each collective algorithm performs, and
// their sum for one operation under a channel's exchange model.
// Formulas and units: docs/policy.md. Everything here is a pure function of its
// arguments, so every peer predicts (and chooses) the same.
#include "policy/models.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "channels/registry.h"
#include "fmi/errors.h"
#include "fmi/model.h"

namespace FMI::policy {

using coll::Algorithm;
using Comm::ChannelKind;
using Utils::Operation;
using Utils::peer_num;

// ---- patterns ----------------------------------------------------------------

coll::ReduceProps assumed_props(const Utils::OperationInfo& info) {
  return coll::ReduceProps{info.commutative, info.associative, info.granularity};
}

namespace {

unsigned ceil_log2(peer_num n) {
  unsigned l = 0;
  while ((std::uint64_t(1) << l) < n) ++l;
  return l;
}

std::size_t ceil_div(std::size_t a, std::size_t b) { return b == 0 ? 0 : (a + b - 1) / b; }

class Builder {
 public:
  explicit Builder(Pattern& p) : p_(p) {}

  // One round of `parallel` simultaneous 1 -> 1 messages of `bytes`.
  void round(double parallel, std::size_t bytes, double rounds = 1) {
    if (parallel <= 0 || rounds <= 0) return;
    p_.path.push_back({rounds, 1, 1, bytes});
    p_.traffic.push_back({rounds * parallel, 1, 1, bytes});
  }
  // One exchange on the critical path that is also all the traffic.
  void exchange(unsigned producers, unsigned consumers, std::size_t bytes) {
    p_.path.push_back({1, producers, consumers, bytes});
    p_.traffic.push_back({1, producers, consumers, bytes});
  }
  void path(unsigned producers, unsigned consumers, std::size_t bytes) {
    p_.path.push_back({1, producers, consumers, bytes});
  }
  void traffic(double count, unsigned producers, unsigned consumers, std::size_t bytes) {
    if (count > 0) p_.traffic.push_back({count, producers, consumers, bytes});
  }

  // Binomial broadcast/reduction of `bytes`: ceil(log2 n) rounds, n - 1 messages
  // in all (round k: the 2^k peers that have the data send to 2^k more).
  void binomial(peer_num n, std::size_t bytes) {
    for (std::uint64_t m = 1; m < n; m <<= 1)
      round(double(std::min<std::uint64_t>(m, n - m)), bytes);
  }

  // Segmented pipeline along a chain of `links` + 1 peers (coll::p2p, Algorithm::
  // pipeline): each link carries the message once in segments of coll::kSegment;
  // the path is the segments plus the chain's fill (links - 1 segments).
  void pipeline(peer_num links, std::size_t bytes) {
    const std::size_t nseg = ceil_div(bytes, coll::kSegment);
    if (nseg == 0) return;
    const std::size_t seg = ceil_div(bytes, nseg);
    round(links, seg, double(nseg));
    if (links > 1) p_.path.push_back({double(links - 1), 1, 1, seg});
  }

  // Binomial gather/scatter of `block` bytes per peer: in the round with mask m,
  // every v that is a multiple of 2m exchanges the blocks of the subtree
  // [v + m, v + 2m) with v + m; the root's message (the largest) is on the path.
  void binomial_blocks(peer_num n, std::size_t block) {
    for (std::uint64_t m = 1; m < n; m <<= 1) {
      path(1, 1, std::size_t(std::min<std::uint64_t>(m, n - m)) * block);
      std::map<std::uint64_t, double> by_blocks;
      for (std::uint64_t v = 0; v + m < n; v += 2 * m) by_blocks[std::min(m, n - v - m)] += 1;
      for (const auto& [blocks, count] : by_blocks)
        traffic(count, 1, 1, std::size_t(blocks) * block);
    }
  }

 private:
  Pattern& p_;
};

void p2p_pattern(const Utils::OperationInfo& info, Pattern& pat);

// The reduce and scatter that the p2p reduce_scatter falls back to: separate
// collectives, each choosing its own algorithm for its own size.
void p2p_sub(Operation op, std::size_t bytes, const Utils::OperationInfo& info, Pattern& pat) {
  Utils::OperationInfo sub = info;
  sub.op = op;
  sub.data_size = bytes;
  Pattern p;
  p2p_pattern(sub, p);
  pat.path.insert(pat.path.end(), p.path.begin(), p.path.end());
  pat.traffic.insert(pat.traffic.end(), p.traffic.begin(), p.traffic.end());
}

// Mirrors src/collectives/p2p.cpp. Rooted operations are costed for root 0 (the
// policy does not know the root; other roots differ by at most one message).
void p2p_pattern(const Utils::OperationInfo& info, Pattern& pat) {
  const peer_num n = info.num_peers;
  const std::size_t s = info.data_size;
  const coll::ReduceProps props = assumed_props(info);
  Builder b(pat);
  pat.algorithm = coll::choose_p2p(info.op, s, n, props);
  if (info.op == Operation::send) {
    b.round(1, s);
    return;
  }
  if (n <= 1) return;
  const std::size_t chunk = ceil_div(s, n);
  switch (info.op) {
    case Operation::send: break;
    case Operation::barrier:
      if (pat.algorithm == Algorithm::binomial) {  // fan-in to 0, then the release
        b.binomial(n, 0);
        b.binomial(n, 0);
      } else if (pat.algorithm == Algorithm::chain) {  // along the chain and back
        b.round(1, 0, 2.0 * (n - 1));
      } else {  // dissemination: every peer signals one peer per round
        b.round(n, 0, ceil_log2(n));
      }
      break;
    case Operation::bcast:
      if (pat.algorithm == Algorithm::pipeline) {
        b.pipeline(n - 1, s);
      } else if (pat.algorithm == Algorithm::scatter_allgather) {
        b.binomial_blocks(n, chunk);  // scatter of n chunks down the tree
        b.round(n, chunk, n - 1);     // ring allgather
      } else {
        b.binomial(n, s);
      }
      break;
    // The v-forms are costed on their mean block (data_size = total / n; 0 for
    // alltoallv, whose sizes no peer knows in full), with the shape of the
    // fixed-size algorithm they mirror (src/collectives/vector.cpp).
    case Operation::gather:
    case Operation::gatherv:
      if (pat.algorithm == Algorithm::linear)
        b.exchange(n - 1, 1, s);
      else
        b.binomial_blocks(n, s);
      break;
    case Operation::scatter:
    case Operation::scatterv:
      if (pat.algorithm == Algorithm::linear)
        b.exchange(1, n - 1, s);
      else
        b.binomial_blocks(n, s);
      break;
    case Operation::reduce:
      if (pat.algorithm == Algorithm::linear) {  // chain 0 -> n-1, then n-1 -> root
        b.round(1, s, n - 1);
        b.round(1, s);
      } else if (pat.algorithm == Algorithm::pipeline) {  // chain ending at the root
        b.pipeline(n - 1, s);
        if (!(info.commutative && info.associative)) b.round(1, s);  // ordered: n-1 -> root 0
      } else if (pat.algorithm == Algorithm::ring) {  // reduce-scatter, chunks to root
        b.round(n, chunk, n - 1);
        b.exchange(n - 1, 1, chunk);
      } else {
        b.binomial(n, s);
      }
      break;
    case Operation::allreduce:
      if (pat.algorithm == Algorithm::linear) {  // chain, then binomial bcast
        b.round(1, s, n - 1);
        b.binomial(n, s);
      } else if (pat.algorithm == Algorithm::ring) {  // reduce-scatter + allgather
        b.round(n, chunk, 2.0 * (n - 1));
      } else if (pat.algorithm == Algorithm::binomial) {  // reduce to 0, bcast from 0
        b.binomial(n, s);
        b.binomial(n, s);
      } else {  // recursive doubling on p = 2^floor(log2 n); e extra peers fold in and out
        peer_num p = 1;
        while (p * 2 <= n) p *= 2;
        const peer_num e = n - p;
        b.round(e, s);
        b.round(p, s, ceil_log2(p));
        b.round(e, s);
      }
      break;
    case Operation::scan:
      if (pat.algorithm == Algorithm::pipeline) {
        b.pipeline(n - 1, s);
      } else if (pat.algorithm == Algorithm::linear) {
        b.round(1, s, n - 1);
      } else {  // Hillis-Steele: round d, every peer r >= d hears from r - d
        for (std::uint64_t d = 1; d < n; d <<= 1) b.round(double(n - d), s);
      }
      break;
    case Operation::allgather:
    case Operation::allgatherv:
      if (pat.algorithm == Algorithm::binomial) {  // gather to 0, bcast n blocks
        b.binomial_blocks(n, s);
        b.binomial(n, s * n);
      } else {
        b.round(n, s, n - 1);
      }
      break;
    case Operation::alltoall:  // pairwise: n - 1 rounds, a permutation each
    case Operation::alltoallv: b.round(n, s, n - 1); break;
    case Operation::reduce_scatter:
      if (pat.algorithm == Algorithm::ring) {
        b.round(n, s, n - 1);
      } else {
        p2p_sub(Operation::reduce, s * n, info, pat);
        p2p_sub(Operation::scatter, s, info, pat);
      }
      break;
  }
}

// Mirrors src/collectives/store.cpp: one round of uploads and downloads where
// possible, every consumer reading exactly the objects it needs.
void store_pattern(const Utils::OperationInfo& info, Pattern& pat) {
  const peer_num n = info.num_peers;
  const std::size_t s = info.data_size;
  Builder b(pat);
  pat.algorithm = coll::choose_store(info.op, s, n, assumed_props(info));
  if (info.op == Operation::send) {
    b.exchange(1, 1, s);
    return;
  }
  if (n <= 1) return;
  switch (info.op) {
    case Operation::send: break;
    case Operation::barrier:  // arrivals at 0, then one release object read by all
      b.exchange(n - 1, 1, 0);
      b.exchange(1, n - 1, 0);
      break;
    case Operation::bcast: b.exchange(1, n - 1, s); break;
    case Operation::gather:
    case Operation::gatherv:  // v-forms: on the mean block, as in p2p_pattern
    case Operation::reduce: b.exchange(n - 1, 1, s); break;
    case Operation::scatter:  // n - 1 objects, one per consumer
    case Operation::scatterv:
      b.path(1, n - 1, s);
      b.traffic(n - 1, 1, 1, s);
      break;
    case Operation::allreduce:  // reduce at 0, one result object read by all
      b.exchange(n - 1, 1, s);
      b.exchange(1, n - 1, s);
      break;
    case Operation::scan:  // peer i's object is read by the n - 1 - i peers after it
      b.path(n - 1, 1, s);
      for (peer_num i = 0; i + 1 < n; ++i) b.traffic(1, 1, n - 1 - i, s);
      break;
    case Operation::allgather:  // gathered at 0, one result object (n blocks) read by all
      b.exchange(n - 1, 1, s);
      b.exchange(1, n - 1, s * n);
      break;
    case Operation::allgatherv: b.exchange(n, n - 1, s); break;  // n objects, n - 1 readers
    case Operation::alltoall:
    case Operation::alltoallv:
    case Operation::reduce_scatter:  // n (n - 1) objects, each read once
      b.path(n, n - 1, s);
      b.traffic(double(n) * (n - 1), 1, 1, s);
      break;
  }
}

}  // namespace

Pattern pattern(const Utils::OperationInfo& info, ChannelKind kind) {
  Pattern pat;
  if (kind == ChannelKind::peer_to_peer)
    p2p_pattern(info, pat);
  else
    store_pattern(info, pat);
  // Functions pay for the time they take part: both ends of a send, every peer
  // of a collective.
  pat.participants = info.op == Operation::send ? 2 : info.num_peers;
  return pat;
}

}  // namespace FMI::policy

// ---- public entry points ------------------------------------------------------------

namespace FMI::Comm {

// The built-in channels are the registered ones: their descriptors know their
// kind and build their reference model.
std::shared_ptr<const ChannelModel> make_builtin_model(const std::string& name,
                                                       const Config& config) {
  const ChannelDescriptor* d = find_channel(name);
  return d && d->model ? d->model(config) : nullptr;
}

ChannelKind builtin_kind(const std::string& name) {
  if (const ChannelDescriptor* d = find_channel(name)) return d->kind;
  FMI_THROW(UsageError, "'", name, "' is not a built-in channel (", channel_list(), ")");
}

}  // namespace FMI::Comm

namespace FMI::Utils {

Prediction predict(const OperationInfo& info, Comm::ChannelKind kind,
                   const Comm::ChannelModel& model, const Config& config) {
  const policy::Pattern pat = policy::pattern(info, kind);
  Prediction p;
  p.algorithm = coll::to_string(pat.algorithm);
  for (const auto& x : pat.path)
    p.latency += x.count * model.latency(x.producers, x.consumers, x.bytes);
  for (const auto& x : pat.traffic)
    p.channel_cost += x.count * model.cost(x.producers, x.consumers, x.bytes);
  // Servers billed per hour: the operation's share of time (USD/h x s / (s/h)).
  p.infra_cost = model.hourly_price() * p.latency / 3600.0;
  // Functions billed per GiB-second (USD/(GiB s) x GiB x s x functions).
  p.faas_cost = config.model.faas.gib_second_price * (double(info.faas_memory) / 1024.0) *
                p.latency * pat.participants;
  return p;
}

}  // namespace FMI::Utils
