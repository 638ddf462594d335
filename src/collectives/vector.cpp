// Variable-size collectives (gatherv, scatterv, allgatherv, alltoallv) over both
// kinds of channel.
//
// Block p holds counts[p] bytes and starts at displ[p] = counts[0] + ... +
// counts[p-1] of the packed buffer. A count may be zero: the (empty) message is
// still sent, because it costs little and the receiver's exact-size check is what
// catches a peer whose counts differ from this one's (PeerError naming both sizes);
// skipping it would leave one side waiting for a message the other never sends.
//
// Every peer must run the same algorithm, so the choice depends only on values all
// peers share: the counts (gatherv, scatterv, allgatherv pass the same vector to
// every peer) through their mean block, and n. alltoallv has no shared size (each
// peer knows only its own row and column of the matrix) and runs pairwise
// (beyond the connection budget, a choice on n alone: Bruck or ring, scale.cpp).
#include <cstring>
#include <vector>

#include "collectives/collectives.h"
#include "collectives/tree.h"

namespace FMI::coll {
namespace {

using Comm::Bytes;
using Comm::ConstBytes;
using Utils::peer_num;
using Buffer = std::vector<std::byte>;

// displ[p] for p = 0..n; displ[n] is the total.
std::vector<std::size_t> displacements(Counts counts) {
  std::vector<std::size_t> d(counts.size() + 1, 0);
  for (std::size_t p = 0; p < counts.size(); ++p) d[p + 1] = d[p] + counts[p];
  return d;
}

std::size_t mean_block(Counts counts) {
  std::size_t total = 0;
  for (std::size_t x : counts) total += x;
  return counts.empty() ? 0 : total / counts.size();
}

}  // namespace

// ---- point to point ------------------------------------------------------------

namespace p2p {
namespace {

using tree::subtree_of;
using tree::to_real;
using tree::to_virtual;

// Displacements in virtual order: vd[i] is where virtual rank i's block starts
// when the blocks are laid out v = 0, 1, ..., n-1 (real root, root+1, ..., root-1).
// A binomial subtree [v, v + k) is then one contiguous range [vd[v], vd[v + k]).
std::vector<std::size_t> virtual_displacements(Counts counts, peer_num root) {
  const auto n = static_cast<peer_num>(counts.size());
  std::vector<std::size_t> vd(n + 1, 0);
  for (peer_num i = 0; i < n; ++i) vd[i + 1] = vd[i] + counts[to_real(i, root, n)];
  return vd;
}

}  // namespace

// Binomial gatherv: as the fixed-size gather (p2p.cpp), a peer with virtual rank v
// collects the blocks of its subtree [v, v + 2^k) contiguously in virtual order and
// hands them to its parent in one message; only the offsets differ, taken from the
// virtual-order displacements. In round `mask` a peer with v & mask sends its whole
// subtree to v - mask; otherwise it receives the subtree of v + mask (clipped at n)
// at that subtree's offset. The root then rotates virtual order into peer order
// (in place when root = 0: virtual order is peer order). Large mean blocks use the
// linear algorithm: forwarding would copy each block log2(n) times.
void gatherv(Ch& ch, const Context& c, ConstBytes send, Bytes recv, Counts counts,
             const Options& o) {
  const peer_num n = c.size, root = o.root;
  const Algorithm a = prepare(ch, c, Utils::Operation::gatherv, o, mean_block(counts));
  if (a == Algorithm::chain && n > 1) return gatherv_chain(ch, c, send, recv, counts, root);
  if (a == Algorithm::linear || n == 1) {
    if (c.rank != root) {
      ch.send(root, send, c.tag, c.deadline);
      return;
    }
    const auto d = displacements(counts);
    for (peer_num p = 0; p < n; ++p) {
      Bytes dst = recv.subspan(d[p], counts[p]);
      if (p == root)
        copy(send, dst);
      else
        ch.recv(p, dst, c.tag, c.deadline);
    }
    return;
  }
  const peer_num v = to_virtual(c.rank, root, n);
  const peer_num have = subtree_of(v, n);
  const auto vd = virtual_displacements(counts, root);
  Buffer tmp;
  Bytes acc;  // the blocks of [v, v + have) in virtual order, from offset vd[v]
  if (v == 0 && root == 0) {
    acc = recv;
  } else {
    tmp.resize(vd[v + have] - vd[v]);
    acc = tmp;
  }
  copy(send, acc.subspan(0, send.size()));
  for (peer_num mask = 1; mask < n; mask <<= 1) {
    if (v & mask) {
      ch.send(to_real(v - mask, root, n), acc, c.tag, c.deadline);
      return;
    }
    if (v + mask < n) {
      const peer_num first = v + mask, last = std::min(n, v + 2 * mask);
      ch.recv(to_real(first, root, n), acc.subspan(vd[first] - vd[v], vd[last] - vd[first]), c.tag,
              c.deadline);
    }
  }
  if (acc.data() != recv.data()) {
    const auto d = displacements(counts);
    for (peer_num i = 0; i < n; ++i) {
      const peer_num p = to_real(i, root, n);
      copy(acc.subspan(vd[i], counts[p]), recv.subspan(d[p], counts[p]));
    }
  }
}

// Binomial scatterv: the reverse of gatherv. The root lays the blocks out in
// virtual order (a rotation of the send buffer; none when root = 0); each peer
// receives its subtree's range from its parent and passes on, largest first, the
// ranges of its children v + m for the powers of two m below its lowest set bit.
void scatterv(Ch& ch, const Context& c, ConstBytes send, Counts counts, Bytes recv,
              const Options& o) {
  const peer_num n = c.size, root = o.root;
  const Algorithm a = prepare(ch, c, Utils::Operation::scatterv, o, mean_block(counts));
  if (a == Algorithm::chain && n > 1) return scatterv_chain(ch, c, send, counts, recv, root);
  if (a == Algorithm::linear || n == 1) {
    if (c.rank != root) {
      ch.recv(root, recv, c.tag, c.deadline);
      return;
    }
    const auto d = displacements(counts);
    for (peer_num p = 0; p < n; ++p) {
      ConstBytes src = send.subspan(d[p], counts[p]);
      if (p == root)
        copy(src, recv);
      else
        ch.send(p, src, c.tag, c.deadline);
    }
    return;
  }
  const peer_num v = to_virtual(c.rank, root, n);
  peer_num sub;
  const peer_num have = subtree_of(v, n, &sub);
  const auto vd = virtual_displacements(counts, root);
  Buffer tmp;
  ConstBytes blocks;  // the blocks of [v, v + have) in virtual order, from offset vd[v]
  if (v == 0) {
    if (root == 0) {
      blocks = send;
    } else {
      const auto d = displacements(counts);
      tmp.resize(vd[n]);
      for (peer_num i = 0; i < n; ++i) {
        const peer_num p = to_real(i, root, n);
        copy(send.subspan(d[p], counts[p]), Bytes(tmp).subspan(vd[i], counts[p]));
      }
      blocks = tmp;
    }
  } else {
    tmp.resize(vd[v + have] - vd[v]);
    ch.recv(to_real(v - sub, root, n), tmp, c.tag, c.deadline);
    blocks = tmp;
  }
  for (peer_num mask = sub >> 1; mask > 0; mask >>= 1) {
    if (v + mask < n) {
      const peer_num first = v + mask, last = std::min(n, v + 2 * mask);
      ch.send(to_real(first, root, n), blocks.subspan(vd[first] - vd[v], vd[last] - vd[first]),
              c.tag, c.deadline);
    }
  }
  copy(blocks.subspan(0, recv.size()), recv);
}

// Small mean blocks: gatherv to 0, then a binomial bcast of the packed result
// (2 log2 n rounds). Otherwise the ring: in step s peer r forwards block r - s to
// its right neighbour and receives block r - s - 1 from its left one, each block
// into its own place, so after n - 1 steps every peer holds every block and each
// block crossed each link once.
void allgatherv(Ch& ch, const Context& c, ConstBytes send, Bytes recv, Counts counts,
                const Options& o) {
  const peer_num n = c.size, r = c.rank;
  const Algorithm a = prepare(ch, c, Utils::Operation::allgatherv, o, mean_block(counts));
  if (a == Algorithm::bruck && n > 1) return allgatherv_bruck(ch, c, send, recv, counts);
  if (a == Algorithm::binomial) {
    Options go;
    go.root = 0;
    gatherv(ch, c, send, recv, counts, go);
    Options bo;
    bo.root = 0;
    bo.algorithm = Algorithm::binomial;
    bcast(ch, c, recv, bo);
    return;
  }
  const auto d = displacements(counts);
  copy(send, recv.subspan(d[r], counts[r]));
  const peer_num right = (r + 1) % n, left = (r + n - 1) % n;
  for (peer_num s = 0; s + 1 < n; ++s) {
    const peer_num cs = (r + n - s) % n;
    const peer_num cr = (r + 2 * n - s - 1) % n;
    ch.sendrecv(right, recv.subspan(d[cs], counts[cs]), left, recv.subspan(d[cr], counts[cr]),
                c.tag, c.deadline);
  }
}

// Pairwise exchange, as alltoall: in round s every peer sends its block for r + s
// and receives the block of r - s, so each round is a permutation and no peer is a
// hot spot however skewed the counts are. Sizes come from this peer's own rows:
// send_counts[dest] out, recv_counts[src] in. Beyond the connection budget (a
// choice on n alone) Bruck or the ring route the blocks with their sizes
// (scale.cpp).
void alltoallv(Ch& ch, const Context& c, ConstBytes send, Counts send_counts, Bytes recv,
               Counts recv_counts, const Options& o) {
  const peer_num n = c.size, r = c.rank;
  const Algorithm a = n > 1 ? prepare(ch, c, Utils::Operation::alltoallv, o, 0) : o.algorithm;
  if (n > 1 && (a == Algorithm::bruck || a == Algorithm::ring))
    return alltoallv_routed(ch, c, a, send, send_counts, recv, recv_counts);
  const auto sd = displacements(send_counts), rd = displacements(recv_counts);
  copy(send.subspan(sd[r], send_counts[r]), recv.subspan(rd[r], recv_counts[r]));
  for (peer_num s = 1; s < n; ++s) {
    const peer_num dest = (r + s) % n, src = (r + n - s) % n;
    ch.sendrecv(dest, send.subspan(sd[dest], send_counts[dest]), src,
                recv.subspan(rd[src], recv_counts[src]), c.tag, c.deadline);
  }
}

}  // namespace p2p

// ---- object stores ------------------------------------------------------------------
//
// One round, as the fixed-size store algorithms (store.cpp): every producer uploads
// each block once under (tag, from, to), naming how many peers will read it, and
// every consumer downloads exactly the keys it needs. Nothing lists the store.

namespace store {
namespace {

Comm::ObjectKey key(const Context& c, peer_num from, peer_num to = Comm::ObjectKey::all) {
  return Comm::ObjectKey{c.tag, from, to};
}

}  // namespace

void gatherv(Ch& ch, const Context& c, ConstBytes send, Bytes recv, Counts counts,
             const Options& o) {
  if (c.rank != o.root) {
    ch.put(key(c, c.rank, o.root), send, 1, c.deadline);
    return;
  }
  const auto d = displacements(counts);
  for (peer_num p = 0; p < c.size; ++p) {
    Bytes dst = recv.subspan(d[p], counts[p]);
    if (p == o.root)
      copy(send, dst);
    else
      ch.get(key(c, p, o.root), dst, c.deadline);
  }
}

void scatterv(Ch& ch, const Context& c, ConstBytes send, Counts counts, Bytes recv,
              const Options& o) {
  if (c.rank != o.root) {
    ch.get(key(c, o.root, c.rank), recv, c.deadline);
    return;
  }
  const auto d = displacements(counts);
  for (peer_num p = 0; p < c.size; ++p) {
    ConstBytes src = send.subspan(d[p], counts[p]);
    if (p == o.root)
      copy(src, recv);
    else
      ch.put(key(c, o.root, p), src, 1, c.deadline);
  }
}

// Each peer's block is one object read by the n - 1 others.
void allgatherv(Ch& ch, const Context& c, ConstBytes send, Bytes recv, Counts counts,
                const Options&) {
  if (c.size > 1) ch.put(key(c, c.rank), send, c.size - 1, c.deadline);
  const auto d = displacements(counts);
  for (peer_num p = 0; p < c.size; ++p) {
    Bytes dst = recv.subspan(d[p], counts[p]);
    if (p == c.rank)
      copy(send, dst);
    else
      ch.get(key(c, p), dst, c.deadline);
  }
}

// n (n - 1) objects, each read once; all uploads before any download, so no peer
// waits for a block whose producer is itself waiting.
void alltoallv(Ch& ch, const Context& c, ConstBytes send, Counts send_counts, Bytes recv,
               Counts recv_counts, const Options&) {
  const peer_num r = c.rank;
  const auto sd = displacements(send_counts), rd = displacements(recv_counts);
  for (peer_num p = 0; p < c.size; ++p)
    if (p != r) ch.put(key(c, r, p), send.subspan(sd[p], send_counts[p]), 1, c.deadline);
  copy(send.subspan(sd[r], send_counts[r]), recv.subspan(rd[r], recv_counts[r]));
  for (peer_num p = 0; p < c.size; ++p)
    if (p != r) ch.get(key(c, p, r), recv.subspan(rd[p], recv_counts[p]), c.deadline);
}

}  // namespace store

}  // namespace FMI::coll
