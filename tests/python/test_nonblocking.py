"""Non-blocking operations (docs/nonblocking.md): every i-form on arrays, several in
flight, completed by wait / test / wait_for / wait_all / wait_any, errors raised by
wait, the arrays kept alive by the request, progress while the caller sleeps, and a
custom Python reduction on the worker thread while the caller waits (GIL)."""

import gc
import time

import numpy as np
import pytest

import fmi
from conftest import run_peers, run_peers_raw

SUM = fmi.func(fmi.op.sum)
PEERS = [3, 5]


def vals(op, p, n):
    return np.arange(n, dtype=np.int64) + 1000 * op + 17 * p


@pytest.mark.parametrize("n", PEERS)
def test_every_operation(n, kind):
    root = n - 2  # neither 0 nor the last

    def body(comm):
        me, k = comm.peer_id, 6
        nxt, prv = (me + 1) % n, (me - 1) % n
        reqs, out = [], {}
        out["recv"] = np.zeros(k, np.int64)
        reqs.append(comm.irecv(out["recv"], prv))
        reqs.append(comm.isend(vals(1, me, k), nxt))
        out["bcast"] = vals(2, me, k) if me == root else np.zeros(k, np.int64)
        reqs.append(comm.ibcast(out["bcast"], root))
        reqs.append(comm.ibarrier())
        g = comm.igather(vals(3, me, k), root)
        sc_src = vals(4, root, k * n) if me == root else None
        s = comm.iscatter(sc_src, root, out=np.zeros(k, np.int64))
        r = comm.ireduce(vals(5, me, k), root, SUM)
        ar_out = np.zeros(k, np.int64)
        ar = comm.iallreduce(vals(6, me, k), SUM, out=ar_out)
        sn = comm.iscan(vals(7, me, k), SUM)
        ag = comm.iallgather(vals(8, me, k))
        at = comm.ialltoall(vals(9, me, k * n))
        rs = comm.ireduce_scatter(vals(10, me, k * n), SUM)
        counts = [p + 1 for p in range(n)]
        gv_out = np.zeros(sum(counts), np.int64) if me == root else None
        gv = comm.igatherv(vals(11, me, counts[me]), gv_out, counts, root)
        agv = comm.iallgatherv(vals(12, me, counts[me]), np.zeros(sum(counts), np.int64), counts)
        sv = comm.iscatterv(vals(13, root, sum(counts)) if me == root else None, counts,
                            np.zeros(counts[me], np.int64), root)
        atv = comm.ialltoallv(vals(14, me, n), [1] * n, np.zeros(n, np.int64), [1] * n)
        # Completed in several ways: wait returns the output.
        assert ar.wait() is ar_out
        fmi.wait_all(reqs)
        assert all(not q.active for q in reqs)
        np.testing.assert_array_equal(out["recv"], vals(1, prv, k))
        np.testing.assert_array_equal(out["bcast"], vals(2, root, k))
        gathered = g.wait()
        if me == root:
            np.testing.assert_array_equal(gathered, np.stack([vals(3, p, k) for p in range(n)]))
        else:
            assert gathered is None
        np.testing.assert_array_equal(s.wait(), vals(4, root, k * n)[me * k:(me + 1) * k])
        red = r.wait()
        if me == root:
            np.testing.assert_array_equal(red, sum(vals(5, p, k) for p in range(n)))
        np.testing.assert_array_equal(ar_out, sum(vals(6, p, k) for p in range(n)))
        np.testing.assert_array_equal(sn.wait(), sum(vals(7, p, k) for p in range(me + 1)))
        np.testing.assert_array_equal(ag.wait(), np.stack([vals(8, p, k) for p in range(n)]))
        np.testing.assert_array_equal(
            at.wait(), np.concatenate([vals(9, p, k * n)[me * k:(me + 1) * k] for p in range(n)]))
        np.testing.assert_array_equal(
            rs.wait(), sum(vals(10, p, k * n)[me * k:(me + 1) * k] for p in range(n)))
        want_g = np.concatenate([vals(11, p, counts[p]) for p in range(n)])
        if me == root:
            np.testing.assert_array_equal(gv.wait(), want_g)
        else:
            assert gv.wait() is None
        np.testing.assert_array_equal(
            agv.wait(), np.concatenate([vals(12, p, counts[p]) for p in range(n)]))
        off = sum(counts[:me])
        np.testing.assert_array_equal(sv.wait(), vals(13, root, sum(counts))[off:off + counts[me]])
        np.testing.assert_array_equal(atv.wait(), np.array([vals(14, p, n)[me] for p in range(n)]))

    run_peers(n, body, kind)


