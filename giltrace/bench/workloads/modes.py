"""Running a cell's workers: serially, as threads, or as processes.

Each worker reports what it did and where: its role, OS ids, allowed CPUs
(to prove the pinning reached it), the CPU it last ran on, and its wall time.
"""

from __future__ import absolute_import, division, print_function

import multiprocessing
import os
import threading

if __package__:  # imported as giltrace.bench.workloads.modes
    from . import gtrace, kernels, plan, procinfo
else:  # run from this directory as a script (child.py)
    import gtrace
    import kernels
    import plan
    import procinfo


def measured(work):
    """Run ``work()``; its value, wall time and CPU times (this process and
    its waited-for children, plus this process alone)."""
    user0, sys0 = procinfo.cpu_times()
    self_user0, self_sys0 = procinfo.own_cpu_times()
    start = procinfo.clock()
    value = work()
    wall = procinfo.clock() - start
    user1, sys1 = procinfo.cpu_times()
    self_user1, self_sys1 = procinfo.own_cpu_times()
    return {
        "value": value,
        "wall_s": wall,
        "user_s": user1 - user0,
        "sys_s": sys1 - sys0,
        "self_user_s": self_user1 - self_user0,
        "self_sys_s": self_sys1 - self_sys0,
    }


def do_work(spec, path, block):
    """One worker's share of the work, and its report."""
    start = procinfo.clock()
    if spec["kind"] == "cpu":
        kernels.count(spec["amount"])
    else:
        kernels.io_loop(path, spec["amount"], block, spec["sync"])
    return {
        "role": spec["role"],
        "kind": spec["kind"],
        "amount": spec["amount"],
        "pid": os.getpid(),
        "native_id": procinfo.native_id(),
        "affinity": procinfo.allowed_cpus(),
        "last_cpu": procinfo.last_cpu(),
        "wall_s": procinfo.clock() - start,
    }


def run_serial(specs, paths, block, trace_path):
    """The N parts one after another in the main thread."""
    kinds = set(spec["kind"] for spec in specs)
    # Named after what it does, so traces find io work by its role (plan.role_kind).
    threading.current_thread().name = plan.role(kinds.pop() if len(kinds) == 1 else plan.MIXED, "serial")

    def work():
        return [do_work(spec, path, block) for spec, path in zip(specs, paths)]

    return gtrace.run_traced(trace_path, lambda: measured(work))


def run_threads(specs, paths, block, trace_path):
    """N threading.Threads, named by role; the main thread only waits."""
    reports = [None] * len(specs)
    errors = []

    def target(i):
        try:
            reports[i] = do_work(specs[i], paths[i], block)
        except Exception as exc:
            errors.append("%s: %s: %s" % (specs[i]["role"], type(exc).__name__, exc))

    def work():
        threads = [threading.Thread(target=target, args=(i,), name=spec["role"]) for i, spec in enumerate(specs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()  # no timeout: blocks without the GIL on 2.7 and 3.x
        return reports

    result, trace = gtrace.run_traced(trace_path, lambda: measured(work))
    if errors:
        raise RuntimeError("; ".join(errors))
    return result, trace


def _process_main(spec, path, block, trace_path, queue):
    """Body of one worker process: work (traced if asked), then report."""
    threading.current_thread().name = spec["role"]
    try:
        report, trace = gtrace.run_traced(trace_path, lambda: do_work(spec, path, block))
        report["user_s"], report["sys_s"] = procinfo.own_cpu_times()
        report["trace"] = trace
        queue.put(report)
    except Exception as exc:
        queue.put({"role": spec["role"], "error": "%s: %s" % (type(exc).__name__, exc)})


def mp_context(start_method):
    """multiprocessing (or a context of it) for ``start_method`` (None: default)."""
    if start_method is None:
        return multiprocessing
    if not hasattr(multiprocessing, "get_context"):  # Python 2.7: fork only
        if start_method != "fork":
            raise ValueError("this Python only has the 'fork' start method")
        return multiprocessing
    return multiprocessing.get_context(start_method)


def start_method_of(context):
    getter = getattr(context, "get_start_method", None)
    return getter() if getter is not None else "fork"


def collect_reports(queue, procs):
    """One report per process; fails instead of hanging if one died silently."""
    try:
        from queue import Empty
    except ImportError:  # Python 2.7
        from Queue import Empty
    reports = []
    while len(reports) < len(procs):
        try:
            reports.append(queue.get(timeout=1.0))
        except Empty:
            dead = [p.name for p in procs if p.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError("worker process died without reporting: " + ", ".join(dead))
    return reports


def run_procs(specs, paths, block, trace_path, start_method):
    """N multiprocessing processes; each may trace itself to its own file.

    Workers send their CPU times back, because their parent's
    RUSAGE_CHILDREN misses them under the forkserver start method.
    Returns (measured result, trace record) like the other modes.
    """
    context = mp_context(start_method)
    queue = context.Queue()
    procs = [
        context.Process(
            target=_process_main, name=spec["role"], args=(spec, paths[i], block, gtrace.worker_trace_path(trace_path, i), queue)
        )
        for i, spec in enumerate(specs)
    ]

    def work():
        for p in procs:
            p.start()
        # Drain before joining: a child blocks at exit until its queue data is read.
        collected = collect_reports(queue, procs)
        for p in procs:
            p.join()
        return collected

    result = measured(work)
    reports = result["value"]
    errors = [r["error"] for r in reports if "error" in r]
    errors += ["%s exited with %s" % (p.name, p.exitcode) for p in procs if p.exitcode != 0]
    if errors:
        raise RuntimeError("; ".join(errors))
    roles = [spec["role"] for spec in specs]
    reports.sort(key=lambda r: roles.index(r["role"]))
    # Worker CPU times come from the workers (see above), not RUSAGE_CHILDREN.
    result["user_s"] = result["self_user_s"] + sum(r.pop("user_s") for r in reports)
    result["sys_s"] = result["self_sys_s"] + sum(r.pop("sys_s") for r in reports)
    traces = [r.pop("trace") for r in reports]
    trace = {
        "requested": trace_path is not None,
        "enabled": bool(traces) and all(t["enabled"] for t in traces),
        "reason": next((t["reason"] for t in traces if t["reason"]), None),
        "files": [f for t in traces for f in t["files"]],
    }
    return result, trace
