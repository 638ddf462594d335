"""Python objects (pickled) through fmi vs mpi4py's lowercase calls, one run on this
machine: bcast and gather of (a) a dict holding a NumPy array and (b) a list of ints.
fmi peers are processes started by fmirun over the Direct channel; mpi4py peers are
processes started by mpirun over TCP (--mca btl tcp,self, like Direct). Prints each
median (the slowest peer per iteration, peers aligned by a barrier) and fmi/mpi4py.

  PYTHONPATH=<dir of fmi*.so> /usr/bin/python3 bench/python/objects_bench.py \
      --fmirun <build>/tools/fmirun/fmirun [--peers 4] [--kib 1024] [--iters 20]

Output (one line per case and library, then the ratios):
  fmi    op=bcast  obj=dict_array peers=4 bytes=1048576 iters=20 median_s=0.00123
  mpi4py op=bcast  obj=dict_array peers=4 bytes=1048576 iters=20 median_s=0.00101
  ...
  ratio fmi/mpi4py bcast dict_array = 1.22
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

LINE = re.compile(r"(fmi|mpi4py) +op=(\w+) +obj=(\w+) peers=(\d+) bytes=(\d+) iters=(\d+) "
                  r"median_s=([\d.]+)")


def payload(kind, nbytes, rank):
    """The object of a case, about `nbytes` of data, different on every peer."""
    import numpy as np
    if kind == "dict_array":
        return {"rank": rank, "step": 3, "name": "grad",
                "arr": np.full(max(nbytes // 8, 1), float(rank), dtype=np.float64)}
    return list(range(rank, rank + max(nbytes // 8, 1)))  # list of ints: pickled element by element


def check(kind, obj, rank):
    if kind == "dict_array":
        assert obj["rank"] == rank and obj["arr"][0] == float(rank), "wrong object"
    else:
        assert obj[0] == rank, "wrong object"


class Fmi:
    name = "fmi"

    def __init__(self):
        import fmi
        self.c = fmi.Communicator.from_env()
        self.c.hint(fmi.hints.fast)
        self.rank, self.size = self.c.peer_id, self.c.num_peers

    def barrier(self):
        self.c.barrier()

    def bcast(self, obj, root):
        return self.c.bcast(obj, root)

    def gather(self, obj, root):
        return self.c.gather(obj, root)

    def slowest(self, times):
        return [max(col) for col in zip(*self.c.allgather(times))]

    def close(self):
        self.c.finalize()


class Mpi:
    name = "mpi4py"

    def __init__(self):
        from mpi4py import MPI
        self.c = MPI.COMM_WORLD
        self.rank, self.size = self.c.Get_rank(), self.c.Get_size()

    def barrier(self):
        self.c.Barrier()

    def bcast(self, obj, root):
        return self.c.bcast(obj, root=root)

    def gather(self, obj, root):
        return self.c.gather(obj, root=root)

    def slowest(self, times):
        return [max(col) for col in zip(*self.c.allgather(times))]

    def close(self):
        pass


def worker(lib, nbytes, iters):
    w = Fmi() if lib == "fmi" else Mpi()
    root = w.size - 1  # a non-zero root
    for kind in ("dict_array", "list_ints"):
        mine = payload(kind, nbytes, w.rank)
        for op in ("bcast", "gather"):
            times = []
            for it in range(iters + 1):
                w.barrier()
                t0 = time.perf_counter()
                if op == "bcast":
                    got = w.bcast(mine if w.rank == root else None, root)
                else:
                    got = w.gather(mine, root)
                dt = time.perf_counter() - t0
                if it:
                    times.append(dt)
            if op == "bcast":
                check(kind, got, root)
            elif w.rank == root:
                for p, o in enumerate(got):
                    check(kind, o, p)
            worst = w.slowest(times)
            if w.rank == 0:
                print(f"{w.name:<6} op={op:<6} obj={kind} peers={w.size} bytes={nbytes} "
                      f"iters={iters} median_s={statistics.median(worst):.6f}", flush=True)
    w.close()


def run(cmd, env):
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({p.returncode}):\n{p.stdout}")
    return p.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peers", type=int, default=4)
    ap.add_argument("--kib", type=int, default=1024, help="data per object, KiB")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--fmirun", default=os.environ.get("FMI_FMIRUN") or shutil.which("fmirun"))
    ap.add_argument("--mpirun", default=shutil.which("mpirun"))
    ap.add_argument("--worker", choices=["fmi", "mpi4py"], help=argparse.SUPPRESS)
    a = ap.parse_args()
    nbytes = a.kib * 1024
    if a.worker:
        return worker(a.worker, nbytes, a.iters)
    if not a.fmirun or not a.mpirun:
        ap.error("needs fmirun (--fmirun or FMI_FMIRUN) and mpirun (openmpi-bin)")
    import fmi
    from allreduce_bench import direct_config  # next to this script
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(fmi.__file__)] +
                                        ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    me = [sys.executable, os.path.abspath(__file__), "--kib", str(a.kib), "--iters", str(a.iters)]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = os.path.join(tmp, "direct.json")
        direct_config(cfg)
        out = run([a.fmirun, "-n", str(a.peers), "--config", cfg, "--timeout", "600", "--"] + me +
                  ["--worker", "fmi"], env)
    out += run([a.mpirun, "--allow-run-as-root", "--oversubscribe", "--mca", "btl", "tcp,self",
                "--bind-to", "none", "-n", str(a.peers)] + me + ["--worker", "mpi4py"], env)
    res = {}
    for m in LINE.finditer(out):
        print(m.group(0))
        res[(m.group(1), m.group(2), m.group(3))] = float(m.group(7))
    for op in ("bcast", "gather"):
        for kind in ("dict_array", "list_ints"):
            f, m = res.get(("fmi", op, kind)), res.get(("mpi4py", op, kind))
            r = f"{f / m:.2f}" if f and m else "n/a"
            print(f"ratio fmi/mpi4py {op} {kind} = {r}")


if __name__ == "__main__":
    main()
