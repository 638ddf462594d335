// Algorithm choice. Every rank must pick the same algorithm for the same call,
// so the choice depends only on the operation, the message size (every peer's
// contribution has the same size), the peer count and the function's properties.
#include <array>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "collectives/collectives.h"
#include "fmi/errors.h"

namespace FMI::coll {

using Utils::Operation;

namespace {

constexpr Algorithm kAll[] = {Algorithm::automatic, Algorithm::linear,
                              Algorithm::binomial,  Algorithm::recursive_doubling,
                              Algorithm::ring,      Algorithm::scatter_allgather,
                              Algorithm::pairwise,  Algorithm::dissemination,
                              Algorithm::pipeline,  Algorithm::bruck,
                              Algorithm::chain};

// FMI_ALGORITHM="op=algorithm,...", parsed once: the forced algorithm per operation.
using Forced = std::array<std::optional<Algorithm>, 32>;
Forced parse_forced(const char* env) {
  Forced f{};
  if (!env) return f;
  const std::string s = env;
  std::size_t pos = 0;
  while (pos < s.size()) {
    std::size_t end = s.find(',', pos);
    if (end == std::string::npos) end = s.size();
    const std::string item = s.substr(pos, end - pos);
    pos = end + 1;
    if (item.empty()) continue;
    const std::size_t eq = item.find('=');
    const std::string op = item.substr(0, eq),
                      alg = eq == std::string::npos ? "" : item.substr(eq + 1);
    std::optional<Operation> o;
    for (int i = int(Operation::send); i <= int(Operation::alltoallv); ++i)
      if (op == Utils::to_string(Operation(i))) o = Operation(i);
    std::optional<Algorithm> a;
    for (Algorithm x : kAll)
      if (alg == to_string(x)) a = x;
    if (!o || !a)
      FMI_THROW(ConfigError, "FMI_ALGORITHM item '", item,
                "' must be <operation>=<algorithm>, e.g. bcast=pipeline (algorithms: linear, "
                "binomial, recursive_doubling, ring, scatter_allgather, pairwise, dissemination, "
                "pipeline, bruck, chain)");
    f[std::size_t(*o)] = *a;
  }
  return f;
}

const Forced& forced() {
  static const Forced f = parse_forced(std::getenv("FMI_ALGORITHM"));
  return f;
}

Algorithm choose_auto(Operation op, std::size_t bytes, Utils::peer_num n, const ReduceProps& p);

}  // namespace

const char* to_string(Algorithm a) {
  switch (a) {
    case Algorithm::automatic: return "automatic";
    case Algorithm::linear: return "linear";
    case Algorithm::binomial: return "binomial";
    case Algorithm::recursive_doubling: return "recursive_doubling";
    case Algorithm::ring: return "ring";
    case Algorithm::scatter_allgather: return "scatter_allgather";
    case Algorithm::pairwise: return "pairwise";
    case Algorithm::dissemination: return "dissemination";
    case Algorithm::pipeline: return "pipeline";
    case Algorithm::bruck: return "bruck";
    case Algorithm::chain: return "chain";
  }
  return "unknown";
}

bool supports_p2p(Operation op, Algorithm a, const ReduceProps& p) {
  const bool chunkable = p.granularity > 0;
  const bool ringable = p.commutative && p.associative && chunkable;
  switch (op) {
    case Operation::send: return a == Algorithm::linear;
    case Operation::barrier:
      return a == Algorithm::dissemination || a == Algorithm::binomial || a == Algorithm::chain;
    case Operation::bcast:
      return a == Algorithm::linear || a == Algorithm::binomial ||
             a == Algorithm::scatter_allgather || a == Algorithm::pipeline;
    case Operation::gather:
    case Operation::scatter:
    case Operation::gatherv:
    case Operation::scatterv:
      return a == Algorithm::linear || a == Algorithm::binomial || a == Algorithm::chain;
    case Operation::reduce:
      return a == Algorithm::linear || (a == Algorithm::binomial && p.associative) ||
             (a == Algorithm::ring && ringable) || (a == Algorithm::pipeline && chunkable);
    case Operation::allreduce:
      return a == Algorithm::linear || a == Algorithm::chain ||
             ((a == Algorithm::recursive_doubling || a == Algorithm::binomial) && p.associative) ||
             (a == Algorithm::ring && ringable);
    case Operation::scan:
      return a == Algorithm::linear || (a == Algorithm::recursive_doubling && p.associative) ||
             (a == Algorithm::pipeline && chunkable);
    case Operation::allgather:
    case Operation::allgatherv:
      return a == Algorithm::binomial || a == Algorithm::ring || a == Algorithm::bruck;
    case Operation::alltoall:
    case Operation::alltoallv:
      return a == Algorithm::pairwise || a == Algorithm::bruck || a == Algorithm::ring;
    case Operation::reduce_scatter:
      return a == Algorithm::binomial || (a == Algorithm::ring && ringable);
  }
  return false;
}

Algorithm choose_p2p(Operation op, std::size_t bytes, Utils::peer_num n, const ReduceProps& p,
                     std::size_t budget) {
  if (const auto& f = forced()[std::size_t(op)]; f && supports_p2p(op, *f, p)) return *f;
  const Algorithm a = choose_auto(op, bytes, n, p);
  // Every pair fits: today's fastest algorithms, unchanged.
  if (budget == 0 || std::size_t(n) - 1 <= budget) return a;
  // Otherwise the first algorithm of the operation's list (fastest first) whose
  // partners fit; the last of each list needs at most 3 (a chain or ring), so a
  // budget of 3 or more is always met.
  const bool large = bytes >= kLargeMessage;
  const bool chunkable = p.granularity > 0;
  const bool ringable = p.commutative && p.associative && chunkable;
  std::vector<Algorithm> list{a};
  auto add = [&](Algorithm x, bool ok = true) {
    if (ok) list.push_back(x);
  };
  switch (op) {
    case Operation::send: return a;
    case Operation::barrier:
      add(Algorithm::binomial);
      add(Algorithm::chain);
      break;
    case Operation::bcast:
      add(Algorithm::binomial, !large);
      add(Algorithm::pipeline);
      break;
    case Operation::gather:
    case Operation::scatter:
    case Operation::gatherv:
    case Operation::scatterv:
      add(Algorithm::binomial);
      add(Algorithm::chain);
      break;
    case Operation::reduce:
      add(Algorithm::pipeline, large && chunkable);
      add(Algorithm::binomial, p.associative);
      add(Algorithm::pipeline, chunkable);
      add(Algorithm::linear);
      break;
    case Operation::allreduce:
      add(Algorithm::binomial, p.associative && !large);
      add(Algorithm::recursive_doubling, p.associative && !large);
      add(Algorithm::ring, ringable);
      add(Algorithm::chain);
      break;
    case Operation::scan:
      add(Algorithm::pipeline, chunkable);
      add(Algorithm::linear);
      break;
    case Operation::allgather:
    case Operation::allgatherv:
      // Small blocks: log2 n rounds instead of the ring's n - 1.
      list = {};
      add(Algorithm::bruck, !large);
      add(Algorithm::ring);
      break;
    case Operation::alltoall:
    case Operation::alltoallv:
      add(Algorithm::bruck);
      add(Algorithm::ring);
      break;
    case Operation::reduce_scatter: return a;  // its parts fit (reduce_scatter_parts)
  }
  for (Algorithm x : list)
    if (max_partners(op, x, n, p, bytes, budget) <= budget) return x;
  return list.back();
}

namespace {
// The decision rules (docs/collectives.md has them as a table, with the sweep of
// bench/collectives.sh at 2, 4 and 8 functions that set them; peer counts that
// were not measured keep the cost model's rules).
//
// What the sweep showed on one 2-core machine, where every "link" is a memory copy
// by a CPU that the functions share: the algorithm that copies the fewest bytes in
// total wins, even with more sequential steps. So bcast stays binomial (n - 1
// whole copies, as few as any algorithm, where scatter+allgather copies about
// twice that), and a Hillis-Steele scan (log2 n whole messages per peer) loses to
// the chain (one) before the chain's fill time is paid back by segments. Where
// links are independent (functions on separate hosts) the cost model's
// bandwidth-optimal choices should win; that is not measurable here.
constexpr std::size_t kMeasuredPeers = 8;  // the largest peer count of the sweep
// The rules measured at 8 peers hold up to 16: past that a chain's n - 1 hops cost
// more than the copies it saves, and the cost model decides.
bool wide(Utils::peer_num n) {
  return std::size_t(n) >= kMeasuredPeers && std::size_t(n) <= 2 * kMeasuredPeers;
}
// At 2 peers a segmented chain wins only where the receiver folds each segment in
// while it is still in cache (64 MiB: 0.56x for reduce, 0.67x for scan; 16 MiB:
// 1.1-1.7x): no faster at the sizes measured between.
constexpr std::size_t kTwoPeerPipeline = 64 * 1024 * 1024;
// From 8 peers a chain scan beats Hillis-Steele from 64 KiB on (0.67x there).
constexpr std::size_t kWideScanPipeline = 64 * 1024;
// From 8 peers the ring reduce (reduce-scatter + gather) beats the chain from 1 MiB
// on (0.69-0.96x of its time at 1-64 MiB).
constexpr std::size_t kWideRingReduce = 1024 * 1024;

Algorithm choose_auto(Operation op, std::size_t bytes, Utils::peer_num n, const ReduceProps& p) {
  const bool large = bytes >= kLargeMessage;
  const bool chunkable = p.granularity > 0;
  // A pipelined chain of n peers costs about (segments + n - 2) segment times: it
  // beats the whole-message trees once there are at least n segments (scan,
  // reduce: ~2(n-1)/n of the message time against log2(n) for the trees). The
  // sweep confirmed that crossover at 4 peers (between 256 KiB and 1 MiB).
  const bool pipelined = chunkable && (n > 2 ? bytes >= std::size_t(n) * kSegment
                                             : n == 2 && bytes >= kTwoPeerPipeline);
  // Chunked (ring) reductions combine contributions in ring order and cut the
  // buffer into element-sized pieces: only for commutative, associative,
  // element-wise functions, and only when each chunk is worth a message.
  const bool ringable = p.commutative && p.associative && chunkable && bytes / p.granularity >= n;
  switch (op) {
    case Operation::send: return Algorithm::linear;
    // From 3 peers a binomial tree (fan-in to 0, then release: 2 (n-1) messages)
    // beats dissemination (n ceil(log2 n) messages, in half the rounds) on this
    // machine at every peer count measured, 3-256: 0.26-0.89x its time; at 2 peers
    // dissemination is one exchange. docs/collectives.md "Decision rules".
    case Operation::barrier: return n <= 2 ? Algorithm::dissemination : Algorithm::binomial;
    case Operation::bcast:
      // Measured up to 8 peers: binomial at every size (the pipeline took 1.1-1.7x
      // and scatter+allgather 1.0-1.8x its time at 4 and 8 peers, 256 KiB - 64 MiB).
      if (std::size_t(n) <= kMeasuredPeers) return Algorithm::binomial;
      if (bytes >= 2 * std::size_t(n) * kSegment) return Algorithm::pipeline;
      return large ? Algorithm::scatter_allgather : Algorithm::binomial;
    case Operation::gather:
    case Operation::scatter:
    // The v-forms decide on the mean block (total / n), which every peer computes
    // from the same counts.
    case Operation::gatherv:
    case Operation::scatterv: return large ? Algorithm::linear : Algorithm::binomial;
    case Operation::reduce:
      if (wide(n) && ringable && bytes >= kWideRingReduce) return Algorithm::ring;
      // The chain folds strictly left to right, segment by segment: any element-wise
      // function, commutative or not, associative or not.
      if (pipelined) return Algorithm::pipeline;
      if (!p.associative) return Algorithm::linear;
      if (large && ringable && n > 2) return Algorithm::ring;
      return Algorithm::binomial;
    case Operation::allreduce:
      if (!p.associative) return Algorithm::linear;
      // Ring even for two peers: each reduces half the buffer instead of all of it.
      if (large && ringable) return Algorithm::ring;
      // Otherwise (small messages, or functions the ring cannot cut into chunks):
      // reduce + bcast on one binomial tree from 3 peers (2 (n-1) messages against
      // recursive doubling's ~n log2 n, in twice the rounds): 0.32-0.89x its time
      // at 8 B on 3-256 peers, measured with a sum up to 128 KiB; the large
      // non-ring-able case was not measured. At 2 peers one exchange wins.
      return n <= 2 ? Algorithm::recursive_doubling : Algorithm::binomial;
    case Operation::scan:
      if (pipelined || (chunkable && wide(n) && bytes >= kWideScanPipeline))
        return Algorithm::pipeline;
      return p.associative ? Algorithm::recursive_doubling : Algorithm::linear;
    case Operation::allgather:
    case Operation::allgatherv: return large || n > 8 ? Algorithm::ring : Algorithm::binomial;
    case Operation::alltoall:
    case Operation::alltoallv: return Algorithm::pairwise;
    case Operation::reduce_scatter:
      // bytes is one peer's block here: every chunk is a whole block.
      return p.commutative && p.associative && p.granularity > 0 ? Algorithm::ring
                                                                 : Algorithm::binomial;
  }
  return Algorithm::binomial;
}
}  // namespace

Algorithm choose_store(Operation, std::size_t, Utils::peer_num, const ReduceProps&) {
  // Object stores: one round of uploads read by their consumers is always best
  // (requests cost latency and money; there is no link bandwidth to balance).
  return Algorithm::linear;
}

}  // namespace FMI::coll
