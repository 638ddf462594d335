#!/usr/bin/python3
"""Charts of fmi-bench / tcp_pingpong / mpi_bench CSV rows (docs/benchmarks.md).

    /usr/bin/python3 bench/plot.py results.csv [more.csv ...] --out docs/img

Needs Debian's python3-matplotlib (apt-get install -y python3-matplotlib; the
interpreter is /usr/bin/python3, not a pyenv one). Input: the rows every tool prints
(tools/fmi-bench/bench_common.h), several files or one file with repeated headers.
Writes PNG and SVG:
  latency_vs_size      ping-pong one-way latency per implementation/channel
  bandwidth_vs_size    point-to-point bandwidth per implementation/channel
  allreduce_vs_peers   allreduce time against peer count, one line per (impl, size)
  ratio_fmi_mpi        FMI-Direct / OpenMPI-TCP median time for every common point
"""
import argparse
import csv
import os
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402

FIELDS = ["tool", "op", "channel", "peers", "bytes", "iters", "median_us", "p90_us",
          "min_us", "bw_MiBps", "pred_us", "pred_usd"]


def read_rows(paths):
    rows = []
    for path in paths:
        with open(path, newline="") as f:
            for rec in csv.reader(f):
                if len(rec) != len(FIELDS) or rec[0] == "tool":
                    continue
                r = dict(zip(FIELDS, rec))
                try:
                    r["peers"] = int(r["peers"])
                    r["bytes"] = int(r["bytes"])
                    for k in ("median_us", "p90_us", "min_us", "bw_MiBps"):
                        r[k] = float(r[k])
                except ValueError:
                    continue
                rows.append(r)
    return rows


def label(r):
    if r["tool"] == "tcp":
        return "bare TCP"
    if r["tool"] == "tcp-spin":
        return "bare TCP, busy-polling"
    if r["tool"] == "mpi":
        return "OpenMPI (TCP)"
    if r["tool"] == "gloo":
        return "Gloo (TCP)"
    return "FMI " + r["channel"]


def size_label(b):
    for unit, shift in (("G", 30), ("M", 20), ("K", 10)):
        if b >= (1 << shift) and b % (1 << shift) == 0:
            return f"{b >> shift}{unit}"
    return str(b)


STYLE = {"bare TCP": ("k", "o"), "bare TCP, busy-polling": ("tab:gray", "x"), "OpenMPI (TCP)": ("tab:blue", "s"),
         "Gloo (TCP)": ("tab:purple", "P"),
         "FMI Direct": ("tab:red", "^"), "FMI Redis": ("tab:green", "v"),
         "FMI S3": ("tab:orange", "D")}


def style(name):
    return STYLE.get(name, (None, "x"))


def save(fig, out, name):
    for ext in ("png", "svg"):
        fig.savefig(os.path.join(out, f"{name}.{ext}"), dpi=110, bbox_inches="tight")
    plt.close(fig)
    print(f"plot.py: wrote {out}/{name}.png/.svg")


def by_size_chart(rows, op, value, ylabel, title, out, name, logy=True):
    series = defaultdict(dict)
    for r in rows:
        if r["op"] == op and r["peers"] == 2 and r["bytes"] > 0:
            series[label(r)][r["bytes"]] = r[value]
    if not series:
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name_, pts in sorted(series.items()):
        xs = sorted(pts)
        color, marker = style(name_)
        ax.plot(xs, [pts[x] for x in xs], marker=marker, color=color, label=name_)
    ax.set_xscale("log", base=2)
    if logy:
        ax.set_yscale("log")
    xs = sorted({x for pts in series.values() for x in pts})
    ax.set_xticks(xs)
    ax.set_xticklabels([size_label(x) for x in xs])
    ax.set_xlabel("message size (bytes)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    save(fig, out, name)


def allreduce_chart(rows, out):
    series = defaultdict(dict)
    for r in rows:
        if r["op"] == "allreduce":
            series[(label(r), r["bytes"])][r["peers"]] = r["median_us"] / 1000.0
    if not series:
        return
    # Per implementation, its smallest and largest size: latency-bound and
    # bandwidth-bound (storage channels are usually measured up to smaller sizes).
    per = defaultdict(set)
    for (name_, b) in series:
        per[name_].add(b)
    largest = {n: max(bs) for n, bs in per.items()}
    keep = {(n, b) for n, bs in per.items() for b in (min(bs), max(bs))}
    series = {k: v for k, v in series.items() if k in keep}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (name_, b), pts in sorted(series.items()):
        xs = sorted(pts)
        color, marker = style(name_)
        ax.plot(xs, [pts[x] for x in xs], marker=marker, color=color,
                linestyle="-" if b == largest[name_] else "--", label=f"{name_}, {size_label(b)}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    peers = sorted({x for pts in series.values() for x in pts})
    ax.set_xticks(peers)
    ax.set_xticklabels([str(p) for p in peers])
    ax.set_xlabel("peers (functions)")
    ax.set_ylabel("allreduce time, median (ms)")
    ax.set_title("allreduce (float32 sum) against peers (smallest and largest size)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, out, "allreduce_vs_peers")


def ratio_chart(rows, out):
    mpi = {(r["op"], r["peers"], r["bytes"]): r["median_us"] for r in rows if r["tool"] == "mpi"}
    pts = []
    for r in rows:
        if r["tool"] == "fmi" and r["channel"] == "Direct":
            k = (r["op"], r["peers"], r["bytes"])
            if k in mpi and mpi[k] > 0:
                pts.append((k, r["median_us"] / mpi[k]))
    if not pts:
        return
    pts.sort(key=lambda p: (p[0][0], p[0][1], p[0][2]))
    fig, ax = plt.subplots(figsize=(max(7, 0.35 * len(pts)), 4.5))
    names = [f"{op} {p}p {size_label(b)}" for (op, p, b), _ in pts]
    vals = [v for _, v in pts]
    colors = ["tab:green" if v <= 1 else "tab:red" for v in vals]
    bars = ax.bar(range(len(vals)), vals, color=colors)
    for bar, v in zip(bars, vals):
        ax.annotate(f"{v:.2f}", (bar.get_x() + bar.get_width() / 2, v), ha="center",
                    va="bottom", fontsize=7, xytext=(0, 2), textcoords="offset points")
    ax.axhline(1.0, color="k", linewidth=0.8)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(ticker.FormatStrFormatter("%g"))
    ax.set_xticks(range(len(vals)))
    ax.set_xticklabels(names, rotation=70, ha="right", fontsize=8)
    ax.set_ylabel("FMI Direct / OpenMPI-TCP (median time)")
    ax.set_title("FMI Direct relative to OpenMPI over TCP (below 1: FMI faster)")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    save(fig, out, "ratio_fmi_mpi")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv", nargs="+")
    ap.add_argument("--out", default=".")
    a = ap.parse_args()
    rows = read_rows(a.csv)
    if not rows:
        sys.exit("plot.py: no rows in " + " ".join(a.csv))
    os.makedirs(a.out, exist_ok=True)
    by_size_chart(rows, "pingpong", "median_us", "one-way latency, median (us)",
                  "ping-pong latency (2 peers, loopback)", a.out, "latency_vs_size")
    by_size_chart(rows, "bandwidth", "bw_MiBps", "bandwidth (MiB/s)",
                  "point-to-point bandwidth (2 peers, loopback)", a.out, "bandwidth_vs_size")
    allreduce_chart(rows, a.out)
    ratio_chart(rows, a.out)


if __name__ == "__main__":
    main()
