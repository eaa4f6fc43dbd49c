#!/usr/bin/env python3
"""report.py -- turn the results of scripts/bench.sh into docs/PERFORMANCE.md.

    python3 bench/report.py --results build-bench/results --out docs/PERFORMANCE.md \
        --plots docs/perf --notes bench/analysis.md

Reads what scripts/bench.sh left in the results directory (peers.jsonl,
gbench.json, mono_*.json, machine.txt, profile.*.txt, libs.tsv), writes the
report with a markdown table per workload, the performance targets as ratios
measured in this one run (met or MISSED, never reworded), the profiles, and
PNG plots of ns/op against N (gnuplot, else matplotlib, else none).  The
hand-written analysis in --notes is included as it is.  Python standard
library only.
"""
import argparse
import collections
import json
import math
import os
import shutil
import statistics
import subprocess

WORKLOAD_METRICS = [
    # (key, workload, metric, title)
    ("w1_arm", "W1", "arm_ns", "W1 arm: ns per arm (N timers, random timeouts in [1 ms, 10 s])"),
    ("w1_cancel", "W1", "cancel_ns", "W1 cancel: ns per cancel (all N, random order)"),
    ("w2_rearm", "W2", "rearm_ns", "W2 re-arm: ns per re-arm (10·N re-arms of a random timer to now + [1 s, 10 s])"),
    ("w3_fire", "W3", "fire_ns", "W3 expiry: ns per fired timer (N timers due within 100 ms, trivial handler;"
     " batch / virtual time)"),
    ("w3_fire_rt", "W3rt", "fire_rt_ns", "W3 expiry in real time: ns per fired timer (the same, each library's"
     " blocking loop sleeping until each next deadline; wake-ups included)"),
]
REFERENCE = {  # the targets' reference: best packaged or baseline library, median ns/op, "this kind of machine"
    "w1_arm": {100000: 13.6, 1000000: 14.2},
    "w1_cancel": {100000: 25.6, 1000000: 70.6},
    "w2_rearm": {100000: 32.8, 1000000: 108.5},
    "w3_fire": {100000: 96.0, 1000000: 126.4},
}
WHEEL_BAR = {"w1_arm": 4.5, "w1_cancel": 5.2, "w2_rearm": 8.9, "w3_fire": 15.7}  # timeout.c/ratas at 10^5
THREAD_SAFE_PEERS = ["dpdk", "libevent-mt"]
CALLOUT_MAIN = "callout-virtual"
CALLOUT_MT = "callout-mono"


def n_label(n):
    e = round(math.log10(n))
    return f"10^{e}" if 10 ** e == n else str(n)


def fmt(v):
    if v is None:
        return "–"
    if v >= 1000:
        return f"{v:,.0f}".replace(",", " ")
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def fmt_ratio(r):
    return "–" if r is None else f"{r:.2f}×"


def read_json(path, default=None):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def read_text(path, default=""):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


class Peers:
    def __init__(self, results):
        self.libs = []  # (name, label, thread_safe, max_n)
        for line in read_text(os.path.join(results, "libs.tsv")).splitlines():
            parts = line.split("\t")
            if len(parts) >= 4:
                self.libs.append((parts[0], parts[1], parts[2].endswith("1"), int(parts[3].split("=")[1])))
        self.raw = []
        for line in read_text(os.path.join(results, "peers.jsonl")).splitlines():
            line = line.strip()
            if line:
                try:
                    self.raw.append(json.loads(line))
                except ValueError:
                    pass
        self.values = collections.defaultdict(list)  # (lib, workload, n, metric) -> [v]
        self.errors = collections.OrderedDict()  # lib -> first error
        for r in self.raw:
            if not r.get("ok", False):
                self.errors.setdefault(r["lib"], f'{r["workload"]} N={r["n"]}: {r.get("error", "?")}')
                continue
            for k, v in r.items():
                if k.endswith("_ns") or k.startswith("allocs_") or k in ("bytes_per_timer", "rearms"):
                    self.values[(r["lib"], r["workload"], r["n"], k)].append(v)
        self.sizes = sorted({r["n"] for r in self.raw if r["workload"] != "W4"})
        self.reps = max([r.get("rep", 0) for r in self.raw] + [0]) + 1

    def label(self, name):
        for l in self.libs:
            if l[0] == name:
                return l[1]
        return name

    def thread_safe(self, name):
        return any(l[0] == name and l[2] for l in self.libs)

    def median(self, lib, workload, n, metric):
        v = self.values.get((lib, workload, n, metric))
        return statistics.median(v) if v else None

    def spread(self, lib, workload, n, metric):
        v = self.values.get((lib, workload, n, metric))
        return (min(v), max(v)) if v else None

    def peer_names(self):
        return [l[0] for l in self.libs if not l[0].startswith("callout")]

    def best_peer(self, workload, n, metric, names=None):
        best = None
        for name in names or self.peer_names():
            v = self.median(name, workload, n, metric)
            if v is not None and (best is None or v < best[1]):
                best = (name, v)
        return best

    def ratio(self, lib, workload, n, metric, names=None):
        mine = self.median(lib, workload, n, metric)
        best = self.best_peer(workload, n, metric, names)
        if mine is None or best is None:
            return None
        return mine / best[1]


