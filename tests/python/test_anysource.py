"""Any-source receive and probe (issue 19) in Python: comm.recv(buf, fmi.any_source)
returning the source, obj = comm.recv(fmi.any_source) (status=True for the
fmi.Status), typed forms with any_source, probe/iprobe, sub-communicators. Peers are
threads over an fmi.InProcessHub, both channel kinds, 3 and 5 peers."""

import numpy as np
import pytest

import fmi
from conftest import run_peers

INT = fmi.types(fmi.datatypes.int)


@pytest.fixture(params=[3, 5])
def n(request):
    return request.param


def test_constants_and_status():
    assert fmi.any_source == 2**32 - 1
    s = fmi.Status(2, 17)
    assert (s.source, s.bytes) == (2, 17)
    assert s == fmi.Status(2, 17) and s != fmi.Status(1, 17)
    assert repr(s) == "fmi.Status(source=2, bytes=17)"


def test_racing_senders_buffers(kind, n):
    """Every peer but 1 sends 10 arrays to peer 1, which receives them with
    recv(buf, any_source): each exactly once, per source in order."""
    per = 10

    def body(c):
        i = c.peer_id
        if i != 1:
            for k in range(per):
                c.send(np.array([i, k], dtype=np.int64), 1)
        else:
            nxt = {p: 0 for p in range(n) if p != 1}
            for _ in range((n - 1) * per):
                buf = np.zeros(2, dtype=np.int64)
                src = c.recv(buf, fmi.any_source)
                assert isinstance(src, int)
                assert list(buf) == [src, nxt[src]], (src, buf)
                nxt[src] += 1
            assert all(v == per for v in nxt.values()), nxt
            assert c.iprobe(fmi.any_source) is None
        c.barrier()

    run_peers(n, body, kind)


def test_objects_and_typed_from_any_source(kind, n):
    def body(c):
        i = c.peer_id
        last = n - 1
        if i != last:
            c.send({"peer": i, "arr": np.arange(i + 1, dtype=np.float32), "l": list(range(i))}, last)
            # The ints wait until every object is in: an any-source receive takes the
            # next message of any peer, and a peer's int would come after its object.
            c.barrier()
            c.send(100 + i, last, INT)
        else:
            seen = set()
            for k in range(n - 1):
                if k % 2:
                    obj = c.recv(fmi.any_source)
                    src = obj["peer"]
                else:
                    obj, st = c.recv(fmi.any_source, status=True)
                    src = obj["peer"]
                    assert isinstance(st, fmi.Status) and st.source == src and st.bytes > 0
                assert src not in seen
                assert np.array_equal(obj["arr"], np.arange(src + 1, dtype=np.float32))
                assert obj["l"] == list(range(src))
                seen.add(src)
            c.barrier()
            vals = []
            for _ in range(n - 1):
                v, st = c.recv(fmi.any_source, INT, status=True)
                assert v == 100 + st.source and st.bytes == 4
                vals.append(v)
            assert sorted(vals) == [100 + p for p in range(n - 1)]
        c.barrier()

    run_peers(n, body, kind)


def test_probe_unknown_size_and_iprobe(kind, n):
    """Peer 0 learns sizes (0 bytes, small, 3 MiB) from probe; iprobe before the
    senders are let go sees nothing."""
    def size(p):
        return [0, 3 << 20, 12][p % 3]

    def body(c):
        i = c.peer_id
        if i == 0:
            assert c.iprobe(fmi.any_source) is None
            assert c.iprobe(1) is None
            for p in range(1, n):
                c.send(1, p, INT)  # go
            got = set()
            while len(got) < n - 1:
                st = c.probe(fmi.any_source)
                assert st.bytes == size(st.source), st
                again = c.iprobe(st.source)
                assert again == st
                buf = bytearray(st.bytes)
                out, st2 = c.recv(st.source, out=buf, status=True)
                assert out is buf and st2 == st
                assert buf == bytes([st.source % 256]) * st.bytes
                got.add(st.source)
        else:
            assert c.recv(0, INT) == 1
            c.send(bytes([i % 256]) * size(i), 0)
        c.barrier()

    run_peers(n, body, kind)


def test_sub_communicator_any_source(kind, n):
    def body(c):
        i = c.peer_id
        child = c.split(i % 2, -i)
        if child.peer_id != 0:
            child.send(child.peer_id, 0)
        else:
            srcs = []
            for _ in range(child.num_peers - 1):
                v, st = child.recv(fmi.any_source, status=True)
                assert v == st.source
                srcs.append(st.source)
            assert sorted(srcs) == list(range(1, child.num_peers))
        c.barrier()

    run_peers(n, body, kind)


def test_bad_arguments(kind):
    def body(c):
        with pytest.raises(fmi.UsageError, match="any_source"):
            c.send(1, fmi.any_source, INT)
        with pytest.raises(fmi.UsageError, match="second argument"):
            c.recv(bytearray(4))
        with pytest.raises(fmi.UsageError, match="out="):
            c.recv(bytearray(4), 1, out=bytearray(4))
        c.barrier()

    run_peers(3, body, kind)
