// Algorithm choice. Every rank must pick the same algorithm for the same call,
// so the choice depends only on the operation, the message size (every peer's
// contribution has the same size), the peer count and the function's properties.
#include "collectives/collectives.h"

namespace FMI::coll {

using Utils::Operation;

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
  }
  return "unknown";
}

Algorithm choose_p2p(Operation op, std::size_t bytes, Utils::peer_num n, const ReduceProps& p) {
  const bool large = bytes >= kLargeMessage;
  // Chunked (ring) reductions combine contributions in ring order and cut the
  // buffer into element-sized pieces: only for commutative, associative,
  // element-wise functions, and only when each chunk is worth a message.
  const bool ringable =
      p.commutative && p.associative && p.granularity > 0 && bytes / p.granularity >= n;
  switch (op) {
    case Operation::send: return Algorithm::linear;
    case Operation::barrier: return Algorithm::dissemination;
    case Operation::bcast:
      return large && n > 2 ? Algorithm::scatter_allgather : Algorithm::binomial;
    case Operation::gather:
    case Operation::scatter:
    // The v-forms decide on the mean block (total / n), which every peer computes
    // from the same counts.
    case Operation::gatherv:
    case Operation::scatterv: return large ? Algorithm::linear : Algorithm::binomial;
    case Operation::reduce:
      if (!p.associative) return Algorithm::linear;
      if (large && ringable && n > 2) return Algorithm::ring;
      return Algorithm::binomial;
    case Operation::allreduce:
      if (!p.associative) return Algorithm::linear;
      // Ring even for two peers: each reduces half the buffer instead of all of it.
      if (large && ringable) return Algorithm::ring;
      return Algorithm::recursive_doubling;
    case Operation::scan: return p.associative ? Algorithm::recursive_doubling : Algorithm::linear;
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

Algorithm choose_store(Operation, std::size_t, Utils::peer_num, const ReduceProps&) {
  // Object stores: one round of uploads read by their consumers is always best
  // (requests cost latency and money; there is no link bandwidth to balance).
  return Algorithm::linear;
}

}  // namespace FMI::coll
