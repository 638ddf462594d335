"""Sub-communicators: comm.split(color, key) and comm.dup(). Peers are threads over
an fmi.InProcessHub, both channel kinds, 1, 2, 3 and 5 peers. Every received value
names the peer it came from, so a message routed to the wrong rank or taken from
the parent is caught."""

import numpy as np
import pytest

import fmi
from conftest import run_peers

SUM = fmi.func(fmi.op.sum)
INT = fmi.types(fmi.datatypes.int)


def exercise(c, ids, salt):
    """Collectives of several kinds on c, whose rank r is top-level peer ids[r]."""
    n, me = c.num_peers, c.peer_id
    assert len(ids) == n
    g = ids[me]
    for root in sorted({0, n - 1}):
        assert c.bcast({"from": g, "salt": salt} if me == root else None, root) == \
            {"from": ids[root], "salt": salt}
    assert c.allgather((g, salt)) == [(i, salt) for i in ids]
    assert c.allreduce(g + salt, SUM, INT) == sum(ids) + n * salt
    assert c.scan(g, SUM, INT) == sum(ids[:me + 1])
    got = c.gather([g] * (me + 1), n - 1)
    if me == n - 1:
        assert got == [[ids[p]] * (p + 1) for p in range(n)]
    assert c.alltoall([(g, ids[j]) for j in range(n)]) == [(ids[i], g) for i in range(n)]
    counts = [p + 1 for p in range(n)]
    send = np.full(me + 1, g * 10 + salt, dtype=np.int64)
    recv = np.zeros(sum(counts), dtype=np.int64)
    c.allgatherv(send, recv, counts)
    assert recv.tolist() == [ids[p] * 10 + salt for p in range(n) for _ in range(p + 1)]
    if n > 1:
        c.send((g, salt), (me + 1) % n)
        assert c.recv((me + n - 1) % n) == (ids[(me + n - 1) % n], salt)
    c.barrier()


def test_split_uneven_groups_reverse_keys(kind, npeers):
    n = npeers

    def body(comm):
        me = comm.peer_id
        color = -1 if (n >= 3 and me == n - 1) else me % 2
        child = comm.split(color, -me)
        if color < 0:
            assert child is None
        else:
            members = sorted((p for p in range(n) if p % 2 == color and not (n >= 3 and p == n - 1)),
                             reverse=True)
            assert isinstance(child, fmi.Communicator)
            assert child.num_peers == len(members)
            assert child.peer_id == members.index(me)
            exercise(child, members, 1)
        exercise(comm, list(range(n)), 2)
        return True

    assert run_peers(n, body, kind) == [True] * n


def test_split_nested_and_interleaved(kind, npeers):
    n = npeers

    def body(comm):
        me = comm.peer_id
        ids = list(range(n))
        a = comm.split(0 if me < n - n // 3 else 1, me)
        am = [p for p in ids if (p < n - n // 3) == (me < n - n // 3)]
        assert a.peer_id == am.index(me)
        b = a.split(a.peer_id % 2, 0)  # tied keys: the parent's order
        bm = [am[r] for r in range(len(am)) if r % 2 == a.peer_id % 2]
        assert b.peer_id == bm.index(me) and b.num_peers == len(bm)
        # Equal tags in parent and child on one pair, received in reverse order.
        if b.num_peers > 1:
            nb, rb = b.num_peers, b.peer_id
            comm.send(("parent", me), bm[(rb + 1) % nb])
            b.send(("child", me), (rb + 1) % nb)
            assert b.recv((rb + nb - 1) % nb) == ("child", bm[(rb + nb - 1) % nb])
            assert comm.recv(bm[(rb + nb - 1) % nb]) == ("parent", bm[(rb + nb - 1) % nb])
        for salt in (3, 4):
            exercise(b, bm, salt)
            exercise(a, am, salt + 10)
            exercise(comm, ids, salt + 20)
        b.finalize()
        a.finalize()
        return True

    assert run_peers(n, body, kind) == [True] * n


def test_dup(kind, npeers):
    n = npeers

    def body(comm):
        d = comm.dup()
        assert (d.peer_id, d.num_peers, d.comm_name) == (comm.peer_id, n, comm.comm_name)
        exercise(d, list(range(n)), 5)
        exercise(comm, list(range(n)), 6)
        with d.dup() as dd:
            exercise(dd, list(range(n)), 7)
        return True

    assert run_peers(n, body, kind) == [True] * n


def test_split_keeps_parent_alive_and_errors(kind):
    n = 2

    def body(comm):
        child = comm.split(0)  # key defaults to 0, as in mpi4py
        assert child.peer_id == comm.peer_id
        with pytest.raises(fmi.UsageError, match="color"):
            comm.split(2**40, 0)
        child.barrier()
        comm.finalize()
        with pytest.raises(fmi.UsageError, match="parent communicator has been destroyed"):
            child.allgather(1)
        return True

    assert run_peers(n, body, kind) == [True] * n
