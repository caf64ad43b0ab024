"""Tracer overhead, paired untraced/traced runs in one process (ratios, medians).

    python benchmarks/bench_overhead.py [--quick] [--json out.json]

1. roundtrip : ns added per GIL transition (one drop + one take per cffi call)
2. cpu2      : wall time of 2 CPU-bound threads
3. pingpong  : 2 threads doing short GIL-releasing calls (~100k+ calls/s in all)
4. lost      : events lost at the default buffer size on a 10 s ping-pong run
5. sampler   : CPU cost of the writer/sampler thread at the default 1 ms period:
               GIL idle, GIL held by one thread (both: it backs off), and GIL held
               while another thread waits for it (full rate)
6. cpu_state : what CPU state beside GIL state adds to the same trace: cpu2's
               wall time, and the writer's CPU with 8 sleeping threads (9 reads
               of /proc per 5 ms sample period)
Targets (issue 15, on every host): <= 40 ns/transition with code locations,
<= 0.5 % cpu2, <= 3 % pingpong, 0 lost, sampler <= 0.5 % of a core in every state.
The host (CPU model, kernel clocksource, the tracer's time stamps) is printed
with the figures: they differ between hosts (benchmarks/README.md keeps one
table per host).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import giltrace  # noqa: E402
from giltrace._binding import native  # noqa: E402

ffi, lib = native()
TMP = tempfile.mkdtemp(prefix="giltrace-bench-")


def traced(fn, **opts):
    tr = giltrace.Tracer(os.path.join(TMP, "b.gtr"), **opts)
    tr.start()
    try:
        return fn()
    finally:
        tr.stop(load=False)
        traced.last_stats = tr.stats


def ratio(base, tr):
    """Median of per-pair ratios: adjacent runs share the machine's state, so
    drift and noise from elsewhere cancel better than in a ratio of medians."""
    return statistics.median(t / b for b, t in zip(base, tr))


def paired(fn, pairs, base_opts=None, opts=None):
    """Alternate runs of ``fn`` under ``base_opts`` (None: untraced) and
    traced with ``opts``; return the two lists of results."""

    def one(o):
        return fn() if o is None else traced(fn, **o)

    base, tr = [], []
    fn()  # warm-up
    for i in range(pairs):
        if i % 2:
            tr.append(one(opts or {}))
            base.append(one(base_opts))
        else:
            base.append(one(base_opts))
            tr.append(one(opts or {}))
    return base, tr


def timed(body):
    def run():
        t0 = time.perf_counter()
        body()
        return time.perf_counter() - t0

    return run


def roundtrip(n):
    """One thread, n GIL-releasing calls (a drop and a take each), timed by
    the thread's own CPU clock: time the VM gave to other processes does not
    count, so the difference is the hooks' cost even on a busy machine."""
    noop = lib.gt_test_noop

    def run():
        t0 = time.thread_time()
        for _ in range(n):
            noop()
        return time.thread_time() - t0

    return run


def host() -> dict:
    """What the figures depend on: CPU, the kernel's clocksource, the tracer's time stamps."""
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    except OSError:
        pass
    try:
        with open("/sys/devices/system/clocksource/clocksource0/current_clocksource") as f:
            clocksource = f.read().strip()
    except OSError:
        clocksource = "?"
    import platform

    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "clocksource": clocksource,
        "timestamps": "tsc" if lib.gt_clock_is_tsc() else "clock_gettime",
        "python": platform.python_version(),
    }