@pytest.mark.parametrize("n", PEERS)
def test_many_in_flight_every_order(n):
    def body(comm):
        me = comm.peer_id
        for order in range(4):
            arrays = [vals(order * 10 + i, me, 1000) for i in range(5)]
            reqs = [comm.iallreduce(a, SUM) for a in arrays]  # temporaries: kept alive
            del arrays
            gc.collect()
            # A blocking call while they run.
            s = comm.allreduce(np.array([me], np.int64), SUM)
            assert s[0] == n * (n - 1) // 2
            if order == 0:
                results = [q.wait() for q in reversed(reqs)][::-1]
            elif order == 1:
                deadline = time.monotonic() + 20
                while not all(q.test() for q in reqs if q.active) and time.monotonic() < deadline:
                    time.sleep(0.001)
                assert not any(q.active for q in reqs)
                results = [q.wait() for q in reqs]  # completed: returns the output at once
            elif order == 2:
                while not all(q.wait_for(0.001) for q in reqs if q.active):
                    pass
                results = [q.wait() for q in reqs]
            else:
                seen = set()
                for _ in reqs:
                    i = fmi.wait_any(reqs)
                    assert i not in seen
                    seen.add(i)
                assert seen == set(range(len(reqs)))
                with pytest.raises(fmi.UsageError):
                    fmi.wait_any(reqs)
                results = [q.wait() for q in reqs]
            for i, res in enumerate(results):
                np.testing.assert_array_equal(res, sum(vals(order * 10 + i, p, 1000) for p in range(n)))

    run_peers(n, body)


def test_progress_while_the_caller_sleeps(kind):
    n = 3

    def body(comm):
        a = np.full((16 << 20) // 8, comm.peer_id + 1, np.int64)  # 16 MiB
        out = np.zeros_like(a)
        # 300 ms, or ten times the slower of two blocking runs on a loaded machine:
        # the check is that the operation advances while nobody calls FMI.
        blocking = 0
        for _ in range(2):
            t0 = time.monotonic()
            comm.allreduce(a, SUM, out=out)
            blocking = max(blocking, time.monotonic() - t0)
        blocking = comm.allreduce(np.array([blocking]), fmi.func(fmi.op.max))[0]
        comm.barrier()
        r = comm.iallreduce(a, SUM, out=out)
        time.sleep(max(0.3, 10 * blocking))
        t0 = time.monotonic()
        assert r.test(), "iallreduce not complete after sleeping"
        assert time.monotonic() - t0 < 0.05
        assert out[0] == out[-1] == n * (n + 1) // 2

    run_peers(n, body, kind)


def test_errors_raised_by_wait():
    n = 3

    def body(comm):
        me = comm.peer_id
        with pytest.raises(fmi.UsageError):  # local checks: from the i-call
            comm.iallreduce(np.zeros(4), SUM, out=np.zeros(5))
        with pytest.raises(fmi.UsageError):
            comm.isend(np.zeros(1), n)
        if me == 0:
            r = comm.isend(np.zeros(2, np.int64), 1)
            with pytest.raises(fmi.UsageError):
                r.wait_for(-1)
            r.wait()
        elif me == 1:
            r = comm.irecv(np.zeros(3, np.int64), 0)
            with pytest.raises(fmi.PeerError, match="recv from peer 0"):
                r.wait()
            assert not r.active
            r2 = comm.irecv(np.zeros(1, np.int64), 2)  # nobody sends
            assert not r2.test()
            assert r2.wait_for(0.01) is False
            with pytest.raises(fmi.TimeoutError):
                fmi.wait_all([r2])

    _, errors, _ = run_peers_raw(n, body, max_timeout=1.0)
    assert errors == [None] * n, errors


def test_custom_reduction_on_the_worker_takes_the_gil(kind):
    """The reduction runs on the worker while the main thread waits with the GIL
    released; a custom callable there must not deadlock."""
    calls = []

    def f(a, b):
        calls.append(1)
        return a * 2 + b  # neither commutative nor associative

    def body(comm):
        n = comm.num_peers
        x = np.array([comm.peer_id + 1], np.int64)
        r = comm.iallreduce(x, fmi.func(fmi.op.custom, f, False, False))
        res = r.wait()
        acc = 1
        for p in range(1, n):
            acc = acc * 2 + (p + 1)
        assert res[0] == acc

    run_peers(3, body, kind)
    assert calls


def test_destroyed_request_waits_and_keeps_arrays():
    def body(comm):
        if comm.peer_id == 0:
            out = np.zeros(4, np.int64)
            t0 = time.monotonic()
            r = comm.irecv(out, 1)
            del r  # waits for the message
            gc.collect()
            assert time.monotonic() - t0 >= 0.15
            np.testing.assert_array_equal(out, [1, 2, 3, 4])
        elif comm.peer_id == 1:
            time.sleep(0.2)
            comm.send(np.array([1, 2, 3, 4], np.int64), 0)

    run_peers(2, body)
