"""``giltrace attach``: how long the target is stopped per attach and per
detach, and what the trace costs while attached (benchmarks/README.md).

    .venv/bin/python benchmarks/bench_attach.py [--attaches 20] [--cycles 6]

1. Stop times.  A target with an I/O thread and a ticker thread (wakes every
   1 ms, reports every late wake-up with its CLOCK_MONOTONIC time) is
   attached to and detached from ``--attaches`` times.  Per attach: the
   intervals the injector kept (part of) it stopped, measured by the
   injector (giltrace's own, the default: the one thread used at the safe
   point, from its int3 to its resumption, and the detach, from the first
   PTRACE_INTERRUPT to the last PTRACE_DETACH; gdb with
   ``GILTRACE_INJECTOR=gdb``: ``attach`` to the first ``continue``, and the
   safe point's stop to ``detach``), and the worst late wake-up the ticker
   saw in the attach and in the detach.  ``--cycles 0`` skips part 2.
2. Overhead while attached.  A target runs alternating timed rounds of two
   workloads -- one thread doing GIL round trips (``os.write`` to /dev/null, timed by
   its CPU clock) and two CPU-bound threads (wall time) -- while the bench
   attaches and detaches every few seconds.  Rounds entirely inside a trace
   are paired with the adjacent untraced round: median ratio, as in
   bench_overhead.py.  The same rounds traced from inside (the target
   starts and stops its own trace, as under ``giltrace run``) give the
   figures to compare with, measured under the same machine load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from giltrace.attach.session import Session  # noqa: E402

TICKER = r'''
import sys, threading, time
def io():
    while True:
        time.sleep(0.0005)
def tick():
    prev = time.monotonic_ns()
    while True:
        time.sleep(0.001)
        now = time.monotonic_ns()
        late = now - prev - 1_000_000
        if late > 2_000_000:
            print("late %d %d" % (now, late), flush=True)
        prev = now
threading.Thread(target=io, name="io", daemon=True).start()
threading.Thread(target=tick, name="ticker", daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
'''

ROUNDS = r'''
import json, os, threading, time
NULL = os.open(os.devnull, os.O_WRONLY)
def roundtrips(n):
    t0 = time.thread_time_ns()
    for _ in range(n):
        os.write(NULL, b"x")  # releases and retakes the GIL around write(2)
    return (time.thread_time_ns() - t0) / n
def cpu(n):
    x = 0
    for i in range(n):
        x += i
def two_cpu(n):
    ts = [threading.Thread(target=cpu, args=(n,)) for _ in range(2)]
    t0 = time.perf_counter()
    for t in ts: t.start()
    for t in ts: t.join()
    return time.perf_counter() - t0
print("ready", flush=True)
import sys
SELF = len(sys.argv) > 1  # trace itself (as giltrace run / giltrace.start() would), alternating rounds
n = 0
while True:
    n += 1
    if SELF:
        import giltrace
        if n % 2 == 0:
            tr = giltrace.start(sys.argv[1]); on = time.monotonic_ns()
        elif n > 1:
            giltrace.stop(load=False); print(json.dumps({"kind": "window", "start": on, "end": time.monotonic_ns()}), flush=True)
    a = time.monotonic_ns(); rt = roundtrips(300_000); b = time.monotonic_ns()
    print(json.dumps({"kind": "roundtrip", "start": a, "end": b, "value": rt}), flush=True)
    a = time.monotonic_ns(); w = two_cpu(1_500_000); b = time.monotonic_ns()
    print(json.dumps({"kind": "cpu2", "start": a, "end": b, "value": w}), flush=True)
'''


def start(source: str, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.Popen([sys.executable, "-c", source] + list(args), stdout=subprocess.PIPE, text=True, bufsize=1, env=env)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def collect(proc: subprocess.Popen, out: list) -> threading.Thread:
    def read() -> None:
        for line in proc.stdout:
            out.append(line)

    t = threading.Thread(target=read, daemon=True)
    t.start()
    return t


def worst_late(lines: list, a: int, b: int) -> float:
    late = [int(l.split()[2]) for l in lines if l.startswith("late ") and a <= int(l.split()[1]) <= b + 50_000_000]
    return max(late, default=0) / 1e6


def stop_times(n: int) -> dict:
    proc = start(TICKER)
    lines: list = []
    collect(proc, lines)
    attach_ms, safe_ms, detach_ms, late_attach, late_detach, detach_rt, strategy = [], [], [], [], [], [], ""
    try:
        time.sleep(1.0)
        for _ in range(n):
            s = Session(proc.pid)
            a = time.monotonic_ns()
            s.start()
            b = time.monotonic_ns()
            time.sleep(0.5)
            c = time.monotonic_ns()
            s.stop()
            d = time.monotonic_ns()
            s.close()
            stops = s.injection.stops_ms
            strategy = s.injection.strategy
            attach_ms.append(sum(stops))
            # ptrace: [each safe-point stop..., the detach]; gdb: [attach, each safe-point stop...]
            safe_ms.append(sum(stops[:-1]) if strategy == "ptrace" else stops[-1])
            detach_ms.append(stops[-1] if strategy == "ptrace" else 0.0)
            detach_rt.append((d - c) / 1e6)
            time.sleep(0.3)
            late_attach.append(worst_late(lines, a, b))
            late_detach.append(worst_late(lines, c, d))
    finally:
        proc.kill()
        proc.wait()
    med = statistics.median
    return {
        "strategy": strategy,
        "attaches": n,
        "stopped_per_attach_ms_median": med(attach_ms),
        "stopped_per_attach_ms_max": max(attach_ms),
        "of_which_at_the_safe_point_ms_median": med(safe_ms),
        "of_which_at_the_safe_point_ms_max": max(safe_ms),
        "of_which_injector_detach_ms_median": med(detach_ms),
        "of_which_injector_detach_ms_max": max(detach_ms),
        "ticker_worst_late_in_attach_ms_median": med(late_attach),
        "ticker_worst_late_in_attach_ms_max": max(late_attach),
        "detach_ptrace_stop_ms": 0.0,
        "detach_round_trip_ms_median": med(detach_rt),
        "detach_round_trip_ms_max": max(detach_rt),
        "ticker_worst_late_in_detach_ms_median": med(late_detach),
    }


def overhead(cycles: int, on_s: float = 4.0, off_s: float = 4.0, self_traced: bool = False) -> dict:
    """Attached (the bench attaches and detaches), or self-traced: the target
    starts and stops its own trace every other round (a giltrace run trace)."""
    lines: list = []
    windows = []
    if self_traced:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            proc = start(ROUNDS, os.path.join(tmp, "self.gtr"))
            collect(proc, lines)
            time.sleep(cycles * (on_s + off_s))
            proc.kill()
            proc.wait()
        windows = [(r["start"], r["end"]) for r in map(json.loads, (l for l in lines if l.startswith("{"))) if r["kind"] == "window"]
    else:
        proc = start(ROUNDS)
        collect(proc, lines)
        try:
            time.sleep(off_s)
            for _ in range(cycles):
                with Session(proc.pid) as s:
                    a = time.monotonic_ns()
                    time.sleep(on_s)
                    b = time.monotonic_ns()
                    s.stop()
                windows.append((a, b))
                time.sleep(off_s)
        finally:
            proc.kill()
            proc.wait()
    rounds = [json.loads(l) for l in lines if l.startswith("{")]
    out = {}
    for kind in ("roundtrip", "cpu2"):
        rs = [r for r in rounds if r["kind"] == kind]
        state = []
        for r in rs:
            inside = any(a <= r["start"] and r["end"] <= b for a, b in windows)
            outside = all(r["end"] < a or r["start"] > b for a, b in windows)
            state.append("on" if inside else ("off" if outside else "mixed"))
        ratios = []
        for i, r in enumerate(rs):
            if state[i] != "on":
                continue
            near = [rs[j]["value"] for j in (i - 1, i + 1, i - 2, i + 2) if 0 <= j < len(rs) and state[j] == "off"]
            if near:
                ratios.append(r["value"] / near[0])
        base = [r["value"] for r, s in zip(rs, state) if s == "off"]
        out[kind] = {
            "pairs": len(ratios),
            "median_ratio": statistics.median(ratios) if ratios else None,
            "untraced_median": statistics.median(base) if base else None,
        }
    rt = out["roundtrip"]
    if rt["median_ratio"] and rt["untraced_median"]:
        rt["ns_added_per_transition"] = (rt["median_ratio"] - 1) * rt["untraced_median"] / 2  # a round trip: drop + take
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--attaches", type=int, default=20)
    ap.add_argument("--cycles", type=int, default=6)
    args = ap.parse_args()
    result = {"python": sys.version.split()[0], "stop_times": stop_times(args.attaches)}
    if args.cycles > 0:
        result["overhead_attached"] = overhead(args.cycles)
        result["overhead_self_traced"] = overhead(args.cycles, self_traced=True)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
