"""Checks of every documented call, written once against a Communicator.

Each check_* function is collective: every peer of the communicator calls it with its
own communicator and it asserts this peer's results. The pytest files run them with
peers as threads over an fmi.InProcessHub (test_api.py) and as processes started by
fmirun over the Direct channel (peer_program.py, test_launcher.py).
"""

import numpy as np

import fmi

INT = fmi.types(fmi.datatypes.int)
DOUBLE = fmi.types(fmi.datatypes.double)
SUM = fmi.func(fmi.op.sum)
PROD = fmi.func(fmi.op.prod)
MAX = fmi.func(fmi.op.max)
MIN = fmi.func(fmi.op.min)


def int_list(count=None):
    return fmi.types(fmi.datatypes.int_list, count)


def double_list(count=None):
    return fmi.types(fmi.datatypes.double_list, count)


def roots(n):
    """Roots {0, middle, last} without duplicates."""
    return sorted({0, n // 2, n - 1})


def value(i, k=0):
    """A value that depends on the peer and a position: a value from the wrong peer or
    place is caught."""
    return 3 * i + 7 * k + 1


def fold(f, xs):
    """Left to right: ((x0 f x1) f x2) ..."""
    acc = xs[0]
    for x in xs[1:]:
        acc = f(acc, x)
    return acc


def check_send_recv(comm):
    n, i = comm.num_peers, comm.peer_id
    if n == 1:
        return
    right, left = (i + 1) % n, (i - 1) % n
    # Even peers send first: no pair has both sides waiting in a receive.
    cases = [
        (INT, value(i), value(left)),
        (DOUBLE, value(i) + 0.5, value(left) + 0.5),
        (int_list(3), [value(i, k) for k in range(3)], [value(left, k) for k in range(3)]),
        (double_list(4), [value(i, k) / 4 for k in range(4)], [value(left, k) / 4 for k in range(4)]),
    ]
    for t, mine, expected in cases:
        if i % 2 == 0:
            comm.send(mine, right, t)
            got = comm.recv(left, t)
        else:
            got = comm.recv(left, t)
            comm.send(mine, right, t)
        assert got == expected, (t, got, expected)
        assert type(got) is type(expected)


def check_bcast(comm):
    n, i = comm.num_peers, comm.peer_id
    for root in roots(n):
        assert comm.bcast(value(root) if i == root else None, root, INT) == value(root)
        assert comm.bcast(value(root) / 8 if i == root else None, root, DOUBLE) == value(root) / 8
        lst = [value(root, k) for k in range(5)]
        assert comm.bcast(lst if i == root else None, root, int_list(5)) == lst
        dl = [x / 2 for x in lst]
        assert comm.bcast(dl if i == root else None, root, double_list(5)) == dl


def check_barrier(comm):
    for _ in range(3):
        comm.barrier()


def check_gather(comm):
    n, i = comm.num_peers, comm.peer_id
    for root in roots(n):
        got = comm.gather(value(i), root, INT)
        assert got == ([value(p) for p in range(n)] if i == root else None)
        got = comm.gather(value(i) / 2, root, DOUBLE)
        assert got == ([value(p) / 2 for p in range(n)] if i == root else None)
        # A list type describes one peer's contribution; the root gets them in peer order.
        got = comm.gather([value(i, 0), value(i, 1)], root, int_list(2))
        assert got == ([value(p, k) for p in range(n) for k in range(2)] if i == root else None)
        got = comm.gather([value(i, 0) / 4], root, double_list(1))
        assert got == ([value(p, 0) / 4 for p in range(n)] if i == root else None)


def check_scatter(comm):
    n, i = comm.num_peers, comm.peer_id
    for root in roots(n):
        # A list type describes the root's whole list.
        whole = [value(p, k) for p in range(n) for k in range(3)]
        got = comm.scatter(whole if i == root else None, root, int_list(3 * n))
        assert got == [value(i, k) for k in range(3)]
        dwhole = [x / 2 for x in whole]
        got = comm.scatter(dwhole if i == root else None, root, double_list(3 * n))
        assert got == [value(i, k) / 2 for k in range(3)]
        # A scalar type: the root passes one value per peer.
        got = comm.scatter([value(p) for p in range(n)] if i == root else None, root, INT)
        assert got == value(i)


def check_reduce(comm):
    n, i = comm.num_peers, comm.peer_id
    for root in roots(n):
        for f, py in ((SUM, sum), (MAX, max), (MIN, min)):
            got = comm.reduce(value(i), root, f, INT)
            assert got == (py(value(p) for p in range(n)) if i == root else None), (f, got)
        got = comm.reduce(i + 1, root, PROD, INT)
        assert got == (int(np.prod(range(1, n + 1))) if i == root else None)
        got = comm.reduce(value(i) / 2, root, SUM, DOUBLE)
        assert got == (sum(value(p) / 2 for p in range(n)) if i == root else None)
        got = comm.reduce([value(i, 0), -value(i, 1)], root, MAX, int_list(2))
        assert got == ([value(n - 1, 0), -value(0, 1)] if i == root else None)
        got = comm.reduce([float(i), 2.0], root, PROD, double_list(2))
        assert got == ([0.0, 2.0 ** n] if i == root else None)


def check_allreduce(comm):
    n, i = comm.num_peers, comm.peer_id
    assert comm.allreduce(value(i), SUM, INT) == sum(value(p) for p in range(n))
    assert comm.allreduce(value(i), MIN, INT) == value(0)
    assert comm.allreduce(value(i), MAX, INT) == value(n - 1)
    assert comm.allreduce(2, PROD, INT) == 2 ** n
    assert comm.allreduce(value(i) / 4, SUM, DOUBLE) == sum(value(p) / 4 for p in range(n))
    got = comm.allreduce([value(i, k) for k in range(4)], SUM, int_list(4))
    assert got == [sum(value(p, k) for p in range(n)) for k in range(4)]
    got = comm.allreduce([value(i, k) / 2 for k in range(3)], MAX, double_list(3))
    assert got == [value(n - 1, k) / 2 for k in range(3)]
    # A list type without count: every peer passes its list, the length is inferred.
    assert comm.allreduce([1, 2], SUM, int_list()) == [n, 2 * n]


def check_scan(comm):
    n, i = comm.num_peers, comm.peer_id
    assert comm.scan(value(i), SUM, INT) == sum(value(p) for p in range(i + 1))
    assert comm.scan(value(i) / 2, MAX, DOUBLE) == value(i) / 2
    got = comm.scan([value(i, 0), 1], SUM, int_list(2))
    assert got == [sum(value(p, 0) for p in range(i + 1)), i + 1]
    got = comm.scan([2.0], PROD, double_list(1))
    assert got == [2.0 ** (i + 1)]


def check_allgather(comm):
    n, i = comm.num_peers, comm.peer_id
    assert comm.allgather(value(i), INT) == [value(p) for p in range(n)]
    got = comm.allgather([value(i, 0) / 2, value(i, 1) / 2], double_list(2))
    assert got == [value(p, k) / 2 for p in range(n) for k in range(2)]


def check_alltoall(comm):
    n, i = comm.num_peers, comm.peer_id
    # Block j of peer i's list goes to peer j: peer i receives value(p, i) from each p.
    send = [value(i, j) for j in range(n)]
    assert comm.alltoall(send, INT) == [value(p, i) for p in range(n)]
    send = [value(i, 2 * j + k) / 2 for j in range(n) for k in range(2)]
    got = comm.alltoall(send, double_list(2 * n))
    assert got == [value(p, 2 * i + k) / 2 for p in range(n) for k in range(2)]


def check_reduce_scatter(comm):
    n, i = comm.num_peers, comm.peer_id
    send = [value(i, j) for j in range(2 * n)]
    got = comm.reduce_scatter(send, SUM, int_list(2 * n))
    assert got == [sum(value(p, 2 * i + k) for p in range(n)) for k in range(2)]
    got = comm.reduce_scatter([float(value(i, j)) for j in range(n)], MAX, DOUBLE)
    assert got == float(value(n - 1, i))


def check_hint(comm):
    n, i = comm.num_peers, comm.peer_id
    for h in (fmi.hints.fast, fmi.hints.cheap):
        comm.hint(h)
        assert comm.get_hint() == h
        assert comm.allreduce(i, SUM, INT) == n * (n - 1) // 2


def check_custom_order(comm):
    """f(a, b) = 2a + b is neither commutative nor associative: only the left to right
    fold over peer ids gives the expected values."""
    n, i = comm.num_peers, comm.peer_id
    f2 = lambda a, b: 2 * a + b  # noqa: E731
    ordered = fmi.func(fmi.op.custom, f2, False, False)
    xs = [value(p) for p in range(n)]
    assert comm.allreduce(value(i), ordered, INT) == fold(f2, xs)
    for root in roots(n):
        got = comm.reduce(value(i), root, ordered, INT)
        assert got == (fold(f2, xs) if i == root else None)
    assert comm.scan(value(i), ordered, INT) == fold(f2, xs[: i + 1])
    # Lists: the callable gets whole lists.
    flist = lambda a, b: [2 * x + y for x, y in zip(a, b)]  # noqa: E731
    got = comm.allreduce([value(i, 0), value(i, 1)], fmi.func(fmi.op.custom, flist, False, False), int_list(2))
    assert got == [fold(f2, [value(p, k) for p in range(n)]) for k in range(2)]
    fd = lambda a, b: 2.0 * a + b  # noqa: E731
    got = comm.allreduce(value(i) / 2, fmi.func(fmi.op.custom, fd, False, False), DOUBLE)
    assert got == fold(fd, [value(p) / 2 for p in range(n)])


def check_numpy_basics(comm):
    """Arrays through the launcher as well: allreduce into out, bcast in place, send/recv."""
    n, i = comm.num_peers, comm.peer_id
    a = np.arange(12, dtype=np.float32).reshape(3, 4) + i
    out = np.empty_like(a)
    addr = out.ctypes.data
    assert comm.allreduce(a, SUM, out=out) is out
    assert out.ctypes.data == addr
    np.testing.assert_array_equal(out, sum(np.arange(12, dtype=np.float32).reshape(3, 4) + p for p in range(n)))
    b = np.full(1000, i, dtype=np.int64)
    comm.bcast(b, n - 1)
    assert (b == n - 1).all()
    if n > 1:
        buf = np.zeros(5, dtype=np.uint16)
        if i == 0:
            comm.send(np.arange(5, dtype=np.uint16) + 100, 1)
        elif i == 1:
            assert comm.recv(0, out=buf) is buf
            np.testing.assert_array_equal(buf, np.arange(5) + 100)


def check_objects(comm):
    """Picklable objects in every call without a type (dicts with arrays inside, None,
    nested lists), non-zero roots."""
    n, i = comm.num_peers, comm.peer_id

    def obj(p, k=0):
        return {"p": p, "k": k, "a": np.arange(p + k, dtype=np.int32), "l": [p, [k, None]], "n": None}

    def same(a, b):
        return a.keys() == b.keys() and np.array_equal(a["a"], b["a"]) and all(
            a[x] == b[x] for x in ("p", "k", "l", "n"))

    if n > 1:
        right, left = (i + 1) % n, (i - 1) % n
        comm.send(obj(i), right)
        assert same(comm.recv(left), obj(left))
        comm.send(None, right)
        assert comm.recv(left) is None
    for r in sorted({0, n // 2, n - 1}):
        assert same(comm.bcast(obj(r, 1) if i == r else None, r), obj(r, 1))
        got = comm.gather(obj(i, r), r)
        assert (got is None) if i != r else all(same(got[p], obj(p, r)) for p in range(n))
        assert same(comm.scatter([obj(r, p) for p in range(n)] if i == r else None, r), obj(r, i))
        assert comm.reduce([i], r, SUM) == (list(range(n)) if i == r else None)
    got = comm.allgather(obj(i))
    assert all(same(got[p], obj(p)) for p in range(n))
    got = comm.alltoall([obj(i, p) for p in range(n)])
    assert all(same(got[p], obj(p, i)) for p in range(n))
    cat = fmi.func(fmi.op.custom, lambda a, b: a + b, False, True)
    assert comm.allreduce([[i]], cat) == [[p] for p in range(n)]
    assert comm.scan(str(i), cat) == "".join(map(str, range(i + 1)))


def check_vector(comm):
    """gatherv / scatterv / allgatherv / alltoallv with uneven, zero and skewed counts."""
    n, i = comm.num_peers, comm.peer_id
    for counts in ([(p * 3) % 4 for p in range(n)], [0] * n, [0] * (n - 1) + [777]):
        offs = np.concatenate([[0], np.cumsum(counts)]).astype(int)
        for r in sorted({0, n - 1}):
            recv = np.zeros(sum(counts), dtype=np.float64) if i == r else None
            comm.gatherv(np.full(counts[i], i + 0.5), recv, counts, r)
            if i == r:
                for p in range(n):
                    assert (recv[offs[p]:offs[p + 1]] == p + 0.5).all()
            send = np.concatenate([np.full(c, p, dtype=np.int64) for p, c in enumerate(counts)]) if i == r else None
            out = np.full(counts[i], -1, dtype=np.int64)
            comm.scatterv(send, counts, out, r)
            assert (out == i).all()
        everything = np.zeros(sum(counts), dtype=np.uint8)
        comm.allgatherv(np.full(counts[i], i, dtype=np.uint8), everything, counts)
        for p in range(n):
            assert (everything[offs[p]:offs[p + 1]] == p).all()
    sc = [(i + 2 * q) % 3 for q in range(n)]
    rc = [(p + 2 * i) % 3 for p in range(n)]
    send = np.concatenate([np.full(sc[q], 10 * i + q, dtype=np.int32) for q in range(n)])
    recv = np.zeros(sum(rc), dtype=np.int32)
    comm.alltoallv(send, sc, recv, rc)
    np.testing.assert_array_equal(
        recv, np.concatenate([np.full(rc[p], 10 * p + i, dtype=np.int32) for p in range(n)]))


def check_split(comm):
    """split (groups of peer_id % 2, keys reversed, the last of 3 or more peers in
    none), dup, and a split of the dup; the other checks run inside the children, and
    parent and child send on one pair with equal tags, received in reverse order."""
    n, i = comm.num_peers, comm.peer_id
    none = n >= 3 and i == n - 1
    child = comm.split(-1 if none else i % 2, -i)
    if none:
        assert child is None
    else:
        members = [p for p in reversed(range(n)) if p % 2 == i % 2 and not (n >= 3 and p == n - 1)]
        assert (child.num_peers, child.peer_id) == (len(members), members.index(i))
        assert child.allgather(i) == members
        cn, cr = child.num_peers, child.peer_id
        if cn > 1:
            comm.send(("parent", i), members[(cr + 1) % cn])
            child.send(("child", i), (cr + 1) % cn)
            assert child.recv((cr + cn - 1) % cn) == ("child", members[(cr + cn - 1) % cn])
            assert comm.recv(members[(cr + cn - 1) % cn]) == ("parent", members[(cr + cn - 1) % cn])
        for check in (check_send_recv, check_bcast, check_reduce, check_allreduce, check_scan,
                      check_alltoall, check_objects, check_vector):
            check(child)
        d = child.dup()
        half = d.split(d.peer_id % 2, 0)
        check_allgather(half)
        check_reduce_scatter(d)
        half.finalize()
        d.finalize()
        child.finalize()
    check_allgather(comm)


DOCUMENTED = [
    check_send_recv,
    check_bcast,
    check_barrier,
    check_gather,
    check_scatter,
    check_reduce,
    check_allreduce,
    check_scan,
    check_allgather,
    check_alltoall,
    check_reduce_scatter,
    check_hint,
    check_custom_order,
    check_objects,
    check_vector,
    check_split,
]


def run_all(comm):
    for check in DOCUMENTED + [check_numpy_basics]:
        check(comm)
