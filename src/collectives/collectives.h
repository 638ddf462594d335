// The collective algorithms, written once per kind of channel:
//  - coll::p2p::*   over a PeerToPeerChannel (Direct, in-process);
//  - coll::store::* over an ObjectStoreChannel (Redis, S3, in-process store).
// They are free functions over byte buffers; the Communicator checks arguments
// (ranges, sizes) before calling them, so here sizes are trusted to be consistent
// on this peer (a peer with other sizes is caught by the channel's size check).
//
// Every rank must run the same algorithm for the same call, so the choice
// (choose_algorithm) depends only on values all ranks share.
#pragma once

#include <cstddef>
#include <cstring>
#include <span>
#include <utility>
#include <vector>

#include "fmi/channel.h"
#include "fmi/function.h"
#include "fmi/types.h"

namespace FMI::coll {

enum class Algorithm {
  automatic,           // let choose_algorithm decide
  linear,              // root talks to every peer / left-to-right chain
  binomial,            // binomial tree (log2 n rounds)
  recursive_doubling,  // pairwise exchange, log2 n rounds (allreduce, allgather)
  ring,                // bandwidth-optimal ring (allreduce, allgather, reduce_scatter)
  scatter_allgather,   // bcast of large messages: scatter, then ring allgather
  pairwise,            // alltoall: n-1 rounds of pairwise exchange
  dissemination,       // barrier: log2 n rounds
  pipeline,            // segmented pipelined chain (bcast, reduce, scan of large messages)
  bruck,               // alltoall(v), allgather(v): ceil(log2 n) rounds, partners r +- 2^k
  chain,  // 2 partners (v - 1, v + 1): gather/scatter(v), barrier, allreduce under a small budget
};
const char* to_string(Algorithm a);

/// One collective call on one rank.
struct Context {
  Utils::peer_num rank = 0;
  Utils::peer_num size = 1;
  Comm::Tag tag;
  Utils::Deadline deadline;
};

struct Options {
  Utils::peer_num root = 0;
  Algorithm algorithm = Algorithm::automatic;
  /// Bytes per segment of the pipelined algorithms; 0: FMI_SEGMENT_BYTES from the
  /// environment if set, else kSegment. Tests set it small to cut few-KiB buffers
  /// into many segments; every rank must pass the same value.
  std::size_t segment = 0;
};

/// Properties of the reduction that the choice may depend on (no function: all
/// ranks know these).
struct ReduceProps {
  bool commutative = true;
  bool associative = true;
  std::size_t granularity = 1;  // 0: whole-buffer function, cannot be chunked
};

/// Bytes per peer of a variable-size collective (gatherv, ...), in peer order.
using Counts = std::span<const std::size_t>;

/// Message size (bytes per peer contribution) from which bandwidth-optimal
/// algorithms (ring, scatter+allgather) replace latency-optimal ones.
inline constexpr std::size_t kLargeMessage = 256 * 1024;

/// Default segment of the pipelined algorithms (Algorithm::pipeline). Provisional:
/// a segment must be large enough that a TCP send's fixed cost (a syscall and a
/// wake-up, ~10 us on loopback) stays small next to its transfer (128 KiB at a few
/// GB/s: 30-60 us), and small enough that the pipeline fills quickly (n - 2
/// segments of start-up on a chain of n peers). The sweep (docs/collectives.md)
/// decides; FMI_SEGMENT_BYTES overrides it for such sweeps.
inline constexpr std::size_t kSegment = 128 * 1024;

/// Whether `a` can run `op` for a function with `props` on n peers (forced
/// algorithms in tests and FMI_ALGORITHM are checked against it).
bool supports_p2p(Utils::Operation op, Algorithm a, const ReduceProps& props);

/// The algorithm a p2p / store collective will run. Pure function of its arguments
/// and of FMI_ALGORITHM (read once per process; a benchmarking knob, e.g.
/// "bcast=pipeline,reduce=ring", that every peer of a run must share: fmirun and
/// fmi-bench pass their environment on). A named algorithm that cannot run the
/// call (supports_p2p) is ignored for that call; an unknown name is a ConfigError.
///
/// `budget` is the channel's max_connections() (0: no limit), the same on every
/// peer. When n - 1 peers fit it the choice is the budget-free one; otherwise it is
/// the first algorithm of the operation's fallback list whose max_partners() fits
/// (docs/collectives.md, "Connection budget").
Algorithm choose_p2p(Utils::Operation op, std::size_t bytes, Utils::peer_num n,
                     const ReduceProps& props, std::size_t budget = 0);

/// The distinct peers `rank` exchanges messages with when the n peers run `a` for
/// `op` (sorted, without `rank`). `props`, `bytes` and `budget` as for choose_p2p:
/// algorithms made of other collectives (allgather by gather + bcast,
/// reduce_scatter by reduce + scatter) choose those parts with them.
std::vector<Utils::peer_num> partners(Utils::Operation op, Algorithm a, Utils::peer_num rank,
                                      Utils::peer_num n, Utils::peer_num root = 0,
                                      const ReduceProps& props = {}, std::size_t bytes = 0,
                                      std::size_t budget = 0);
/// An upper bound of partners(...).size() over every rank and root, in O(1): what
/// choose_p2p compares with the budget.
std::size_t max_partners(Utils::Operation op, Algorithm a, Utils::peer_num n,
                         const ReduceProps& props = {}, std::size_t bytes = 0,
                         std::size_t budget = 0);
Algorithm choose_store(Utils::Operation op, std::size_t bytes, Utils::peer_num n,
                       const ReduceProps& props);

/// Copies `from` into `to` (same size) unless they are the same bytes: the
/// algorithms' in-place cases pass one buffer as both.
inline void copy(Comm::ConstBytes from, Comm::Bytes to) {
  if (!from.empty() && from.data() != to.data()) std::memmove(to.data(), from.data(), from.size());
}

namespace p2p {
using Ch = Comm::PeerToPeerChannel;
using Utils::ReduceOp;
/// The algorithm this call runs (o.algorithm, or choose_p2p with the channel's
/// budget), after asking the channel to open its partners (Ch::connect) so that
/// they connect at once rather than round by round.
Algorithm prepare(Ch& ch, const Context& c, Utils::Operation op, const Options& o,
                  std::size_t bytes, const ReduceProps& props = {});
void bcast(Ch& ch, const Context& c, Comm::Bytes buf, const Options& o);
void barrier(Ch& ch, const Context& c, const Options& o);
void gather(Ch& ch, const Context& c, Comm::ConstBytes send, Comm::Bytes recv, const Options& o);
void scatter(Ch& ch, const Context& c, Comm::ConstBytes send, Comm::Bytes recv, const Options& o);
void reduce(Ch& ch, const Context& c, Comm::ConstBytes send, Comm::Bytes recv, const ReduceOp& f,
            const Options& o);
void allreduce(Ch& ch, const Context& c, Comm::ConstBytes send, Comm::Bytes recv, const ReduceOp& f,
               const Options& o);
void scan(Ch& ch, const Context& c, Comm::ConstBytes send, Comm::Bytes recv, const ReduceOp& f,
          const Options& o);
void allgather(Ch& ch, const Context& c, Comm::ConstBytes send, Comm::Bytes recv, const Options& o);
void alltoall(Ch& ch, const Context& c, Comm::ConstBytes send, Comm::Bytes recv, const Options& o);
void reduce_scatter(Ch& ch, const Context& c, Comm::ConstBytes send, Comm::Bytes recv,
                    const ReduceOp& f, const Options& o);
// Variable-size forms (src/collectives/vector.cpp). `counts` are bytes per peer,
// blocks packed in peer order; the Communicator has checked that this peer's own
// block and buffers agree with them.
void gatherv(Ch& ch, const Context& c, Comm::ConstBytes send, Comm::Bytes recv, Counts recv_counts,
             const Options& o);
void scatterv(Ch& ch, const Context& c, Comm::ConstBytes send, Counts send_counts, Comm::Bytes recv,
              const Options& o);
void allgatherv(Ch& ch, const Context& c, Comm::ConstBytes send, Comm::Bytes recv,
                Counts recv_counts, const Options& o);
void alltoallv(Ch& ch, const Context& c, Comm::ConstBytes send, Counts send_counts,
               Comm::Bytes recv, Counts recv_counts, const Options& o);

// The algorithms for large communicators under a connection budget (scale.cpp).
// Store-and-forward alltoall: block (src -> dst) travels d = (dst - src) mod n
// hops to the right; bruck moves it 2^k in round k when bit k of d is set, ring one
// hop a round while it has not arrived.
void alltoall_routed(Ch& ch, const Context& c, Algorithm a, Comm::ConstBytes send,
                     Comm::Bytes recv);
void alltoallv_routed(Ch& ch, const Context& c, Algorithm a, Comm::ConstBytes send,
                      Counts send_counts, Comm::Bytes recv, Counts recv_counts);
void allgatherv_bruck(Ch& ch, const Context& c, Comm::ConstBytes send, Comm::Bytes recv,
                      Counts counts);
void gatherv_chain(Ch& ch, const Context& c, Comm::ConstBytes send, Comm::Bytes recv, Counts counts,
                   Utils::peer_num root);
void scatterv_chain(Ch& ch, const Context& c, Comm::ConstBytes send, Counts counts,
                    Comm::Bytes recv, Utils::peer_num root);
void barrier_chain(Ch& ch, const Context& c);
/// reduce_scatter without a ring: the reduce and scatter algorithms it runs, chosen
/// together so that their partners' union fits the budget.
std::pair<Algorithm, Algorithm> reduce_scatter_parts(std::size_t block, Utils::peer_num n,
                                                     const ReduceProps& props, std::size_t budget);
}  // namespace p2p

namespace store {
using Ch = Comm::ObjectStoreChannel;
using Utils::ReduceOp;
void send(Ch& ch, const Context& c, Comm::ConstBytes data, Utils::peer_num dest);
void recv(Ch& ch, const Context& c, Comm::Bytes data, Utils::peer_num src);
void bcast(Ch& ch, const Context& c, Comm::Bytes buf, const Options& o);
void barrier(Ch& ch, const Context& c, const Options& o);
void gather(Ch& ch, const Context& c, Comm::ConstBytes send, Comm::Bytes recv, const Options& o);
void scatter(Ch& ch, const Context& c, Comm::ConstBytes send, Comm::Bytes recv, const Options& o);
void reduce(Ch& ch, const Context& c, Comm::ConstBytes send, Comm::Bytes recv, const ReduceOp& f,
            const Options& o);
void allreduce(Ch& ch, const Context& c, Comm::ConstBytes send, Comm::Bytes recv, const ReduceOp& f,
               const Options& o);
void scan(Ch& ch, const Context& c, Comm::ConstBytes send, Comm::Bytes recv, const ReduceOp& f,
          const Options& o);
void allgather(Ch& ch, const Context& c, Comm::ConstBytes send, Comm::Bytes recv, const Options& o);
void alltoall(Ch& ch, const Context& c, Comm::ConstBytes send, Comm::Bytes recv, const Options& o);
void reduce_scatter(Ch& ch, const Context& c, Comm::ConstBytes send, Comm::Bytes recv,
                    const ReduceOp& f, const Options& o);
void gatherv(Ch& ch, const Context& c, Comm::ConstBytes send, Comm::Bytes recv, Counts recv_counts,
             const Options& o);
void scatterv(Ch& ch, const Context& c, Comm::ConstBytes send, Counts send_counts, Comm::Bytes recv,
              const Options& o);
void allgatherv(Ch& ch, const Context& c, Comm::ConstBytes send, Comm::Bytes recv,
                Counts recv_counts, const Options& o);
void alltoallv(Ch& ch, const Context& c, Comm::ConstBytes send, Counts send_counts,
               Comm::Bytes recv, Counts recv_counts, const Options& o);
}  // namespace store

}  // namespace FMI::coll
