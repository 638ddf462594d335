"""Python objects (pickled with protocol 5) in every call without a type, the
variable-size collectives on buffers, and the module in a Python without NumPy.
Peers are threads over an fmi.InProcessHub, both channel kinds."""

import os
import subprocess
import sys

import numpy as np
import pytest

import fmi
from conftest import run_peers, run_peers_raw

SUM = fmi.func(fmi.op.sum)
INT = fmi.types(fmi.datatypes.int)
HERE = os.path.dirname(os.path.abspath(__file__))


def roots(n):
    return sorted({0, n // 2, n - 1})


def obj_of(i, k=0):
    """An object of several kinds that depends on the peer and a position."""
    return {
        "peer": i,
        "k": k,
        "arr": np.arange(i * 3 + k, dtype=np.float64) * (i + 1),
        "ints": np.full((2, i + 1), i, dtype=np.int32),
        "nested": [i, [k, None, ("t", i)], {"s": "x" * i}],
        "none": None,
    }


def same(a, b):
    """Deep equality where NumPy arrays compare by dtype, shape and values."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and a.shape == b.shape and np.array_equal(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[x], b[x]) for x in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def test_send_recv_objects(kind, npeers):
    if npeers == 1:
        pytest.skip("send needs two peers")

    def body(c):
        n, i = c.num_peers, c.peer_id
        right, left = (i + 1) % n, (i - 1) % n
        values = [obj_of(i), None, [[1, [2, [3]]], []], 42, "text", b"raw bytes".decode()]
        # Even peers send first (p2p sends do not wait for the receiver anyway).
        for v in values:
            c.send(v, right)
        for v in [obj_of(left), None, [[1, [2, [3]]], []], 42, "text", "raw bytes"]:
            got = c.recv(left)
            assert same(got, v), (got, v)
    run_peers(npeers, body, kind)


def test_received_arrays_share_the_message(kind):
    """Out-of-band buffers: an array inside a received object is a view of the
    received message (no copy), and it is writable."""
    def body(c):
        if c.peer_id == 0:
            c.send({"a": np.arange(1000, dtype=np.int64)}, 1)
        else:
            a = c.recv(0)["a"]
            assert np.array_equal(a, np.arange(1000))
            assert a.base is not None  # a view, not an array that owns a copy
            assert a.flags.writeable
            a[0] = 5
        # bcast: the same, and a read-only array at the root is sent from a copy.
        ro = np.arange(50_000, dtype=np.float64)
        ro.setflags(write=False)
        got = c.bcast({"ro": ro, "more": [np.ones(3, np.int8)]} if c.peer_id == 1 else None, 1)
        assert np.array_equal(got["ro"], ro) and np.array_equal(got["more"][0], np.ones(3))
        if c.peer_id == 0:
            assert got["ro"].base is not None  # a view of the message (NumPy keeps it read-only)
        else:
            assert got["ro"] is ro  # the root keeps its own object
    run_peers(2, body, kind)


def test_object_collectives(kind, npeers):
    def body(c):
        n, i = c.num_peers, c.peer_id
        for r in roots(n):
            got = c.bcast(obj_of(r, 9) if i == r else None, r)
            assert same(got, obj_of(r, 9))
            assert c.bcast(None, r) is None
            got = c.gather(obj_of(i, r), r)
            if i == r:
                assert isinstance(got, list) and len(got) == n
                assert all(same(got[p], obj_of(p, r)) for p in range(n))
            else:
                assert got is None
            got = c.scatter([obj_of(r, p) for p in range(n)] if i == r else None, r)
            assert same(got, obj_of(r, i))
            # reduce with a built-in op applied to the objects (lists concatenate)
            got = c.reduce([i], r, SUM)
            assert got == (list(range(n)) if i == r else None)
        got = c.allgather(obj_of(i))
        assert all(same(got[p], obj_of(p)) for p in range(n))
        got = c.alltoall([obj_of(i, p) for p in range(n)])
        assert all(same(got[p], obj_of(p, i)) for p in range(n))
        # Skewed: one peer sends a big object, the others None. (An array alone
        # is a buffer and takes the buffer form: objects are what is not a buffer.)
        big = np.arange(200_000, dtype=np.float32)
        got = c.allgather([big] if i == n - 1 else None)
        assert all(x is None for x in got[:-1]) and np.array_equal(got[-1][0], big)
        # Non-commutative custom function: strictly in peer order, same everywhere.
        concat = fmi.func(fmi.op.custom, lambda a, b: a + b, False, True)
        assert c.allreduce(str(i), concat) == "".join(str(p) for p in range(n))
        assert c.scan(str(i), concat) == "".join(str(p) for p in range(i + 1))
        assert c.allreduce(i + 1, fmi.func(fmi.op.prod)) == np.prod(np.arange(1, n + 1))
        assert c.allreduce(i, fmi.func(fmi.op.max)) == n - 1
        assert c.scan({"v": i}, fmi.func(fmi.op.custom, lambda a, b: {"v": a["v"] + b["v"]})) == {
            "v": sum(range(i + 1))}
        # The typed calls of the original API are unchanged.
        assert c.allreduce(i, SUM, INT) == sum(range(n))
    run_peers(npeers, body, kind)


def test_object_errors():
    import threading

    def body(c):
        other = 1 - c.peer_id
        with pytest.raises(TypeError, match="neither a buffer-protocol object nor picklable"):
            c.send(threading.Lock(), other)
        with pytest.raises(fmi.UsageError, match="one per peer"):
            c.alltoall([1, 2, 3])
        assert c.allgather(c.peer_id) == [0, 1]  # nothing was sent by the failed calls
    run_peers(2, body)


# ---- variable-size collectives on buffers ---------------------------------------------

def counts_for(shape, n, heavy):
    if shape == "uneven":
        return [(p * 5) % 7 for p in range(n)]  # peer 0 contributes nothing
    if shape == "zeros":
        return [0] * n
    return [1000 if p == heavy else 0 for p in range(n)]  # skewed


SHAPES = ["uneven", "zeros", "skewed"]


def test_gatherv_scatterv(kind, npeers):
    def body(c):
        n, i = c.num_peers, c.peer_id
        for r in roots(n):
            for shape in SHAPES:
                counts = counts_for(shape, n, r)
                offs = np.concatenate([[0], np.cumsum(counts)]).astype(int)
                mine = np.arange(counts[i], dtype=np.float64) + 1000 * i
                recv = np.full(sum(counts), -1.0) if i == r else None
                got = c.gatherv(mine, recv, counts, r)
                if i == r:
                    assert got is recv
                    for p in range(n):
                        assert np.array_equal(recv[offs[p]:offs[p + 1]],
                                              np.arange(counts[p]) + 1000 * p)
                else:
                    assert got is None
                send = np.concatenate([np.arange(counts[p], dtype=np.int16) + p for p in range(n)]) \
                    if i == r else None
                out = np.zeros(counts[i], dtype=np.int16)
                assert c.scatterv(send, counts, out, r) is out
                assert np.array_equal(out, np.arange(counts[i]) + i)
    run_peers(npeers, body, kind)


def test_allgatherv_alltoallv(kind, npeers):
    def body(c):
        n, i = c.num_peers, c.peer_id
        for shape in SHAPES:
            counts = counts_for(shape, n, n - 1)
            offs = np.concatenate([[0], np.cumsum(counts)]).astype(int)
            recv = np.zeros(sum(counts), dtype=np.int64)
            c.allgatherv(np.full(counts[i], i, dtype=np.int64), recv, counts)
            for p in range(n):
                assert (recv[offs[p]:offs[p + 1]] == p).all()
        # alltoallv: peer p sends m(p, q) items to q; skewed: peer 0 sends everything.
        for m in (lambda p, q: (p * 3 + q) % 4, lambda p, q: 500 if p == 0 else 0, lambda p, q: 0):
            sc = [m(i, q) for q in range(n)]
            rc = [m(p, i) for p in range(n)]
            send = np.concatenate([np.full(sc[q], 100 * i + q, dtype=np.int32) for q in range(n)])
            recv = np.full(sum(rc), -1, dtype=np.int32)
            assert c.alltoallv(send, sc, recv, rc) is recv
            expect = np.concatenate([np.full(rc[p], 100 * p + i, dtype=np.int32) for p in range(n)])
            assert np.array_equal(recv, expect)
        # bytes and bytearray: counts in bytes
        out = bytearray(n)
        c.allgatherv(bytes([65 + i]), out, [1] * n)
        assert out == bytes(range(65, 65 + n))
    run_peers(npeers, body, kind)


def test_v_errors(kind):
    def body(c):
        with pytest.raises(fmi.UsageError, match="3 entries, needs one per peer"):
            c.allgatherv(np.zeros(1), np.zeros(2), [1, 1, 0])
        with pytest.raises(fmi.UsageError, match="add up to"):
            c.allgatherv(np.zeros(c.peer_id), np.zeros(5), [0, 1])
        with pytest.raises(fmi.UsageError, match="keeps for itself"):
            c.alltoallv(np.zeros(2), [1, 1], np.zeros(3), [2, 1] if c.peer_id == 0 else [1, 2])
        with pytest.raises(fmi.UsageError, match="whole number"):
            c.gatherv(b"abc", np.zeros(2), [1, 1], 0)
        with pytest.raises(fmi.UsageError, match="negative"):
            c.scatterv(np.zeros(2), [-1, 3], np.zeros(1), 0)
        with pytest.raises(TypeError, match="buffer-protocol"):
            c.allgatherv([1, 2], np.zeros(2), [1, 1])
        recv = np.zeros(3)
        c.allgatherv(np.ones(1 + c.peer_id), recv, [1, 2])  # still in step
        assert (recv == 1).all()
    run_peers(2, body, kind)


def test_v_counts_differ_between_peers_is_a_peer_error(kind):
    def body(c):
        counts = [1, 2] if c.peer_id == 1 else [1, 3]
        recv = np.zeros(sum(counts)) if c.peer_id == 0 else None
        c.gatherv(np.zeros(counts[c.peer_id]), recv, counts, 0)
    _, errors, _ = run_peers_raw(2, body, kind, max_timeout=3.0)
    assert isinstance(errors[0], fmi.PeerError), errors
    assert "16" in str(errors[0]) and "24" in str(errors[0])


# ---- NumPy is optional --------------------------------------------------------------------

def test_without_numpy():
    """A peer program in which `import numpy` fails: typed calls, objects and the
    v-collectives on bytes work (the module never imports NumPy for them)."""
    r = subprocess.run([sys.executable, os.path.join(HERE, "no_numpy_peer.py")],
                       capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stdout + r.stderr