def peers_table(p, workload, metric):
    head = "| library | thread-safe | " + " | ".join(f"N = {n_label(n)}" for n in p.sizes) + " |"
    sep = "|---|:-:|" + "---:|" * len(p.sizes)
    rows = [head, sep]
    best = {n: p.best_peer(workload, n, metric) for n in p.sizes}
    for name, label, ts, _ in p.libs:
        cells = []
        any_value = False
        for n in p.sizes:
            v = p.median(name, workload, n, metric)
            if v is None:
                cells.append("–")
                continue
            any_value = True
            text = fmt(v)
            if name.startswith("callout"):
                r = p.ratio(name, workload, n, metric)
                if r is not None:
                    text += f" ({fmt_ratio(r)})"
                text = f"**{text}**" if name == CALLOUT_MAIN else text
            elif best[n] and best[n][0] == name:
                text = f"_{text}_ ★"
            cells.append(text)
        if any_value:
            rows.append(f"| {label} | {'yes' if ts else 'no'} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def w4_table(p, n):
    rows = ["| library | bytes per armed timer | allocs per arm | per cancel | per re-arm | per fired timer |",
            "|---|---:|---:|---:|---:|---:|"]
    for name, label, _, _ in p.libs:
        get = lambda m: p.median(name, "W4", n, m)
        if get("bytes_per_timer") is None:
            continue
        rows.append(f"| {label} | {get('bytes_per_timer'):.1f} | {get('allocs_arm'):.3f} | {get('allocs_cancel'):.3f}"
                    f" | {get('allocs_rearm'):.3f} | {get('allocs_fire'):.3f} |")
    return "\n".join(rows)


class GBench:
    def __init__(self, path):
        data = read_json(path, {}) or {}
        self.context = data.get("context", {})
        per = collections.defaultdict(list)
        medians = {}
        for b in data.get("benchmarks", []):
            parts = b.get("name", "").split("/")
            if len(parts) < 3:
                continue
            op, n = parts[0] + "/" + parts[1], int(parts[2])
            unit = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b.get("time_unit", "ns")]
            ns_per_op = b["real_time"] * unit / n
            if b.get("run_type") == "aggregate":
                if b.get("aggregate_name") == "median":
                    medians[(op, n)] = ns_per_op
            else:
                per[(op, n)].append(ns_per_op)
        self.v = {k: statistics.median(v) for k, v in per.items()}
        self.v.update(medians)
        self.sizes = sorted({n for _, n in self.v})
        self.ops = []
        for op, _ in sorted(self.v, key=lambda k: k[0]):
            if op not in self.ops:
                self.ops.append(op)

    def get(self, op, n):
        return self.v.get((op, n))


GB_ORDER = ["reset", "stop", "reset_later", "reset_earlier", "rearm_random", "fire", "halt_idle", "pending", "ticks",
            "ticks_monotonic"]


def gbench_table(g):
    head = "| operation | layer | " + " | ".join(f"N = {n_label(n)}" for n in g.sizes) + " |"
    rows = [head, "|---|---|" + "---:|" * len(g.sizes)]
    for op in GB_ORDER:
        for layer in ["wheel", "locked", "api"]:
            key = f"{layer}/{op}"
            if not any(g.get(key, n) is not None for n in g.sizes):
                continue
            cells = []
            for n in g.sizes:
                v = g.get(key, n)
                text = fmt(v)
                if v is not None and layer != "wheel" and g.get(f"wheel/{op}", n):
                    text += f" ({v / g.get(f'wheel/{op}', n):.1f}×)"
                cells.append(text)
            name = {"wheel": "wheel alone", "locked": "wheel + spin lock", "api": "C API (manual domain)"}[layer]
            if op.endswith("monotonic"):
                name = "C API (monotonic domain)"
            rows.append(f"| {op} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def verdict(ok):
    return "met" if ok else "**MISSED**"


PALETTE = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666", "#1f78b4",
           "#b2182b"]


