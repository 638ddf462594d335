"""NumPy arrays and other buffer-protocol objects: every dtype, several shapes, the
built-in reductions in C++, custom reductions on arrays, and no copies where promised."""

import numpy as np
import pytest

import fmi
from conftest import run_peers

SUM = fmi.func(fmi.op.sum)

DTYPES = [np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64,
          np.uint64, np.float16, np.float32, np.float64, np.longdouble, np.complex64,
          np.complex128, np.clongdouble]
SHAPES = [(7,), (3, 4), (2, 3, 5)]
ORDERED = [d for d in DTYPES if np.dtype(d).kind != "c"]


def data(i, shape, dtype, k=0):
    """Small values (exact in every dtype) that depend on the peer."""
    v = (np.arange(int(np.prod(shape))).reshape(shape) + 3 * i + k) % 5 + 1
    if np.dtype(dtype).kind == "b":
        return ((v + i) % 3 == 0).astype(dtype)
    if np.dtype(dtype).kind == "c":
        return (v + 1j * (v % 3)).astype(dtype)
    return v.astype(dtype)


def expected(op, n, shape, dtype):
    stack = np.stack([data(p, shape, dtype) for p in range(n)])
    return {"sum": np.add, "prod": np.multiply, "max": np.maximum, "min": np.minimum}[op].reduce(
        stack, axis=0, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_allreduce_sum_every_dtype(npeers, dtype, shape):
    def body(comm):
        a = data(comm.peer_id, shape, dtype)
        before = a.copy()
        out = np.empty_like(a)
        addr = out.ctypes.data
        res = comm.allreduce(a, SUM, out=out)
        assert res is out and out.ctypes.data == addr and np.shares_memory(res, out)
        np.testing.assert_array_equal(out, expected("sum", comm.num_peers, shape, dtype))
        np.testing.assert_array_equal(a, before)  # the send buffer is never written
        # Without out: a new array of the same dtype and shape.
        res = comm.allreduce(a, SUM)
        assert res.dtype == np.dtype(dtype) and res.shape == shape
        np.testing.assert_array_equal(res, out)
    run_peers(npeers, body)


@pytest.mark.parametrize("op", ["prod", "max", "min"])
@pytest.mark.parametrize("dtype", ORDERED, ids=lambda d: np.dtype(d).name)
def test_builtin_ops(op, dtype, kind):
    n, shape = 3, (4, 5)

    def body(comm):
        res = comm.allreduce(data(comm.peer_id, shape, dtype), fmi.func(getattr(fmi.op, op)))
        np.testing.assert_array_equal(res, expected(op, n, shape, dtype))
    run_peers(n, body, kind)


def test_complex_has_no_order():
    def body(comm):
        with pytest.raises(fmi.UsageError, match="complex"):
            comm.allreduce(np.ones(3, np.complex64), fmi.func(fmi.op.max))
    run_peers(2, body)


def test_large_allreduce_ring(kind):
    # Above the large-message threshold: chunked (ring) algorithms, kernels per chunk.
    n = 3

    def body(comm):
        a = np.full(300_001, comm.peer_id + 1, dtype=np.float64)
        out = np.empty_like(a)
        comm.allreduce(a, SUM, out=out)
        assert (out == n * (n + 1) / 2).all()
    run_peers(n, body, kind)


def test_in_place_allreduce_scan(npeers):
    def body(comm):
        a = np.arange(10, dtype=np.int64) + comm.peer_id
        addr = a.ctypes.data
        assert comm.allreduce(a, SUM, out=a) is a
        assert a.ctypes.data == addr
        n = comm.num_peers
        np.testing.assert_array_equal(a, n * np.arange(10) + n * (n - 1) // 2)
        b = np.full(4, comm.peer_id + 1, dtype=np.int32)
        comm.scan(b, SUM, out=b)
        assert (b == (comm.peer_id + 1) * (comm.peer_id + 2) // 2).all()
    run_peers(npeers, body)


def test_send_recv_into_buffers():
    def body(comm):
        if comm.peer_id == 0:
            comm.send(np.arange(6, dtype=np.float64).reshape(2, 3), 1)
            comm.send(b"hello", 1)
            comm.send(bytearray(b"world"), 1)
            comm.send(memoryview(np.arange(4, dtype=np.int32)), 1)
            comm.send(np.arange(20, dtype=np.int16)[::2], 1)  # not contiguous: copied once
            return None
        out = np.zeros((2, 3))
        addr = out.ctypes.data
        assert comm.recv(0, out=out) is out
        assert out.ctypes.data == addr
        np.testing.assert_array_equal(out, np.arange(6).reshape(2, 3))
        ba = bytearray(5)
        assert comm.recv(0, out=ba) is ba and ba == b"hello"
        big = np.zeros(10, dtype=np.uint8)
        mv = memoryview(big)[2:7]  # a window of a larger array: filled in place
        comm.recv(0, out=mv)
        assert bytes(big[2:7]) == b"world" and big[:2].sum() == 0 and big[7:].sum() == 0
        ints = np.zeros(4, dtype=np.int32)
        comm.recv(0, out=ints)
        np.testing.assert_array_equal(ints, np.arange(4))
        strided = np.zeros(10, dtype=np.int16)
        comm.recv(0, out=strided)
        np.testing.assert_array_equal(strided, np.arange(0, 20, 2))
    run_peers(2, body)


def test_bcast_in_place(npeers, kind):
    def body(comm):
        n, i = comm.num_peers, comm.peer_id
        for root in sorted({0, n - 1}):
            a = np.full((5, 2), i, dtype=np.int32)
            addr = a.ctypes.data
            assert comm.bcast(a, root) is a
            assert a.ctypes.data == addr and (a == root).all()
            # The root may broadcast read-only bytes; the others receive into out=.
            out = bytearray(3)
            got = comm.bcast(b"abc" if i == root else None, root, out=None if i == root else out)
            assert bytes(got) == b"abc"
            if i != root:
                assert got is out
    run_peers(npeers, body, kind)


def test_gather_scatter_allgather_alltoall_reduce_scatter(npeers, kind):
    def body(comm):
        n, i = comm.num_peers, comm.peer_id
        mine = np.arange(6, dtype=np.float32).reshape(2, 3) + 10 * i
        every = np.stack([np.arange(6, dtype=np.float32).reshape(2, 3) + 10 * p for p in range(n)])
        for root in sorted({0, n // 2, n - 1}):
            g = comm.gather(mine, root)
            if i == root:
                assert g.shape == (n, 2, 3)
                np.testing.assert_array_equal(g, every)
                out = np.empty((n, 2, 3), np.float32)
                assert comm.gather(mine, root, out=out) is out
                np.testing.assert_array_equal(out, every)
            else:
                assert g is None
                assert comm.gather(mine, root) is None
            s_out = np.empty((2, 3), np.float32)
            got = comm.scatter(every if i == root else None, root, out=s_out)
            assert got is s_out
            np.testing.assert_array_equal(s_out, mine)
        ag = np.empty((n, 2, 3), np.float32)
        assert comm.allgather(mine, out=ag) is ag
        np.testing.assert_array_equal(ag, every)
        np.testing.assert_array_equal(comm.allgather(mine), every)
        # alltoall: row j of my array goes to peer j.
        send = np.array([[100 * i + j] * 3 for j in range(n)], dtype=np.int64)
        res = comm.alltoall(send)
        np.testing.assert_array_equal(res, np.array([[100 * p + i] * 3 for p in range(n)]))
        # reduce_scatter: peer i gets the sum of every peer's row i.
        rs = comm.reduce_scatter(send, SUM)
        assert rs.shape == (3,)
        np.testing.assert_array_equal(rs, [sum(100 * p + i for p in range(n))] * 3)
        red = comm.reduce(mine, 0, SUM)
        if i == 0:
            np.testing.assert_array_equal(red, every.sum(axis=0))
        else:
            assert red is None
    run_peers(npeers, body, kind)


def test_custom_callable_on_arrays(npeers, kind):
    # Neither commutative nor associative: left to right, whole arrays of the
    # operands' shape.
    shapes = []

    def f(a, b):
        shapes.append(a.shape)
        assert not a.flags.writeable
        return 2 * a + b

    def body(comm):
        n, i = comm.num_peers, comm.peer_id
        a = np.full((3, 4), i + 1, dtype=np.int64)
        res = comm.allreduce(a, fmi.func(fmi.op.custom, f, False, False))
        acc = 1
        for p in range(1, n):
            acc = 2 * acc + p + 1
        assert (res == acc).all() and res.shape == (3, 4)
        pre = comm.scan(a, fmi.func(fmi.op.custom, f, False, False))
        acc = 1
        for p in range(1, i + 1):
            acc = 2 * acc + p + 1
        assert (pre == acc).all()
    run_peers(npeers, body, kind)
    assert all(s == (3, 4) for s in shapes)


def test_associative_matrix_product(npeers):
    # Matrix product: associative, not commutative; operands must stay in peer order.
    def mats(p):
        return np.array([[1, p + 1], [0, 1]], dtype=np.float64) @ np.array([[1, 0], [p % 2, 1]], dtype=np.float64)

    def body(comm):
        res = comm.allreduce(mats(comm.peer_id), fmi.func(fmi.op.custom, lambda a, b: a @ b, False, True))
        exp = np.eye(2)
        for p in range(comm.num_peers):
            exp = exp @ mats(p)
        np.testing.assert_array_equal(res, exp)
    run_peers(npeers, body)


def test_callable_exception_reaches_caller():
    def boom(a, b):
        raise KeyError("from the reduction")

    def body(comm):
        try:
            comm.allreduce(np.ones(4), fmi.func(fmi.op.custom, boom, True, True))
        except KeyError as e:
            return "KeyError" if "from the reduction" in str(e) else str(e)
        except fmi.Error as e:  # a peer that only waited for the one that raised
            return type(e).__name__
        return "no error"

    from conftest import run_peers_raw
    results, errors, _ = run_peers_raw(2, body, max_timeout=2.0)
    assert errors == [None, None]
    assert "KeyError" in results and set(results) <= {"KeyError", "TimeoutError", "PeerError"}


def test_non_contiguous_out_is_refused():
    def body(comm):
        with pytest.raises(fmi.UsageError, match="C-contiguous"):
            comm.allreduce(np.ones(5), SUM, out=np.ones(10)[::2])
        with pytest.raises(fmi.UsageError, match="read-only"):
            ro = np.ones(5)
            ro.setflags(write=False)
            comm.allreduce(np.ones(5), SUM, out=ro)
        with pytest.raises(fmi.UsageError, match="dtype"):
            comm.allreduce(np.ones(5), SUM, out=np.ones(5, np.float32))
    run_peers(1, body)


@pytest.mark.parametrize("dtype", [
    np.dtype([("id", np.int32), ("pos", np.float64, (3,))]),  # structured
    np.dtype("V7"), np.dtype("S5"), np.dtype("U3"),
    np.dtype("datetime64[ns]"), np.dtype("timedelta64[s]"), np.dtype(">i8"),
], ids=str)
def test_send_recv_any_dtype(dtype):
    src = np.zeros(4, dtype=dtype)
    src.view(np.uint8)[:] = np.arange(src.nbytes, dtype=np.uint8)

    def body(comm):
        if comm.peer_id == 0:
            comm.send(src, 1)
            comm.bcast(src, 0)
        else:
            out = np.empty(4, dtype=dtype)
            comm.recv(0, out=out)
            assert out.tobytes() == src.tobytes()
            out2 = np.empty(4, dtype=dtype)
            comm.bcast(None, 0, out=out2)
            assert out2.tobytes() == src.tobytes()
    run_peers(2, body)


def test_reductions_refuse_structured_and_foreign_byte_order():
    def body(comm):
        with pytest.raises(fmi.UsageError, match="needs a boolean, integer"):
            comm.allreduce(np.zeros(2, dtype="S4"), SUM)
        with pytest.raises(fmi.UsageError, match="native byte order"):
            comm.allreduce(np.zeros(2, dtype=">f8" if np.little_endian else "<f8"), SUM)
    run_peers(1, body)