def in_threads(worker, k):
    """A timed run of `worker` in k threads at once."""

    def body():
        ts = [threading.Thread(target=worker) for _ in range(k)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    return timed(body)


def cpu_threads(count, k):
    def cpu():
        n = count
        while n:
            n -= 1

    return in_threads(cpu, k)


def pingpong(calls, k=2, spin_ns=15000):
    spin = lib.gt_test_spin_ns

    def worker():
        for _ in range(calls):
            spin(spin_ns)  # 15 us of C work with the GIL released: ~100k calls/s in all

    return in_threads(worker, k)


def sampler_cost(seconds):
    def body():
        c0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        time.sleep(seconds)
        c1 = resource.getrusage(resource.RUSAGE_SELF)
        wall = time.perf_counter() - t0
        return (c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime) / wall

    return body


def sleepers_cost(seconds, k):
    """CPU per wall second of a process whose k threads sleep: with the trace
    on, what its writer thread costs (with cpu_state: k + 1 reads of
    /proc/self/task/TID/schedstat per sample period)."""

    def body():
        ths = [threading.Thread(target=time.sleep, args=(seconds,)) for _ in range(k)]
        c0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        for th in ths:
            th.start()
        for th in ths:
            th.join()
        c1 = resource.getrusage(resource.RUSAGE_SELF)
        return (c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime) / (time.perf_counter() - t0)

    return body


def sampler_busy_cost(seconds, waiter=False):
    """CPU of everything but the working threads: a thread that keeps the GIL
    (in C) all along, and with ``waiter`` a second thread that keeps asking for
    it -- the case where the sampler runs at full rate."""

    def body():
        cpu = {}
        end = time.monotonic() + seconds

        def holder():
            t0 = time.thread_time()
            while time.monotonic() < end:
                lib.gt_test_hold_gil_ns(50_000_000)
            cpu["holder"] = time.thread_time() - t0

        def asker():
            t0 = time.thread_time()
            while time.monotonic() < end:
                pass
            cpu["asker"] = time.thread_time() - t0

        c0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        ths = [threading.Thread(target=holder)] + ([threading.Thread(target=asker)] if waiter else [])
        for th in ths:
            th.start()
        for th in ths:
            th.join()
        c1 = resource.getrusage(resource.RUSAGE_SELF)
        wall = time.perf_counter() - t0
        total = c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime
        return (total - sum(cpu.values())) / wall

    return body


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller runs (CI smoke)")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    q = args.quick
    pairs = 4 if q else 10
    res = {}
    about = host()
    print("host: %(cpu)s, %(cpus)d CPUs, clocksource %(clocksource)s, time stamps %(timestamps)s, CPython %(python)s" % about)

    n = 50_000 if q else 300_000
    base, tr = paired(roundtrip(n), 2 * pairs)
    b, t = statistics.median(base), statistics.median(tr)
    res["roundtrip_ns_untraced"] = 1e9 * b / n
    res["roundtrip_ns_traced"] = 1e9 * t / n
    # the median of per-pair differences: adjacent runs share the machine's state
    res["ns_added_per_transition"] = 1e9 * statistics.median(y - x for x, y in zip(base, tr)) / n / 2

    base, tr = paired(cpu_threads(2_000_000 if q else 30_000_000, 2), 2 * pairs)
    res["cpu2_untraced_s"] = statistics.median(base)
    res["cpu2_overhead_pct"] = 100 * (ratio(base, tr) - 1)

    calls = 20_000 if q else 30_000
    base, tr = paired(pingpong(calls), 3 * pairs)
    res["pingpong_calls_per_s"] = 2 * calls / statistics.median(base)
    res["pingpong_overhead_pct"] = 100 * (ratio(base, tr) - 1)

    # Losses: a 10 s ping-pong run at the default buffer size.
    seconds = 2 if q else 10
    rate = res["pingpong_calls_per_s"] / 2
    traced(pingpong(int(rate * seconds)))
    st = traced.last_stats
    res["lost_run_s"] = seconds
    res["lost_run_events"] = st["events_written"]
    res["lost_run_events_lost"] = st["events_lost"]

    base, tr = paired(sampler_cost(1.0 if q else 3.0), 2 if q else 4)
    res["sampler_idle_core_pct"] = 100 * (statistics.median(tr) - statistics.median(base))
    base, tr = paired(sampler_busy_cost(1.0 if q else 3.0), 2 if q else 4)
    res["sampler_held_core_pct"] = 100 * (statistics.median(tr) - statistics.median(base))
    base, tr = paired(sampler_busy_cost(1.0 if q else 3.0, waiter=True), 2 if q else 4)
    res["sampler_contended_core_pct"] = 100 * (statistics.median(tr) - statistics.median(base))

    # CPU state beside GIL state (cpu_state=True) against the same trace without it.
    cpu_state = {"base_opts": {}, "opts": {"cpu_state": True}}
    base, tr = paired(cpu_threads(2_000_000 if q else 30_000_000, 2), 2 * pairs, **cpu_state)
    res["cpu_state_cpu2_overhead_pct"] = 100 * (ratio(base, tr) - 1)
    base, tr = paired(sleepers_cost(1.0 if q else 3.0, 8), 2 if q else 4, **cpu_state)
    res["cpu_state_8_sleepers_core_pct"] = 100 * (statistics.median(tr) - statistics.median(base))

    report(res, about, args.json)
    return 0


def report(res: dict, about: dict, json_path: "str | None") -> None:
    """Print the figures one per line; with ``json_path``, also write them and the host there."""
    width = max(map(len, res))
    for k, v in res.items():
        print("%-*s %12.3f" % (width, k, v) if isinstance(v, float) else "%-*s %12d" % (width, k, v))
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"host": about, **res}, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