def plot(plots_dir, results_dir, name, title, series, ylabel="ns per operation (median)", colors=None):
    """series: list of (label, [(n, value)]); colors: optional list of "#rrggbb", one per series.
    Returns the path of the PNG, or None."""
    os.makedirs(plots_dir, exist_ok=True)
    png = os.path.join(plots_dir, name + ".png")
    if colors is None:
        colors = [PALETTE[i % len(PALETTE)] for i in range(len(series))]
    keep = [i for i, (_, pts) in enumerate(series) if pts]
    series = [series[i] for i in keep]
    colors = [colors[i] for i in keep]
    if not series:
        return None
    if shutil.which("gnuplot"):
        dat = os.path.join(results_dir, name + ".dat")
        with open(dat, "w") as f:
            for i, (label, pts) in enumerate(series):
                f.write(f"# {label}\n")
                for n, v in pts:
                    f.write(f"{n} {v}\n")
                f.write("\n\n")
        gp = [
            "set terminal pngcairo size 1000,560 font ',10'",
            f"set output '{png}'",
            f"set title \"{title}\" noenhanced",
            "set logscale xy",
            "set xlabel 'N (timers pending)'",
            f"set ylabel '{ylabel}'",
            "set key outside right top",
            "set grid",
            "set format x '10^{%L}'",
        ]
        cmds = []
        for i, (label, _) in enumerate(series):
            dash = "dt 1" if label.startswith("libcallout") else "dt 2"
            width = 3 if label.startswith("libcallout") else 1.5
            cmds.append(f"'{dat}' index {i} with linespoints lw {width} {dash} lc rgb '{colors[i]}'"
                        f" title \"{label}\" noenhanced")
        gp.append("plot " + ", ".join(cmds))
        script = os.path.join(results_dir, name + ".gp")
        with open(script, "w") as f:
            f.write("\n".join(gp) + "\n")
        if subprocess.run(["gnuplot", script], capture_output=True).returncode == 0:
            return png
    try:
        import matplotlib  # noqa: F401
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(9, 5.6))
        for (label, pts), color in zip(series, colors):
            ax.plot([n for n, _ in pts], [v for _, v in pts], marker="o", label=label, color=color,
                    linewidth=3 if label.startswith("libcallout") else 1.5,
                    linestyle="-" if label.startswith("libcallout") else "--")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("N (timers pending)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1, 0.5))
        fig.tight_layout()
        fig.savefig(png, dpi=100)
        return png
    except Exception:
        return None


def placement_table(path):
    """Markdown lines for bench/placement.sh's runs (one JSON object a line):
    per combination of background load, pinning and policy, the median over
    the rounds of libcallout's and the oracle's lateness quantiles."""
    rows = [json.loads(line) for line in read_text(path).splitlines() if line.strip()]
    if not rows:
        return []
    groups = collections.OrderedDict()
    for r in rows:
        groups.setdefault((r["busy"], r["pin"], r["policy"]), []).append(r)
    med = statistics.median
    L = ["| background | pinned | policy | runs | handlers/s | p50 µs | p99 µs | max µs | oracle p50 µs |"
         " oracle p99 µs | oracle max µs | p99 / oracle p99 | early |",
         "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for (busy, pin, policy), rs in groups.items():
        c = lambda k: med(r["callout"][k] for r in rs)
        o = lambda k: med(r["oracle"][k] for r in rs)
        p99s = "–".join(f"{v:.0f}" for v in (min(r["callout"]["p99_us"] for r in rs),
                                              max(r["callout"]["p99_us"] for r in rs)))
        L.append(f"| {'none' if str(busy) == '0' else f'{busy} spinners'} | {'yes' if pin else 'no'} |"
                 f" {policy if policy == 'other' else policy + ' ' + str(rs[0]['priority'])} | {len(rs)} |"
                 f" {med(r['fired_per_s'] for r in rs):,.0f} | {c('p50_us'):.1f} | {c('p99_us'):.0f} ({p99s}) |"
                 f" {c('max_us'):.0f} | {o('p50_us'):.1f} | {o('p99_us'):.0f} | {o('max_us'):.0f} |"
                 f" {med(r['ratio']['p99'] for r in rs):.2f} | {sum(r['early'] for r in rs)} |")
    L.append("")
    L.append("Load average before each run: " + ", ".join(r["loadavg_before"].split()[0] for r in rows) + ".")
    if all("steal_share" in r for r in rows):
        L.append("Hypervisor steal during each run (share of processor time): "
                 + ", ".join(f"{100 * r['steal_share']:.1f} %" for r in rows) + ".")
    return L


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results")
    ap.add_argument("--out")
    ap.add_argument("--plots")
    ap.add_argument("--notes", default=None)
    ap.add_argument("--placement", default=None, help="print the table of bench/placement.sh's runs and exit")
    a = ap.parse_args()
    if a.placement:
        print("\n".join(placement_table(a.placement)))
        return
    if not (a.results and a.out and a.plots):
        ap.error("--results, --out and --plots are required")
    res = a.results
    machine = collections.OrderedDict()
    for line in read_text(os.path.join(res, "machine.txt")).splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            machine[k.strip()] = v.strip()
    p = Peers(res)
    g = GBench(os.path.join(res, "gbench.json"))
    idle = read_json(os.path.join(res, "mono_idle.json"), {}) or {}
    late = read_json(os.path.join(res, "mono_lateness.json"), {}) or {}
    late_nice = read_json(os.path.join(res, "mono_lateness_nice.json"), {}) or {}
    late_fifo = read_json(os.path.join(res, "mono_lateness_fifo.json"), {}) or {}
    win = read_json(os.path.join(res, "mono_window.json"), {}) or {}
    cv = read_json(os.path.join(res, "mono_cvwait.json"), {}) or {}
    mem = read_json(os.path.join(res, "mono_memory.json"), {}) or {}
    scal = read_json(os.path.join(res, "mono_scaling.json"), {}) or {}
    out_dir = os.path.dirname(os.path.abspath(a.out))
    rel = lambda path: os.path.relpath(path, out_dir) if path else None

    L = []
    w = L.append
    w("# libcallout performance")
    w("")
    w("<!-- Generated by scripts/bench.sh (bench/report.py); do not edit by hand: edit bench/analysis.md"
      " or the benchmarks and re-run. -->")
    w("")
    w("Everything below comes from **one run** of the command below on a shared, noisy machine, so every claim is"
      " a **ratio between numbers measured side by side in that run**, never an absolute figure carried over from"
      " elsewhere. Times are **CPU time of the whole process** (every thread, the library's own included) divided by"
      " the operations done: time another process took from us on this shared machine is not counted, cache and"
      " memory-bus interference from it is. Each cell is the **median of the repetitions**; single-thread workloads"
      " are pinned to one CPU (`taskset`/`sched_setaffinity`); the random sequences come from one fixed seed (42).")
    w("")
    w("## Machine and command")
    w("")
    w("| | |")
    w("|---|---|")
    for k in ["command", "date", "runtime_s", "cpu", "cpus", "L1d", "L1i", "L2", "L3", "hypervisor", "kernel",
              "compiler", "clocksource", "loadavg_start", "loadavg_end", "pinned_cpu"]:
        if k in machine:
            v = machine[k]
            if k == "runtime_s":
                v = f"{int(v) // 60} min {int(v) % 60} s"
            w(f"| {k.replace('_', ' ')} | `{v}` |" if k == "command" else f"| {k.replace('_', ' ')} | {v} |")
    pk = [f"{k[4:]} {v}" for k, v in machine.items() if k.startswith("pkg ")]
    if pk:
        w(f"| packages | {', '.join(pk)} |")
    w("")
    w("The load average is that of the whole machine (two CPUs): other engineers were building and testing on it"
      " during the run.")
    w("")

    # ---- targets -------------------------------------------------------
    targets = []  # (target, measured, verdict)

    def cell_ratio(lib, wl, n, metric, names=None):
        r = p.ratio(lib, wl, n, metric, names)
        best = p.best_peer(wl, n, metric, names)
        mine = p.median(lib, wl, n, metric)
        if r is None:
            return None, "not measured"
        return r, f"{fmt(mine)} vs {fmt(best[1])} ({p.label(best[0])}) = **{r:.2f}×**"

    for n in [100000, 1000000]:
        for key, wl, metric, limit, what in [("w1_cancel", "W1", "cancel_ns", 0.5, "W1 cancel"),
                                             ("w2_rearm", "W2", "rearm_ns", 0.5, "W2 re-arm"),
                                             ("w1_arm", "W1", "arm_ns", 1.0, "W1 arm"),
                                             ("w3_fire", "W3", "fire_ns", 1.0, "W3 expiry")]:
            r, text = cell_ratio(CALLOUT_MAIN, wl, n, metric)
            if r is not None:
                targets.append((f"{what} at N = {n_label(n)}: ≤ {limit}× the best library", text, verdict(r <= limit)))
    for n in p.sizes:
        for wl, metric, limit, what in [("W1", "arm_ns", 0.2, "W1 arm"), ("W1", "cancel_ns", 0.2, "W1 cancel"),
                                        ("W2", "rearm_ns", 0.2, "W2 re-arm"),
                                        ("W3rt", "fire_rt_ns", 0.5, "W3 expiry (real time)")]:
            r, text = cell_ratio(CALLOUT_MT, wl, n, metric, THREAD_SAFE_PEERS)
            if r is not None:
                targets.append((f"{what} at N = {n_label(n)}, monotonic clock, against the thread-safe peers"
                                f" (DPDK, libevent-mt): ≤ {limit}×", text, verdict(r <= limit)))
    w4n = sorted({r["n"] for r in p.raw if r["workload"] == "W4"})
    for n in w4n:
        for lib in [CALLOUT_MAIN, CALLOUT_MT]:
            b = p.median(lib, "W4", n, "bytes_per_timer")
            if b is None:
                continue
            allocs = [p.median(lib, "W4", n, m) for m in ["allocs_arm", "allocs_cancel", "allocs_rearm", "allocs_fire"]]
            ok = round(b) <= 96 and all(x == 0 for x in allocs)
            targets.append((f"W4 ({p.label(lib)}): 96 bytes per callout, zero allocations per operation",
                            f"{b:.1f} bytes per armed callout (the 96-byte callout_t; the rest is the heap block's"
                            f" rounding), allocations per arm/cancel/re-arm/fire {'/'.join(f'{x:g}' for x in allocs)}",
                            verdict(ok)))
    if mem:
        ops = [v for kind in ("manual", "monotonic") for v in (mem.get(kind) or {}).values()]
        targets.append(("Memory: zero allocations per operation (init, reset, re-arm, stop, fire, halt, destroy;"
                        " both clocks)", f"max {max(ops) if ops else '?'} allocations per operation",
                        verdict(bool(ops) and max(ops) == 0)))
    if scal:
        targets.append(("Scaling: 2 threads on 2 cores ≥ 1.8× the single-thread throughput of reset+stop"
                        " (wall clock)",
                        f"{scal['two_over_one']:.2f}× (load average {scal.get('loadavg', '?')} on 2 CPUs)",
                        verdict(scal["two_over_one"] >= 1.8)))
        targets.append(("Scaling, the same per CPU-second of each thread (what the library can do when it gets"
                        " the cores)", f"{scal['two_over_one_cpu']:.2f}×", verdict(scal["two_over_one_cpu"] >= 1.8)))
    if idle:
        s = idle["seconds"]
        targets.append((f"Idle: 0 softclock wake-ups in {s} s with nothing pending",
                        f"{idle['empty_wakeups']} wake-ups, {idle['empty_cpu_us']:.0f} µs CPU",
                        verdict(idle["empty_wakeups"] == 0)))
        per_min = idle["far_wakeups"] * 60.0 / s
        targets.append((f"Idle: ≤ 1 wake-up per minute with one callout due in an hour",
                        f"{idle['far_wakeups']} wake-ups in {s} s after arming (≈ {per_min:.1f}/min; arming it"
                        f" woke it {idle['arm_wakeups']} time(s) at once)", verdict(per_min <= 1.0)))
    if late:
        psi = (f"; CPU pressure {100 * late['cpu_pressure_share']:.0f}% of the run"
               if "cpu_pressure_share" in late else "")
        targets.append(("Lateness at hz 1000: p99 ≤ 50 µs past the start of the due tick (on an otherwise idle"
                        " machine)",
                        f"p99 {late['p99_us']:.1f} µs (p50 {late['p50_us']:.1f}, max {late['max_us']:.0f};"
                        f" load average {late.get('loadavg_before', '?')}{psi}; the timed-condvar reference:"
                        f" p99 {cv.get('default_slack', {}).get('p99_us', 0):.0f} µs)",
                        verdict(late["p99_us"] <= 50)))

    w("## Targets, as measured in this run")
    w("")
    w("\"The best library\" is the fastest of the packaged peers and the two baselines in that cell of the tables"
      " below (libcallout itself excluded). libcallout's single-thread comparison uses its virtual-clock domain,"
      " whose handlers run in the thread that advances time, as every single-thread peer's callbacks run in its"
      " loop's thread (the manual clock's rows, which hand each tick to a softclock thread, are in the tables);"
      " the comparison with the thread-safe peers uses the monotonic clock.")
    w("")
    w("| target | measured | verdict |")
    w("|---|---|:-:|")
    for t, m, v in targets:
        w(f"| {t} | {m} | {v} |")
    w("")
    missed = sum(1 for _, _, v in targets if "MISSED" in v)
    w(f"{len(targets) - missed} of {len(targets)} met. Where a target is missed, the analysis below says why, with"
      " the profile.")
    w("")

    # ---- peers ------------------------------------------------------------------
    w("## The peer comparison (bench/peers, `callout-peers`)")
    w("")
    w(f"One program, one adapter per library, identical workloads, median of {p.reps} repetitions, each measurement"
      " in a fresh process (a clean heap, a fresh event loop / EAL), repetitions outermost with the library order"
      " rotating, pinned to one CPU. Cells are ns per operation; ★ marks the best library of a column, and"
      " libcallout's cells carry their ratio to it.")
    w("")
    w("What each row is:")
    w("")
    w("- **libcallout (virtual clock)**: a virtual-clock domain, 1 CPU, hz 1000 (a tick is 1 ms), no threads. W3"
      " is `callout_domain_advance(d, 100)`, which runs every handler in the calling thread, tick by tick.")
    w("- **libcallout (manual clock)**: a manual-clock domain, 1 CPU, hz 1000 (a tick is 1 ms). W3 is"
      " `callout_domain_advance(d, 100)`: every handler runs on the CPU's softclock thread and the call returns when"
      " all have run; the CPU time of both threads counts.")
    w("- **libcallout (monotonic clock)**: the same on the tickless monotonic clock; every reset reads the clock."
      " W3 counts the process CPU time from the first arm to the last handler, minus what the arming thread spent"
      " arming (softclock wake-ups included).")
    w("- **binary heap**, **std::multimap**: the two baselines written for the bench (an indexed binary min-heap of"
      " (due, timer) pairs with a per-timer slot, O(log n) removal; a multimap with the iterator kept per timer,"
      " re-arm by extract/insert). Cached \"now\", like an event loop.")
    w("- **libevent (min-heap)**, **libevent (common-timeout queues)** (timeouts rounded to one of 199 durations:"
      " 1–100 ms exactly, then to the nearest 100 ms, since a common timeout is one FIFO per duration and libevent"
      " allows 256), **libevent (min-heap, evthread_use_pthreads)** (the thread-safe configuration).")
    w("- **libuv**: `uv_timer_t` in the loop's heap, cached loop time. **Boost.Asio steady_timer**: default"
      " (thread-safe) `io_context`; a cancel or a re-arm completes the old wait with `operation_aborted`, and"
      " draining those handlers (`poll()`) is timed with the cancels/re-arms.")
    w("- **DPDK rte_timer**: per-lcore skiplists, EAL started with `--no-huge --no-pci --no-shconf`"
      " on the pinned CPU; thread-safe (CAS state word and per-lcore lock).")
    w("- W2 stops early once it has spent 1.5 s of CPU time (the slower libraries at N ≥ 10^5; `rearms` in"
      " `docs/perf/peers.csv` says how many were done): timers start at random due times and each re-arm picks a"
      " random timer and time, so the state is stationary from the first re-arm and the mean per re-arm does not"
      " depend on the count.")
    w("- W3 (batch) for every peer: arm, sleep (untimed) until every deadline has passed, then run the loop"
      " (`event_base_loop(EVLOOP_NONBLOCK)`, `uv_run(UV_RUN_NOWAIT)`, `io_context::poll()`, `rte_timer_manage()`,"
      " or the baseline's pop loop) until all fired: the CPU time of that dispatch. libcallout's counterpart is the"
      " virtual clock's `callout_domain_advance` (100 ticks, the handlers run in the caller; the manual clock's"
      " hands each tick to its softclock thread).")
    w("- W3 in real time: arm, then run the library's blocking loop until all fired"
      " (`event_base_loop(EVLOOP_ONCE)`, `uv_run(UV_RUN_ONCE)`, `io_context::run()`, `rte_timer_manage()` then a"
      " sleep of `rte_timer_next_ticks()`, the baselines' pop-then-`clock_nanosleep` loop): the CPU time from the"
      " end of arming to the last handler, wake-ups included. libcallout's counterpart is the monotonic clock, whose"
      " softclock thread sleeps until each next due tick (and starts firing while the rest are still being armed).")
    w("")
    if p.errors:
        w("Peers that failed (left out of the cells they failed in):")
        w("")
        for lib, err in p.errors.items():
            w(f"- {p.label(lib)}: `{err}`")
        w("")
    plots = {}
    for key, wl, metric, title in WORKLOAD_METRICS:
        w(f"### {title}")
        w("")
        w(peers_table(p, wl, metric))
        w("")
        series = []
        for name, label, _, _ in p.libs:
            pts = [(n, p.median(name, wl, n, metric)) for n in p.sizes if p.median(name, wl, n, metric) is not None]
            series.append((label, pts))
        png = plot(a.plots, res, f"peers_{key}", title.split(":")[0], series)
        if png:
            w(f"![{title.split(':')[0]}]({rel(png)})")
            w("")
        plots[key] = png
    w("For scale, the reference figures the targets were set against (best packaged or baseline library, another"
      " run on this kind of machine) next to the best library measured here; the ratio says how much slower this"
      " run's machine state was:")
    w("")
    w("| cell | reference | best here | here / reference |")
    w("|---|---:|---:|---:|")
    for key, wl, metric, title in WORKLOAD_METRICS:
        for n, ref in REFERENCE.get(key, {}).items():
            b = p.best_peer(wl, n, metric)
            if b:
                w(f"| {title.split(':')[0]} N = {n_label(n)} | {ref} | {fmt(b[1])} ({p.label(b[0])}) |"
                  f" {b[1] / ref:.2f}× |")
    w("")
    w("Single-threaded wheels without locks (timeout.c, ratas) reach 4.5 / 5.2 / 8.9 / 15.7 ns (arm / cancel /"
      " re-arm / expiry) at 10^5 on this kind of machine (reference figures, not measured in this run); the"
      " `wheel alone` rows of libcallout's own benchmarks below are the comparable numbers for libcallout's wheel.")
    w("")
    if w4n:
        w(f"### W4: memory per armed timer and allocations per operation (N = {n_label(w4n[0])})")
        w("")
        w("Counted by an allocator interposed on malloc/free for the whole process (`bench/common/alloc_count.cpp`)."
          " Bytes per armed timer = heap bytes live after arming N timers, including the timer objects the program"
          " allocated for them, minus before, over N (the event loop's or domain's fixed overhead is not per timer"
          " and is left out; see the memory section for libcallout's).")
        w("")
        w(w4_table(p, w4n[0]))
        w("")

    # ---- own benchmarks -------------------------------------------------------------
    w("## libcallout's own benchmarks (bench/callout_bench.cpp, Google Benchmark)")
    w("")
    w("Each benchmark times whole passes of N operations in random order (process CPU time), with an untimed step"
      " between passes that puts the callouts back in the state the operation needs, so every timed operation takes"
      " the path it is named after. ns per operation; in parentheses, the ratio to the wheel alone. Three layers:"
      " **wheel alone** (src/wheel.h, no lock), **wheel + spin lock** (the CPU's SpinLock taken around each"
      " operation: the cost of MP-safety), **C API** (a manual-clock domain with one CPU: lock, magic check,"
      " finding the callout's CPU, state flags, clock read, counters, and the 96-byte callout instead of the"
      " 32-byte wheel node). `fire` on the API layer runs the handlers on the softclock thread, handed off per tick"
      " by `callout_domain_advance`; on the wheel layers it pops and calls inline.")
    w("")
    if g.sizes:
        w(gbench_table(g))
        w("")
        series, colors = [], []
        for i, op in enumerate(["reset", "stop", "reset_later", "reset_earlier", "rearm_random", "fire"]):
            for layer in ["wheel", "api"]:
                pts = [(n, g.get(f"{layer}/{op}", n)) for n in g.sizes if g.get(f"{layer}/{op}", n)]
                series.append((("libcallout " if layer == "api" else "") + f"{layer}/{op}", pts))
                colors.append(PALETTE[i])
        png = plot(a.plots, res, "own_layers", "libcallout: the C API (solid) against the wheel alone (dashed)",
                   series, colors=colors)
        if png:
            w(f"![libcallout layers]({rel(png)})")
            w("")
    else:
        w("(no Google Benchmark results: libbenchmark-dev missing?)")
        w("")

    # ---- monotonic clock ---------------------------------------------------------------
    w("## On the monotonic clock (bench/mono_bench.cpp, `callout-mono-bench`)")
    w("")
    if scal:
        w("### Scaling: reset+stop pairs, 1 thread against 2")
        w("")
        w(f"Each thread does {scal['ops_per_thread']:,} `callout_reset`+`callout_stop` pairs on 4096 callouts bound"
          " to its own CPU (two CPUs in the domain, each thread pinned to one). \"Mix\": every other callout is bound"
          " to the other CPU (its lock and cache lines are shared with the other thread). A callout on each CPU"
          f" re-arms itself every 100 ms, as a busy system's other timers would. Median of {scal['reps']}"
          f" repetitions. Load average at the time: {scal.get('loadavg', '?')}.")
        w("")
        w("| configuration | ops/s (wall) | × 1 thread | ops per CPU-second (sum over threads) | × 1 thread |")
        w("|---|---:|---:|---:|---:|")
        w(f"| 1 thread | {scal['one_thread_ops_s']:,.0f} | 1.00× | {scal['one_thread_ops_cpu_s']:,.0f} | 1.00× |")
        w(f"| 2 threads, own CPUs | {scal['two_threads_ops_s']:,.0f} | {scal['two_over_one']:.2f}× |"
          f" {scal['two_threads_ops_cpu_s']:,.0f} | {scal['two_over_one_cpu']:.2f}× |")
        w(f"| 2 threads, cross-CPU mix | {scal['mix_ops_s']:,.0f} | {scal['mix_over_one']:.2f}× |"
          f" {scal['mix_ops_cpu_s']:,.0f} | {scal['mix_over_one_cpu']:.2f}× |")
        w("")
        w(f"reset+stop on a CPU with nothing else pending (each reset is earlier than the softclock's next wake-up,"
          f" so it must kick it): {scal['empty_cpu_reset_stop_ns']:.0f} ns per pair (process CPU, the softclock's"
          f" wake-ups included), against {scal['busy_cpu_reset_stop_ns']:.0f} ns with a nearer callout pending.")
        w("")
    if late:
        w("### Lateness")
        w("")
        w(f"{late['count']:,} callouts with due ticks spread uniformly over {late['seconds']} s, hz {late['hz']},"
          f" {late['ncpu']} CPUs; each handler records CLOCK_MONOTONIC when it starts; lateness = that − the start"
          " of the due tick (the tick origin is found by watching `callout_domain_ticks` change). Reference in the"
          " same run: a thread doing plain `pthread_cond_timedwait` with random ~1 ms deadlines (lateness past its"
          " exact deadline), with the kernel's default 50 µs timer slack and with 1 ns.")
        w("")
        w("| | p50 µs | p99 µs | p99.9 µs | max µs |")
        w("|---|---:|---:|---:|---:|")
        for name, x in [("libcallout softclock (as shipped)", late),
                        ("libcallout softclock, threads reniced to -10 by the bench", late_nice),
                        ("libcallout softclock, threads made SCHED_FIFO 1 by the bench", late_fifo)]:
            if x:
                w(f"| {name} | {x['p50_us']:.1f} | {x['p99_us']:.1f} | {x['p999_us']:.1f} | {x['max_us']:.0f} |")
        if cv:
            for k, name in [("default_slack", "timed condvar wait, default slack"),
                            ("slack_1ns", "timed condvar wait, 1 ns slack")]:
                c = cv.get(k, {})
                w(f"| {name} | {c.get('p50_us', 0):.1f} | {c.get('p99_us', 0):.1f} | – | {c.get('max_us', 0):.0f} |")
        w("")
        if "softclock_wakeups" in late:
            w(f"Where the lateness came from: the softclock threads woke {late['softclock_wakeups']:,} times and,"
              f" once woken, waited on average {late['runqueue_wait_us_per_wakeup']:.1f} µs for a CPU (run-queue wait"
              f" from `/proc/<tid>/schedstat`); over the run, some task on the machine was waiting for a CPU"
              f" {100 * late['cpu_pressure_share']:.0f}% of the time (`/proc/pressure/cpu`). The target is for an"
              " otherwise idle machine.")
            w("")
        w(f"Load average before/after the lateness run: {late.get('loadavg_before')} / {late.get('loadavg_after')}"
          f"; during the condvar reference: {cv.get('loadavg', '?')}. {late.get('missing', 0)} callouts did not run"
          " (must be 0).")
        w("")
    loads = [x for x in (read_json(os.path.join(res, f), {}) for f in ("mono_load_1e5.json", "mono_load_1e6.json")) if x]
    if loads:
        w("### Lateness under the demo's load, against an oracle in the same run")
        w("")
        w("`callout-mono-bench load`: the demo's traffic (retransmit, delayed-ACK and keepalive callouts per"
          " connection, each associated with the connection's mutex; reset and stopped far more often than fired;"
          " connections closing and reopening) at N connections. Every handler start's lateness past the start of"
          " its due tick is recorded. The oracle is a thread of the same process with 1 ns of timer slack"
          " sleeping in `clock_nanosleep(TIMER_ABSTIME)` to tick starts 1-8 ticks ahead, during the same seconds;"
          " the ratio columns divide libcallout's figure by the oracle's.")
        w("")
        w("| connections | pending | handlers/s | | p50 µs | p99 µs | p99.9 µs | max µs |")
        w("|---:|---:|---:|---|---:|---:|---:|---:|")
        for x in loads:
            c, o, r = x["callout"], x["oracle"], x["ratio"]
            w(f"| {x['connections']:,} | {x['pending_mid']:,} | {x['fired_per_s']:,.0f} | libcallout |"
              f" {c['p50_us']:.1f} | {c['p99_us']:.1f} | {c['p999_us']:.1f} | {c['max_us']:.0f} |")
            w(f"| | | | oracle | {o['p50_us']:.1f} | {o['p99_us']:.1f} | {o['p999_us']:.1f} | {o['max_us']:.0f} |")
            w(f"| | | | **ratio** | {r['p50']:.2f} | {r['p99']:.2f} | {r['p999']:.2f} | {r['max']:.2f} |")
        w("")
        holds = [x for x in loads if "lock_hold_max_us" in x]
        if holds:
            w("The longest CPU-lock hold of each run, by cause (`callout_domain_stats`, over the whole run,"
              " warm-up and the opening of every connection included; cascade chunks are all timed, the O(1)"
              " holds of API calls and of the softclock's dispatch bookkeeping one in 4096), against the 50 µs"
              " target; and the time dispatches waited for their connection's mutex (the application's lock,"
              " not the wheel's):")
            w("")
            w("| connections | cascade µs | batch µs | API µs | longest hold ≤ 50 µs | mutex wait total ms | mutex wait max µs |")
            w("|---:|---:|---:|---:|---|---:|---:|")
            for x in holds:
                h, aw = x["lock_hold_max_us"], x["assoc_wait"]
                worst = max(h["cascade"], h["batch"], h["api"])
                w(f"| {x['connections']:,} | {h['cascade']:.1f} | {h['batch']:.1f} | {h['api']:.1f} |"
                  f" {'yes' if worst <= 50 else '**no**'} ({worst:.1f}) | {aw['total_ms']:.1f} | {aw['max_us']:.1f} |")
            w("")
        w("Keepalive idle time, event rate, CPU pressure, hypervisor steal (the share of processor time the"
          " host gave to others: `/proc/stat`) and load average of each run: "
          + "; ".join(f"{x['connections']:,}: {x['keep_ms'] / 1000:g} s, {x['rate']:,.0f}/s,"
                      f" {100 * x['cpu_pressure_share']:.0f} %,"
                      + (f" steal {100 * x['steal_share']:.1f} %," if "steal_share" in x else "")
                      + f" {x['loadavg_before']}" for x in loads)
          + ". Handlers started before their tick (must be 0): "
          + ", ".join(str(x.get("early", "?")) for x in loads) + ".")
        w("")
    placement = placement_table(os.path.join(res, "mono_placement.jsonl"))
    if placement:
        w("### Placement and policy of the softclock threads under a background load")
        w("")
        w("`bench/placement.sh`: the load above at 10^5 connections, with and without one nice-0 spinning process"
          " per processor, softclock threads pinned or floating, inherited policy or SCHED_FIFO; the combinations"
          " interleaved round after round. Medians over the rounds (p99: range in brackets); the oracle is a"
          " SCHED_OTHER thread of the same process.")
        w("")
        for line in placement:
            w(line)
        w("")
    if win:
        ex, wd = win["exact"], win["window"]
        w("### Precision windows: wake-ups with and without slack")
        w("")
        w(f"{win['count']:,} callouts with delays spread uniformly over {win['seconds']} s (hz 1000, one domain per"
          " run, its default CPU count), armed once with `callout_reset` and once with `callout_reset_window` and a"
          f" slack of {wd['slack_pct']} % of each delay. Wake-ups: `callout_domain_stats().wakeups` (the softclock"
          " threads' timed sleeps that ended), over the run. Each handler records CLOCK_MONOTONIC when it starts;"
          " \"early\" counts starts before the due tick began (must be 0), \"past the window\" starts after"
          " the window's last tick ended (the engine dispatches inside the window, which the manual-clock tests"
          " check exactly; on a real clock the wake-up latency can carry a start past it).")
        w("")
        w("| arming | wake-ups | ticks in which handlers started | early | past the window | worst past the window |")
        w("|---|---:|---:|---:|---:|---:|")
        for name, x in [("`callout_reset` (no slack)", ex), (f"`callout_reset_window`, {wd['slack_pct']} % slack", wd)]:
            w(f"| {name} | {x['wakeups']:,} | {x['handler_start_ticks']:,} | {x['early']} |"
              f" {x['started_past_window']} | {x['past_window_max_us']:.0f} µs |")
        w("")
        ratio = ex["wakeups"] / max(1, wd["wakeups"])
        w(f"{ratio:.0f}× fewer wake-ups with the slack (target ≥ 10×): {verdict(ratio >= 10)}."
          f" Missing handlers: {ex['missing'] + wd['missing']} (must be 0). Load average before/after:"
          f" {win.get('loadavg_before')} / {win.get('loadavg_after')}.")
        w("")
    if idle:
        w("### Idle cost")
        w("")
        w("Wake-ups (times scheduled, from `/proc/self/task/<tid>/schedstat`) and CPU time of the domain's softclock"
          f" threads (`callout/N`, {idle['threads']} of them), over {idle['seconds']} s each.")
        w("")
        w("| situation | wake-ups | CPU µs |")
        w("|---|---:|---:|")
        w(f"| nothing pending | {idle['empty_wakeups']} | {idle['empty_cpu_us']:.0f} |")
        w(f"| arming one callout due in an hour (first 100 ms) | {idle['arm_wakeups']} | – |")
        w(f"| that callout pending, next {idle['seconds']} s | {idle['far_wakeups']} | {idle['far_cpu_us']:.0f} |")
        w("")
    if mem:
        w("### Memory")
        w("")
        w(f"- `sizeof(callout_t)` = {mem.get('sizeof_callout_t')} bytes, caller-provided; nothing is allocated per"
          " callout.")
        for kind in ("manual", "monotonic"):
            m = mem.get(kind)
            if m:
                w(f"- allocations per operation, {kind} clock (10 000 callouts): " +
                  ", ".join(f"{k.replace('_', ' ')} {v:g}" for k, v in m.items()) + ".")
        w(f"- per CPU of a domain: {mem.get('per_cpu_heap_bytes', 0):,.0f} bytes of heap (the `Cpu`: lock, the"
          f" 11×64-bucket wheel, state), {mem.get('per_cpu_rss_kb', 0):.0f} KiB resident and"
          f" {mem.get('per_cpu_virtual_kb', 0):,.0f} KiB of address space (mostly the softclock thread's stack);"
          f" a one-CPU domain holds {mem.get('domain_1cpu_heap_bytes', 0):,.0f} bytes of heap in all.")
        w("")

    # ---- profiles ----------------------------------------------------------------------
    tool = read_text(os.path.join(res, "profile.tool")).strip()
    profs = [(w_, read_text(os.path.join(res, f"profile.{w_}.txt")).rstrip()) for w_ in ["W1", "W2", "W3", "W2mono"]]
    if any(t for _, t in profs):
        w(f"## Profiles of this run ({tool})")
        w("")
        w("libcallout on its manual clock (and W2 on the monotonic clock), one process per workload at the largest"
          " peer N, sampled with `perf record -e cpu-clock` (this VM exposes no hardware counters); self time by"
          " symbol, setup included (callout_init, page faults of the fresh arrays).")
        w("")
        for wl, text in profs:
            if not text:
                continue
            result = read_text(os.path.join(res, f"profile.{wl}.result")).strip()
            w(f"**{wl}** — `{result}`")
            w("")
            w("```")
            w(text)
            w("```")
            w("")

    if a.notes and os.path.exists(a.notes):
        w(read_text(a.notes).rstrip())
        w("")

    w("## Raw data")
    w("")
    w("Every measurement of this run (all repetitions) is in `docs/perf/peers.csv`; Google Benchmark's JSON and the"
      " other programs' output stay in `build-bench/results/`.")
    os.makedirs(a.plots, exist_ok=True)
    with open(os.path.join(a.plots, "peers.csv"), "w") as f:
        keys = ["lib", "workload", "n", "rep", "ok", "wall_s", "arm_ns", "cancel_ns", "rearm_ns", "rearms", "fire_ns",
                "fire_rt_ns", "bytes_per_timer",
                "allocs_arm", "allocs_cancel", "allocs_rearm", "allocs_fire", "error"]
        f.write(",".join(keys) + "\n")
        for r in p.raw:
            f.write(",".join(str(r.get(k, "")).replace(",", ";") for k in keys) + "\n")
    with open(a.out, "w") as f:
        f.write("\n".join(L) + "\n")


if __name__ == "__main__":
    main()
