"""The metrics mode's cost, and what it reports, beside a full trace and
gilknocker (its default 1 ms polling and 100 us), in one process run.

    python benchmarks/bench_metrics.py [--quick] [--json out.json]

Same workloads as bench_overhead.py (paired runs, medians of per-pair
ratios): ns added per GIL transition (one thread's round trips, timed by its
CPU clock), 2 CPU-bound threads, GIL ping-pong.  Then, on one contended
run (2 CPU threads and an I/O thread), the contention each tool reports
against the exact trace's.
Targets (issue #11): <= 20 ns/transition, <= 0.5 % ping-pong, nothing measurable on 2 CPU threads.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import giltrace  # noqa: E402
from bench_overhead import cpu_threads, host, pingpong, report, roundtrip  # noqa: E402

TMP = tempfile.mkdtemp(prefix="giltrace-bench-metrics-")


def knocker(interval_us: int):
    from gilknocker import KnockKnock

    @contextlib.contextmanager
    def ctx():
        k = KnockKnock(interval_us)
        k.start()
        try:
            yield k
        finally:
            k.stop()

    return ctx


MODES = {
    "metrics": giltrace.monitor,
    "trace": lambda: giltrace.trace(os.path.join(TMP, "b.gtr")),
}


def paired(fn, ctx_factory, pairs):
    base, tr = [], []
    fn()
    for i in range(pairs):
        order = (False, True) if i % 2 == 0 else (True, False)
        for on in order:
            if on:
                with ctx_factory():
                    tr.append(fn())
            else:
                base.append(fn())
    return base, tr


def ratio(base, tr):
    return statistics.median(t / b for b, t in zip(base, tr))


def contention_run(seconds: float):
    """2 CPU threads and a thread that sleeps 1 ms in a loop, under all
    three at once: each tool's contention figure, and the trace's truth."""
    stop = threading.Event()

    def cpu():
        while not stop.is_set():
            n = 10000
            while n:
                n -= 1

    def sleeper():
        while not stop.is_set():
            time.sleep(0.001)

    out = {}
    from gilknocker import KnockKnock

    k = KnockKnock(1000)
    with giltrace.monitor() as mon, giltrace.trace(os.path.join(TMP, "c.gtr")) as tr:
        k.start()
        ts = [threading.Thread(target=cpu, name="cpu-%d" % i) for i in range(2)] + [threading.Thread(target=sleeper, name="io")]
        for t in ts:
            t.start()
        time.sleep(seconds)
        stop.set()
        for t in ts:
            t.join()
        k.stop()
        m = mon.read()
    trace = tr.result
    from giltrace.analysis import occupancy  # noqa: F401  (the same definition the diagnosis uses)

    waits = trace.intervals()
    waits = waits[(waits["state"] == "wait") & waits["contended"]] if "contended" in waits else waits[waits["state"] == "wait"]
    # time during which at least one thread was blocked waiting: union of the blocking waits
    spans = sorted(zip(waits["start_ns"], waits["end_ns"]))
    covered, cur_s, cur_e = 0, None, None
    for s, e in spans:
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                covered += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        covered += cur_e - cur_s
    out["trace_contention"] = covered / (trace.stop_ns - trace.start_ns)
    out["metrics_contention"] = m.contention
    out["gilknocker_1ms_contention"] = k.contention_metric
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    q = args.quick
    pairs = 6 if q else 16
    about = host()
    print("host: %(cpu)s, %(cpus)d CPUs, clocksource %(clocksource)s, time stamps %(timestamps)s, CPython %(python)s" % about)
    res = {}
    n = 50_000 if q else 300_000
    contexts = dict(MODES)
    try:
        contexts["gilknocker_1ms"] = knocker(1000)
        contexts["gilknocker_100us"] = knocker(100)
    except ImportError:
        print("gilknocker is not installed: compared with the trace only")
    for name, ctx in contexts.items():
        base, tr = paired(roundtrip(n), ctx, pairs)
        res["%s_ns_added_per_transition" % name] = 1e9 * statistics.median(t - b for b, t in zip(base, tr)) / n / 2
        base, tr = paired(cpu_threads(2_000_000 if q else 20_000_000, 2), ctx, pairs)
        res["%s_cpu2_overhead_pct" % name] = 100 * (ratio(base, tr) - 1)
        base, tr = paired(pingpong(20_000 if q else 30_000), ctx, pairs)
        res["%s_pingpong_overhead_pct" % name] = 100 * (ratio(base, tr) - 1)
    if "gilknocker_1ms" in contexts:
        res.update(contention_run(1.0 if q else 3.0))
    report(res, about, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
