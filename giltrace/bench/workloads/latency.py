"""The convoy experiment: one I/O thread beside K CPU-bound competitors.

In the spirit of CPython's old ccbench latency test.  Thread "io-0" does I/O
operations back to back for a fixed time and times each one, while K
counting competitors ("cpu-0", ...) run as threads of the same process
(they share its GIL) or, as a control, as separate processes (they compete
for CPUs but not for the GIL).
"""

from __future__ import absolute_import, division, print_function

import os
import threading
import time

if __package__:
    from . import gtrace, kernels, modes, plan, procinfo
else:
    import gtrace
    import kernels
    import modes
    import plan
    import procinfo

CHUNK = 100 * 1000  # competitor iterations between stop checks (~1-2 ms)
WARMUP_S = 0.2  # competitors run alone first, so the I/O thread meets them busy
IO_ROLE = plan.role("io", 0)


def _identity(role):
    return {
        "role": role,
        "pid": os.getpid(),
        "native_id": procinfo.native_id(),
        "affinity": procinfo.allowed_cpus(),
        "last_cpu": procinfo.last_cpu(),
    }


def _compete(role, stopped):
    start = procinfo.clock()
    iters = kernels.spin(CHUNK, stopped)
    report = _identity(role)
    report.update({"kind": "cpu", "iters": iters, "wall_s": procinfo.clock() - start})
    return report


def _competitor_process(role, stop_event, queue):
    threading.current_thread().name = role
    report = _compete(role, stop_event.is_set)
    report["user_s"], report["sys_s"] = procinfo.own_cpu_times()
    queue.put(report)


def _summary(latencies, elapsed):
    ordered = sorted(latencies)
    ops = len(ordered)
    return {
        "ops": ops,
        "duration_s": elapsed,
        "ops_per_s": ops / elapsed if elapsed > 0 else None,
        "p50_s": procinfo.percentile(ordered, 50),
        "p99_s": procinfo.percentile(ordered, 99),
        "mean_s": sum(ordered) / ops if ops else None,
        "max_s": ordered[-1] if ops else None,
    }


def run_latency(k, form, path, block, sync, duration, trace_path, start_method):
    """Returns (measured result with worker reports as its value, the I/O
    thread's latency summary, trace record)."""
    io_report = {}
    thread_competitors = []
    stop = []  # thread competitors stop once this is non-empty

    def io_target():
        f = kernels.BlockFile(path, block, sync)
        try:
            start = procinfo.clock()
            latencies = f.run_timed(duration, procinfo.clock)
            elapsed = procinfo.clock() - start
        finally:
            f.close()
        io_report.update(_identity(IO_ROLE))
        io_report.update({"kind": "io", "wall_s": elapsed, "summary": _summary(latencies, elapsed)})

    def thread_target(i):
        thread_competitors[i] = _compete(plan.role("cpu", i), lambda: bool(stop))

    # Competitor processes start before any thread or trace exists (fork safety).
    procs, queue, stop_event = [], None, None
    if form == "procs" and k:
        context = modes.mp_context(start_method)
        queue, stop_event = context.Queue(), context.Event()
        procs = [
            context.Process(target=_competitor_process, name=plan.role("cpu", i), args=(plan.role("cpu", i), stop_event, queue))
            for i in range(k)
        ]
        for p in procs:
            p.start()

    def body():
        threads = []
        try:
            if form == "thread":
                thread_competitors.extend([None] * k)
                threads = [threading.Thread(target=thread_target, args=(i,), name=plan.role("cpu", i)) for i in range(k)]
                for t in threads:
                    t.start()
            time.sleep(WARMUP_S)
            io_thread = threading.Thread(target=io_target, name=IO_ROLE)
            io_thread.start()
            io_thread.join()
        finally:  # competitors must stop even if the I/O thread failed
            stop.append(True)
            if stop_event is not None:
                stop_event.set()
            for t in threads:
                t.join()

    try:
        result, trace = gtrace.run_traced(trace_path, lambda: modes.measured(body))
    finally:  # also if the trace failed to start or stop
        if stop_event is not None:
            stop_event.set()
    competitors = thread_competitors
    if procs:
        competitors = modes.collect_reports(queue, procs)
        for p in procs:
            p.join()
        # Their CPU times, as in modes.run_procs: reported by themselves.
        result["user_s"] = result["self_user_s"] + sum(c.pop("user_s") for c in competitors)
        result["sys_s"] = result["self_sys_s"] + sum(c.pop("sys_s") for c in competitors)
    if "summary" not in io_report or None in competitors:
        raise RuntimeError("the I/O thread or a competitor failed (see above)")
    summary = io_report.pop("summary")
    summary["competitors"] = k
    summary["form"] = form if k else "alone"
    summary["competitor_iters_per_s"] = sum(c["iters"] / c["wall_s"] for c in competitors if c["wall_s"] > 0)
    result["value"] = [io_report] + list(competitors)
    return result, summary, trace
