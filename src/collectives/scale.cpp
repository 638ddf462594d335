// The p2p algorithms for communicators larger than the connection budget
// (docs/collectives.md, "Connection budget"): store-and-forward alltoall(v) (Bruck,
// ring), Bruck allgather(v), chains for gather/scatter(v) and barrier, and the
// choice of reduce_scatter's parts. Each talks to O(log n) partners (Bruck) or to
// at most 2 (chains, rings), where the budget-free algorithms talk to every peer.
#include <cstring>
#include <string>

#include "collectives/collectives.h"
#include "collectives/tree.h"
#include "fmi/errors.h"

namespace FMI::coll::p2p {
namespace {

using Comm::Bytes;
using Comm::ConstBytes;
using Utils::peer_num;
using Buffer = std::vector<std::byte>;
using tree::to_real;
using tree::to_virtual;

// The rounds of a store-and-forward alltoall. Block (src -> dst) has distance
// d = (dst - src) mod n and travels to the right. Round k moves it `step(k)` peers
// when moves(k, d): Bruck moves it 2^k when bit k of d is set (ceil(log2 n) rounds,
// partners r +- 2^k), the ring one peer a round until it has arrived (n - 1 rounds,
// partners r +- 1, about n/2 blocks per message). Either way a block has moved
// exactly d peers at the end, and before every round each peer holds exactly one
// block per distance d (slot d), so the blocks a round sends out of slot d are
// replaced by the ones arriving into slot d from the left.
struct Rounds {
  Algorithm a;
  peer_num n;
  peer_num count() const {
    if (a == Algorithm::ring) return n - 1;
    peer_num k = 0;
    while ((peer_num(1) << k) < n) ++k;
    return k;
  }
  peer_num step(peer_num k) const { return a == Algorithm::ring ? 1 : peer_num(1) << k; }
  bool moves(peer_num k, peer_num d) const { return a == Algorithm::ring ? d > k : (d >> k) & 1u; }
};

}  // namespace

void alltoall_routed(Ch& ch, const Context& c, Algorithm a, ConstBytes send, Bytes recv) {
  const peer_num n = c.size, r = c.rank;
  const std::size_t bs = send.size() / n;
  // Slot d holds the block at distance d this peer has now: first its own block
  // for r + d; at the end the block from r - d.
  Buffer slots(send.size());
  for (peer_num d = 0; d < n; ++d)
    copy(send.subspan(std::size_t((r + d) % n) * bs, bs), Bytes(slots).subspan(d * bs, bs));
  const Rounds rounds{a, n};
  Buffer out, in;
  std::vector<peer_num> ds;
  for (peer_num k = 0; k < rounds.count(); ++k) {
    ds.clear();
    for (peer_num d = 1; d < n; ++d)
      if (rounds.moves(k, d)) ds.push_back(d);
    out.resize(ds.size() * bs);
    in.resize(ds.size() * bs);
    for (std::size_t i = 0; i < ds.size(); ++i)
      copy(ConstBytes(slots).subspan(ds[i] * bs, bs), Bytes(out).subspan(i * bs, bs));
    const peer_num step = rounds.step(k);
    ch.sendrecv((r + step) % n, out, (r + n - step) % n, in, c.tag, c.deadline);
    for (std::size_t i = 0; i < ds.size(); ++i)
      copy(ConstBytes(in).subspan(i * bs, bs), Bytes(slots).subspan(ds[i] * bs, bs));
  }
  for (peer_num d = 0; d < n; ++d)
    copy(ConstBytes(slots).subspan(d * bs, bs),
         recv.subspan(std::size_t((r + n - d) % n) * bs, bs));
}

// The same with blocks of any size. Only the source knows a block's size
// (send_counts) and only the destination checks it (recv_counts); the peers in
// between learn it from the sizes each message is preceded by (one 8-byte size per
// block, a message of known length), then receive the blocks packed.
void alltoallv_routed(Ch& ch, const Context& c, Algorithm a, ConstBytes send, Counts send_counts,
                      Bytes recv, Counts recv_counts) {
  const peer_num n = c.size, r = c.rank;
  std::vector<std::size_t> sd(n + 1, 0), rd(n + 1, 0);
  for (peer_num p = 0; p < n; ++p) {
    sd[p + 1] = sd[p] + send_counts[p];
    rd[p + 1] = rd[p] + recv_counts[p];
  }
  std::vector<Buffer> slots(n);
  for (peer_num d = 0; d < n; ++d) {
    const peer_num dst = (r + d) % n;
    const ConstBytes b = send.subspan(sd[dst], send_counts[dst]);
    slots[d].assign(b.begin(), b.end());
  }
  const Rounds rounds{a, n};
  std::vector<peer_num> ds;
  std::vector<std::uint64_t> sizes_out, sizes_in;
  Buffer out, in;
  for (peer_num k = 0; k < rounds.count(); ++k) {
    ds.clear();
    for (peer_num d = 1; d < n; ++d)
      if (rounds.moves(k, d)) ds.push_back(d);
    sizes_out.resize(ds.size());
    sizes_in.resize(ds.size());
    std::size_t total = 0;
    for (std::size_t i = 0; i < ds.size(); ++i) total += sizes_out[i] = slots[ds[i]].size();
    out.resize(total);
    total = 0;
    for (std::size_t i = 0; i < ds.size(); ++i) {
      copy(slots[ds[i]], Bytes(out).subspan(total, slots[ds[i]].size()));
      total += slots[ds[i]].size();
    }
    const peer_num step = rounds.step(k), dest = (r + step) % n, src = (r + n - step) % n;
    ch.sendrecv(dest, std::as_bytes(std::span(sizes_out)), src,
                std::as_writable_bytes(std::span(sizes_in)), c.tag, c.deadline);
    total = 0;
    for (std::uint64_t x : sizes_in) total += x;
    in.resize(total);
    ch.sendrecv(dest, out, src, in, c.tag, c.deadline);
    total = 0;
    for (std::size_t i = 0; i < ds.size(); ++i) {
      const ConstBytes b = ConstBytes(in).subspan(total, sizes_in[i]);
      slots[ds[i]].assign(b.begin(), b.end());
      total += sizes_in[i];
    }
  }
  for (peer_num d = 0; d < n; ++d) {
    const peer_num src = (r + n - d) % n;
    if (slots[d].size() != recv_counts[src])
      FMI_THROW(PeerError, "alltoallv: peer ", r, " expects ", recv_counts[src],
                " bytes from peer ", src, " (recv_counts), which sent ", slots[d].size());
    copy(slots[d], recv.subspan(rd[src], recv_counts[src]));
  }
}

// Bruck allgather: before the round of step 2^k, peer r holds the blocks r, r + 1,
// ..., r + 2^k - 1 (mod n) in that order (its window); it sends the first
// min(2^k, n - 2^k) of them to r - 2^k and appends those of r + 2^k, so the window
// doubles. ceil(log2 n) rounds, partners r +- 2^k; block sizes come from `counts`,
// which every peer holds. The window is then rotated into peer order.
void allgatherv_bruck(Ch& ch, const Context& c, ConstBytes send, Bytes recv, Counts counts) {
  const peer_num n = c.size, r = c.rank;
  // wd[i]: where block r + i starts in the window.
  std::vector<std::size_t> wd(n + 1, 0);
  for (peer_num i = 0; i < n; ++i) wd[i + 1] = wd[i] + counts[(r + i) % n];
  Buffer window(wd[n]);
  copy(send, Bytes(window).subspan(0, send.size()));
  for (peer_num step = 1; step < n; step <<= 1) {
    const peer_num cnt = std::min(step, n - step);
    ch.sendrecv((r + n - step) % n, ConstBytes(window).subspan(0, wd[cnt]), (r + step) % n,
                Bytes(window).subspan(wd[step], wd[step + cnt] - wd[step]), c.tag, c.deadline);
  }
  std::vector<std::size_t> d(n + 1, 0);
  for (peer_num p = 0; p < n; ++p) d[p + 1] = d[p] + counts[p];
  for (peer_num i = 0; i < n; ++i) {
    const peer_num p = (r + i) % n;
    copy(ConstBytes(window).subspan(wd[i], counts[p]), recv.subspan(d[p], counts[p]));
  }
}

// Gather along the chain of virtual ranks n-1 -> ... -> 1 -> 0 (the root): v
// receives the blocks of v + 1 ... n - 1 from v + 1 in one message, puts its own in
// front and passes them to v - 1. Two partners, n - 1 rounds; the link into the root
// carries everything once, the others less.
void gatherv_chain(Ch& ch, const Context& c, ConstBytes send, Bytes recv, Counts counts,
                   peer_num root) {
  const peer_num n = c.size, v = to_virtual(c.rank, root, n);
  std::vector<std::size_t> vd(n + 1, 0);  // virtual-order displacements
  for (peer_num i = 0; i < n; ++i) vd[i + 1] = vd[i] + counts[to_real(i, root, n)];
  Buffer acc(vd[n] - vd[v]);  // blocks v .. n-1
  copy(send, Bytes(acc).subspan(0, send.size()));
  if (v + 1 < n)
    ch.recv(to_real(v + 1, root, n), Bytes(acc).subspan(vd[v + 1] - vd[v]), c.tag, c.deadline);
  if (v > 0) {
    ch.send(to_real(v - 1, root, n), acc, c.tag, c.deadline);
    return;
  }
  std::size_t at = 0;  // block p's place in peer order
  for (peer_num p = 0; p < n; ++p) {
    copy(ConstBytes(acc).subspan(vd[to_virtual(p, root, n)], counts[p]),
         recv.subspan(at, counts[p]));
    at += counts[p];
  }
}

// The reverse: the root sends the blocks of 1 ... n-1 to virtual rank 1, which keeps
// its own and passes the rest on.
void scatterv_chain(Ch& ch, const Context& c, ConstBytes send, Counts counts, Bytes recv,
                    peer_num root) {
  const peer_num n = c.size, v = to_virtual(c.rank, root, n);
  std::vector<std::size_t> vd(n + 1, 0);
  for (peer_num i = 0; i < n; ++i) vd[i + 1] = vd[i] + counts[to_real(i, root, n)];
  Buffer blocks(vd[n] - vd[v]);  // blocks v .. n-1 in virtual order
  if (v == 0) {
    std::vector<std::size_t> d(n + 1, 0);
    for (peer_num p = 0; p < n; ++p) d[p + 1] = d[p] + counts[p];
    for (peer_num i = 0; i < n; ++i) {
      const peer_num p = to_real(i, root, n);
      copy(send.subspan(d[p], counts[p]), Bytes(blocks).subspan(vd[i], counts[p]));
    }
  } else {
    ch.recv(to_real(v - 1, root, n), blocks, c.tag, c.deadline);
  }
  if (v + 1 < n)
    ch.send(to_real(v + 1, root, n), ConstBytes(blocks).subspan(vd[v + 1] - vd[v]), c.tag,
            c.deadline);
  copy(ConstBytes(blocks).subspan(0, recv.size()), recv);
}

// Chain barrier: arrivals travel 0 -> 1 -> ... -> n-1, the release back from n-1 to
// 0. 2 (n - 1) sequential messages, 2 partners: for budgets too small for the
// log2 n partners of the trees.
void barrier_chain(Ch& ch, const Context& c) {
  const peer_num n = c.size, r = c.rank;
  if (r > 0) ch.recv(r - 1, {}, c.tag, c.deadline);
  if (r + 1 < n) {
    ch.send(r + 1, {}, c.tag, c.deadline);
    ch.recv(r + 1, {}, c.tag, c.deadline);
  }
  if (r > 0) ch.send(r - 1, {}, c.tag, c.deadline);
}

std::pair<Algorithm, Algorithm> reduce_scatter_parts(std::size_t block, peer_num n,
                                                     const ReduceProps& props, std::size_t budget) {
  const std::size_t full = block * n;
  if (budget == 0 || std::size_t(n) - 1 <= budget)
    return {choose_p2p(Utils::Operation::reduce, full, n, props),
            choose_p2p(Utils::Operation::scatter, block, n, {})};
  // One binomial tree at root 0 serves both when it fits; otherwise the chain
  // 0 -> n-1 (with the hop n-1 -> 0) and the scatter chain from 0: the ranks +- 1.
  std::size_t L = 0;
  while ((peer_num(1) << L) < n) ++L;
  if (props.associative && L <= budget) return {Algorithm::binomial, Algorithm::binomial};
  return {props.granularity > 0 ? Algorithm::pipeline : Algorithm::linear, Algorithm::chain};
}

Algorithm prepare(Ch& ch, const Context& c, Utils::Operation op, const Options& o,
                  std::size_t bytes, const ReduceProps& props) {
  const std::size_t budget = ch.max_connections();
  const Algorithm a = o.algorithm == Algorithm::automatic
                          ? choose_p2p(op, bytes, c.size, props, budget)
                          : o.algorithm;
  if (c.size > 1) {
    const auto peers = partners(op, a, c.rank, c.size, o.root, props, bytes, budget);
    if (!peers.empty()) ch.connect(peers, c.deadline);
  }
  return a;
}

}  // namespace FMI::coll::p2p
