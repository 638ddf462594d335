"""Peers run by test_objects.py::test_without_numpy in a Python where `import numpy`
fails (sys.modules['numpy'] = None before anything imports it): typed calls, object
calls and the v-collectives on bytes/bytearray must work. Prints "ok" on success."""

import sys
import threading

sys.modules["numpy"] = None  # any import of NumPy now raises ImportError

import fmi  # noqa: E402

INT = fmi.types(fmi.datatypes.int)
INTS = fmi.types(fmi.datatypes.int_list, 2)
SUM = fmi.func(fmi.op.sum)


def body(c, kind):
    n, i = c.num_peers, c.peer_id
    other = (i + 1) % n
    if i == 0:
        c.send(7, 1, INT)
        c.send([1, 2], 1, INTS)
        c.send({"nested": [1, [2, None]]}, 1)
    elif i == 1:
        assert c.recv(0, INT) == 7
        assert c.recv(0, INTS) == [1, 2]
        assert c.recv(0) == {"nested": [1, [2, None]]}
    assert c.allreduce(i, SUM, INT) == sum(range(n))
    assert c.allgather([i, -i], INTS) == [x for p in range(n) for x in (p, -p)]
    assert c.bcast({"root": 2} if i == 2 else None, 2) == {"root": 2}
    got = c.gather(("p", i), 1)
    assert got == ([("p", p) for p in range(n)] if i == 1 else None)
    assert c.scatter([str(p) for p in range(n)] if i == 0 else None, 0) == str(i)
    assert c.allgather(i) == list(range(n))
    assert c.alltoall([(i, p) for p in range(n)]) == [(p, i) for p in range(n)]
    assert c.allreduce([i], SUM) == list(range(n))
    assert c.scan(i, fmi.func(fmi.op.max)) == i
    buf = bytearray(sum(range(n)))
    c.allgatherv(bytes([i]) * i, buf, list(range(n)))
    assert bytes(buf) == b"".join(bytes([p]) * p for p in range(n))
    # Plain buffers through send/recv, without NumPy.
    if i == 0:
        c.send(b"raw bytes", 1)
    elif i == 1:
        got = bytearray(9)
        assert c.recv(0, out=got) is got and got == b"raw bytes"
    # Any-source receives and probes (issue 19), without NumPy: peers 1 and 2 send
    # to peer 0, which learns sizes and sources from probe/recv. One kind of message
    # at a time (barriers): an any-source receive takes any peer's next message.
    if i in (1, 2):
        c.send(b"x" * (5 * i), 0)
    elif i == 0:
        sources = set()
        for _ in range(2):
            st = c.probe(fmi.any_source)
            assert st.bytes == 5 * st.source, st
            buf = bytearray(st.bytes)
            assert c.recv(buf, st.source) == st.source and buf == b"x" * st.bytes
            sources.add(st.source)
        assert sources == {1, 2}
    c.barrier()
    if i in (1, 2):
        c.send({"from": i}, 0)
    elif i == 0:
        objs = sorted([c.recv(fmi.any_source)["from"], c.recv(fmi.any_source, status=True)[1].source])
        assert objs == [1, 2], objs
    c.barrier()
    if i in (1, 2):
        c.send(10 * i, 0, INT)
    elif i == 0:
        ints = sorted(c.recv(fmi.any_source, INT) for _ in range(2))
        assert ints == [10, 20], ints
        assert c.iprobe(fmi.any_source) is None
    # The fixed-size collectives view buffers as arrays: a clear ImportError.
    try:
        c.allgather(b"x")
        raise AssertionError("allgather of bytes worked without NumPy?")
    except ImportError as e:
        assert "NumPy is not installed" in str(e), e
    c.barrier()
    assert "numpy" not in sys.modules or sys.modules["numpy"] is None
    del other, kind


def main():
    n = 3
    for kind in ("p2p", "store"):
        hub = fmi.InProcessHub(n, 10.0)
        errors = []

        def peer(i):
            try:
                with fmi.Communicator(i, n, None, "nonumpy") as c:
                    c.register_channel("inproc", hub.p2p_endpoint() if kind == "p2p" else hub.store_endpoint())
                    body(c, kind)
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(f"{kind} peer {i}: {type(e).__name__}: {e}")

        ts = [threading.Thread(target=peer, args=(i,)) for i in range(n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if errors:
            print("\n".join(errors))
            sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
