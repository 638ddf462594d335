// Which peers each p2p algorithm talks to (partners) and a bound of how many
// (max_partners). The channel opens a connection per partner, and a function may
// hold only max_connections() of them (on Lambda 1,024 descriptors in all), so the
// choice (choose_p2p) compares max_partners with that budget, and each collective
// hands partners() to Ch::connect before its first round.
//
// partners() mirrors the message pattern coded in p2p.cpp, vector.cpp and
// scale.cpp; tests/core/algorithms_test.cpp checks it against the peers each rank
// really sent to or received from, and the bound against every rank.
#include <algorithm>

#include "collectives/collectives.h"
#include "collectives/tree.h"

namespace FMI::coll {

using Utils::Operation;
using Utils::peer_num;

namespace {

using tree::to_real;
using tree::to_virtual;

// ceil(log2 n) and floor(log2 n), n >= 1.
std::size_t ceil_log2(peer_num n) {
  std::size_t l = 0;
  while ((peer_num(1) << l) < n) ++l;
  return l;
}
std::size_t floor_log2(peer_num n) {
  std::size_t l = 0;
  while ((peer_num(2) << l) <= n) ++l;
  return l;
}

struct Set {
  peer_num n, me;
  std::vector<peer_num> v;
  void add(peer_num p) {
    if (p < n && p != me) v.push_back(p);
  }
  // The binomial tree on virtual ranks (tree.h): parent v - lowbit(v), children v + m
  // for the powers of two m below lowbit(v) (the root: below n).
  void tree(peer_num root) {
    const peer_num v = to_virtual(me, root, n);
    peer_num low = 1;
    while (low < n && !(v & low)) low <<= 1;
    if (v > 0) add(to_real(v - low, root, n));
    for (peer_num m = 1; m < low; m <<= 1)
      if (v + m < n) add(to_real(v + m, root, n));
  }
  // r +- 2^k (mod n): dissemination, Bruck, Hillis-Steele (without the wrap).
  void powers(bool wrap) {
    for (peer_num d = 1; d < n; d <<= 1) {
      if (wrap) {
        add((me + d) % n);
        add((me + n - d) % n);
      } else {
        if (me + d < n) add(me + d);
        if (me >= d) add(me - d);
      }
    }
  }
  void ring() {
    add((me + 1) % n);
    add((me + n - 1) % n);
  }
  // The chain of virtual ranks 0 -> 1 -> ... -> n-1 from `root`.
  void chain(peer_num root) {
    const peer_num v = to_virtual(me, root, n);
    if (v > 0) add(to_real(v - 1, root, n));
    if (v + 1 < n) add(to_real(v + 1, root, n));
  }
  void all() {
    for (peer_num p = 0; p < n; ++p) add(p);
  }
  // Recursive doubling with folding (p2p.cpp allreduce_recursive_doubling).
  void doubling() {
    peer_num p = 1;
    while (p * 2 <= n) p *= 2;
    const peer_num e = n - p;
    peer_num j;
    if (me < 2 * e) {
      if (me % 2 == 0) {
        add(me + 1);
        return;
      }
      add(me - 1);
      j = me / 2;
    } else {
      j = me - e;
    }
    auto real_of = [&](peer_num jj) { return jj < e ? 2 * jj + 1 : jj + e; };
    for (peer_num mask = 1; mask < p; mask <<= 1) add(real_of(j ^ mask));
  }
  void with(const std::vector<peer_num>& other) { v.insert(v.end(), other.begin(), other.end()); }
};

}  // namespace

std::vector<peer_num> partners(Operation op, Algorithm a, peer_num rank, peer_num n, peer_num root,
                               const ReduceProps& props, std::size_t bytes, std::size_t budget) {
  Set s{n, rank, {}};
  if (n <= 1) return {};
  switch (op) {
    case Operation::send: break;
    case Operation::barrier:
      if (a == Algorithm::binomial)
        s.tree(0);
      else if (a == Algorithm::chain)
        s.chain(0);
      else
        s.powers(true);
      break;
    case Operation::bcast:
      if (a == Algorithm::linear) {
        if (rank == root)
          s.all();
        else
          s.add(root);
      } else if (a == Algorithm::pipeline) {
        s.chain(root);
      } else {
        s.tree(root);
        if (a == Algorithm::scatter_allgather) s.ring();
      }
      break;
    case Operation::gather:
    case Operation::scatter:
    case Operation::gatherv:
    case Operation::scatterv:
      if (a == Algorithm::linear) {
        if (rank == root)
          s.all();
        else
          s.add(root);
      } else if (a == Algorithm::chain) {
        s.chain(root);
      } else {
        s.tree(root);
      }
      break;
    case Operation::reduce:
      switch (a) {
        case Algorithm::linear:  // chain 0 -> n-1, then n-1 -> root
          s.chain(0);
          if (rank == n - 1) s.add(root);
          if (rank == root) s.add(n - 1);
          break;
        case Algorithm::pipeline:
          if (props.commutative && props.associative) {
            s.chain((root + 1) % n);  // root + 1, ..., root
          } else {
            s.chain(0);
            if (rank == n - 1) s.add(root);
            if (rank == root) s.add(n - 1);
          }
          break;
        case Algorithm::ring:
          s.ring();
          if (rank == root)
            s.all();
          else
            s.add(root);
          break;
        default:  // binomial
          if (props.commutative && props.associative) {
            s.tree(root);
          } else {
            s.tree(0);
            if (rank == 0) s.add(root);
            if (rank == root) s.add(0);
          }
      }
      break;
    case Operation::allreduce:
      if (a == Algorithm::ring) {
        s.ring();
      } else if (a == Algorithm::linear) {  // chain to n-1, binomial bcast from n-1
        s.chain(0);
        s.tree(n - 1);
      } else if (a == Algorithm::chain) {  // chain to n-1, pipelined chain back from n-1
        s.chain(0);
        s.chain(n - 1);
      } else if (a == Algorithm::binomial) {  // reduce to 0 and bcast from 0: one tree
        s.tree(0);
      } else {
        s.doubling();
      }
      break;
    case Operation::scan:
      if (a == Algorithm::recursive_doubling)
        s.powers(false);
      else
        s.chain(0);
      break;
    case Operation::allgather:
    case Operation::allgatherv:
      if (a == Algorithm::ring) {
        s.ring();
      } else if (a == Algorithm::bruck) {
        s.powers(true);
      } else {  // gather(v) to 0 (its own choice), binomial bcast from 0
        const Operation g = op == Operation::allgather ? Operation::gather : Operation::gatherv;
        s.with(partners(g, choose_p2p(g, bytes, n, {}, budget), rank, n, 0));
        s.tree(0);
      }
      break;
    case Operation::alltoall:
    case Operation::alltoallv:
      if (a == Algorithm::bruck)
        s.powers(true);
      else if (a == Algorithm::ring)
        s.ring();
      else
        s.all();
      break;
    case Operation::reduce_scatter:
      if (a == Algorithm::ring) {
        s.ring();
      } else {
        const auto [ra, sa] = p2p::reduce_scatter_parts(bytes, n, props, budget);
        s.with(partners(Operation::reduce, ra, rank, n, 0, props, bytes * n, budget));
        s.with(partners(Operation::scatter, sa, rank, n, 0, {}, bytes, budget));
      }
      break;
  }
  std::sort(s.v.begin(), s.v.end());
  s.v.erase(std::unique(s.v.begin(), s.v.end()), s.v.end());
  return s.v;
}

std::size_t max_partners(Operation op, Algorithm a, peer_num n, const ReduceProps& props,
                         std::size_t bytes, std::size_t budget) {
  if (n <= 1) return 0;
  const std::size_t all = n - 1, L = ceil_log2(n);
  const std::size_t powers = std::min(all, 2 * L);
  auto bound = [&](std::size_t x) { return std::min(all, x); };
  switch (op) {
    case Operation::send: return 0;
    case Operation::barrier:
      return a == Algorithm::binomial ? L : a == Algorithm::chain ? bound(2) : powers;
    case Operation::bcast:
      if (a == Algorithm::linear) return all;
      if (a == Algorithm::pipeline) return bound(2);
      return bound(a == Algorithm::scatter_allgather ? L + 2 : L);
    case Operation::gather:
    case Operation::scatter:
    case Operation::gatherv:
    case Operation::scatterv:
      return a == Algorithm::linear ? all : a == Algorithm::chain ? bound(2) : L;
    case Operation::reduce:
      switch (a) {
        case Algorithm::linear:
        case Algorithm::pipeline: return bound(3);
        case Algorithm::ring: return all;
        default: return bound(props.commutative && props.associative ? L : L + 1);
      }
    case Operation::allreduce:
      if (a == Algorithm::ring || a == Algorithm::chain) return bound(2);
      if (a == Algorithm::linear) return bound(L + 2);
      if (a == Algorithm::binomial) return L;
      return bound(floor_log2(n) + 1);
    case Operation::scan: return a == Algorithm::recursive_doubling ? powers : bound(2);
    case Operation::allgather:
    case Operation::allgatherv: {
      if (a == Algorithm::ring) return bound(2);
      if (a == Algorithm::bruck) return powers;
      const Operation g = op == Operation::allgather ? Operation::gather : Operation::gatherv;
      const Algorithm ga = choose_p2p(g, bytes, n, {}, budget);
      // A binomial gather uses the bcast's own tree.
      return ga == Algorithm::binomial ? L : bound(L + max_partners(g, ga, n));
    }
    case Operation::alltoall:
    case Operation::alltoallv:
      return a == Algorithm::bruck ? powers : a == Algorithm::ring ? bound(2) : all;
    case Operation::reduce_scatter: {
      if (a == Algorithm::ring) return bound(2);
      const auto [ra, sa] = p2p::reduce_scatter_parts(bytes, n, props, budget);
      // Both binomial with root 0: one tree (an ordered binomial reduce to 0 needs
      // no last hop).
      if (ra == Algorithm::binomial && sa == Algorithm::binomial) return L;
      return bound(max_partners(Operation::reduce, ra, n, props, bytes * n, budget) +
                   max_partners(Operation::scatter, sa, n, {}, bytes, budget));
    }
  }
  return all;
}

}  // namespace FMI::coll
