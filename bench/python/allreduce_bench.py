"""64 MiB float32 allreduce (built-in sum) from Python (NumPy) vs the same from C++,
on the same channel and peer count. Prints both median times and the ratio
(target: Python within 1.1x of C++).

  PYTHONPATH=<dir of fmi*.so> /usr/bin/python3 bench/python/allreduce_bench.py \
      --cpp <build>/.../fmi_bench_allreduce_cpp [--channel inproc|direct] [--peers 4] \
      [--mib 64] [--iters 5] [--rounds 2] [--fmirun <build>/tools/fmirun/fmirun]

  inproc: peers are threads of one process over fmi.InProcessHub (C++: the same with
          std::thread over FMI::Comm::InProcessHub);
  direct: peers are processes started by fmirun, over the Direct channel (fmirun
          starts fmi-rendezvous on a free port).

Output:
  python peers=4 bytes=67108864 iters=5 median_s=0.101 best_s=0.098
  cpp    peers=4 bytes=67108864 iters=5 median_s=0.097 best_s=0.095
  ratio python/cpp (median) = 1.04
"""

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

import fmi

LINE = re.compile(r"(python|cpp) peers=(\d+) bytes=(\d+) iters=(\d+) median_s=([\d.]+) best_s=([\d.]+)")


def run(comm, mib, iters):
    """Per-iteration seconds of `iters` allreduces after one warm-up."""
    n = mib * (1 << 20) // 4
    send = np.full(n, comm.peer_id + 1, dtype=np.float32)
    out = np.empty_like(send)
    f = fmi.func(fmi.op.sum)
    times = []
    for it in range(iters + 1):
        comm.barrier()
        t0 = time.perf_counter()
        comm.allreduce(send, f, out=out)
        dt = time.perf_counter() - t0
        if it:
            times.append(dt)
    expect = comm.num_peers * (comm.num_peers + 1) / 2
    if out[0] != expect or out[-1] != expect:
        raise SystemExit(f"peer {comm.peer_id}: wrong result {out[0]}, expected {expect}")
    return times


def line(peers, mib, iters, times):
    return (f"python peers={peers} bytes={mib << 20} iters={iters} "
            f"median_s={statistics.median(times):.6f} best_s={min(times):.6f}")


def python_inproc(peers, mib, iters):
    hub = fmi.InProcessHub(peers, 120.0)
    times, errors = [None] * peers, []

    def peer(i):
        try:
            with fmi.Communicator(i, peers, None, "bench") as comm:
                comm.register_channel("inproc", hub.p2p_endpoint())
                times[i] = run(comm, mib, iters)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=peer, args=(i,)) for i in range(peers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return line(peers, mib, iters, times[0])


def worker(mib, iters):
    """One process of the direct mode (started by fmirun)."""
    with fmi.Communicator.from_env() as comm:
        comm.hint(fmi.hints.fast)
        times = run(comm, mib, iters)
        if comm.peer_id == 0:
            print(line(comm.num_peers, mib, iters, times), flush=True)


def direct_config(path):
    """The repository's configuration with only Direct, on a free local port."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(repo, "config", "fmi.json")) as f:
        cfg = json.load(f)
    for name in ("S3", "Redis"):
        cfg["backends"].setdefault(name, {})["enabled"] = False
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg["backends"]["Direct"] = {"enabled": True, "host": "127.0.0.1", "port": port,
                                 "max_timeout": 120000}
    with open(path, "w") as f:
        json.dump(cfg, f)


def launch(fmirun, peers, config, cmd):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(fmi.__file__)] +
                                        ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    p = subprocess.run([fmirun, "-n", str(peers), "--config", config, "--timeout", "600", "--"] + cmd,
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        raise SystemExit(f"fmirun failed ({p.returncode}):\n{p.stdout}")
    return p.stdout


def find(output, kind):
    for m in LINE.finditer(output):
        if m.group(1) == kind:
            return m
    raise SystemExit(f"no '{kind}' result in:\n{output}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--channel", choices=["inproc", "direct"], default="inproc")
    ap.add_argument("--peers", type=int, default=4)
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2, help="runs of each side, alternating order")
    ap.add_argument("--cpp", required=False, help="path of fmi_bench_allreduce_cpp")
    ap.add_argument("--fmirun", default=os.environ.get("FMI_FMIRUN") or shutil.which("fmirun"))
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return worker(a.mib, a.iters)
    if not a.cpp:
        ap.error("--cpp PATH (the fmi_bench_allreduce_cpp program) is required")
    args = ["--mib", str(a.mib), "--iters", str(a.iters)]
    if a.channel == "direct" and not a.fmirun:
        ap.error("--channel direct needs fmirun (--fmirun PATH or FMI_FMIRUN)")

    def python_side():
        if a.channel == "inproc":
            return python_inproc(a.peers, a.mib, a.iters)
        with tempfile.TemporaryDirectory() as tmp:
            cfg = os.path.join(tmp, "direct.json")
            direct_config(cfg)
            return launch(a.fmirun, a.peers, cfg, [sys.executable, os.path.abspath(__file__), "--worker"] + args)

    def cpp_side():
        if a.channel == "inproc":
            return subprocess.run([a.cpp, "--inproc", str(a.peers)] + args, check=True,
                                  stdout=subprocess.PIPE, text=True).stdout
        with tempfile.TemporaryDirectory() as tmp:
            cfg = os.path.join(tmp, "direct.json")
            direct_config(cfg)
            return launch(a.fmirun, a.peers, cfg, [a.cpp] + args)

    # Alternate the order over rounds (the machine may be shared) and keep each side's
    # best median.
    results = {"python": [], "cpp": []}
    for r in range(a.rounds):
        order = [("python", python_side), ("cpp", cpp_side)]
        for kind, side in (order if r % 2 == 0 else order[::-1]):
            results[kind].append(find(side(), kind))
    p = min(results["python"], key=lambda m: float(m.group(5)))
    c = min(results["cpp"], key=lambda m: float(m.group(5)))
    print(f"channel={a.channel}")
    print(p.group(0))
    print(c.group(0).replace("cpp ", "cpp    ", 1))
    ratio = float(p.group(5)) / float(c.group(5))
    print(f"ratio python/cpp (median) = {ratio:.3f}  (target <= 1.1)")


if __name__ == "__main__":
    main()
