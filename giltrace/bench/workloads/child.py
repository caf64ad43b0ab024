"""One cell of an experiment; prints one JSON line of results on stdout.

Runs as a script on any CPython 2.7-3.13, e.g.::

    python giltrace/bench/workloads/child.py --workload cpu --mode thread --n 2 --load 1000000
    python giltrace/bench/workloads/child.py --workload latency-sync --mode thread --n 1 --duration 1

For the latency workloads ``--n`` is the number K of CPU competitors and
``--mode`` says whether they are threads or processes.  The process does not
pin itself: the runner starts it with its CPU affinity already set, and it
reports the CPUs it is allowed (and each worker reports its own) as proof.
Errors: a message on stderr and exit status 1.
"""

from __future__ import absolute_import, division, print_function

import argparse
import json
import os
import shutil
import sys
import tempfile

if __package__:
    from . import latency, modes, plan, procinfo
else:
    import latency
    import modes
    import plan
    import procinfo

MODES = ("serial", "thread", "procs")


def parse_args(argv):
    p = argparse.ArgumentParser(description="Run one threading-experiment cell; print one JSON line.")
    p.add_argument("--workload", required=True, choices=plan.WORKLOADS + plan.LATENCY_WORKLOADS)
    p.add_argument("--mode", required=True, choices=MODES)
    p.add_argument("--n", type=int, default=1, help="workers (latency: CPU competitors K)")
    p.add_argument("--load", type=int, default=plan.DEFAULT_LOAD, help="total counter iterations")
    p.add_argument("--io-ops", type=int, default=plan.DEFAULT_IO_OPS, help="total page-cache I/O operations")
    p.add_argument("--sync-ops", type=int, default=plan.DEFAULT_SYNC_OPS, help="total fsync I/O operations")
    p.add_argument("--block", type=int, default=plan.DEFAULT_BLOCK, help="bytes per write and read")
    p.add_argument("--duration", type=float, default=2.0, help="latency: seconds of I/O per cell")
    p.add_argument("--start-method", default=None, help="multiprocessing start method (default: the platform's)")
    p.add_argument("--tmpdir", default=None, help="directory for the workers' scratch files")
    p.add_argument("--trace", default=None, metavar="FILE", help="record a GIL trace to FILE where possible")
    args = p.parse_args(argv)
    if args.n < (0 if args.workload in plan.LATENCY_WORKLOADS else 1):
        p.error("--n must be at least 1 (latency: 0)")
    if args.mode == "serial" and args.workload in plan.LATENCY_WORKLOADS:
        p.error("latency competitors run as 'thread' or 'procs'")
    return args


def run_grid_cell(args, paths):
    specs = plan.worker_specs(args.workload, args.n, args.load, args.io_ops, args.sync_ops)
    if args.mode == "serial":
        result, trace = modes.run_serial(specs, paths, args.block, args.trace)
    elif args.mode == "thread":
        result, trace = modes.run_threads(specs, paths, args.block, args.trace)
    else:
        result, trace = modes.run_procs(specs, paths, args.block, args.trace, args.start_method)
    return result, trace, None


def run_latency_cell(args, paths):
    sync = plan.is_sync(args.workload)
    result, summary, trace = latency.run_latency(
        args.n, args.mode, paths[0], args.block, sync, args.duration, args.trace, args.start_method
    )
    return result, trace, summary


def main(argv=None):
    args = parse_args(argv)
    is_latency = args.workload in plan.LATENCY_WORKLOADS
    workdir = tempfile.mkdtemp(prefix="giltrace-cell-", dir=args.tmpdir)
    try:
        # One scratch file per worker, made before the clock starts.
        paths = [os.path.join(workdir, "worker-%d" % i) for i in range(max(args.n, 1))]
        run = run_latency_cell if is_latency else run_grid_cell
        result, trace, summary = run(args, paths)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    out = {
        "workload": args.workload,
        "mode": args.mode,
        "n": args.n,
        "python": procinfo.python_info(),
        "pid": os.getpid(),
        "affinity": procinfo.allowed_cpus(),
        "start_method": modes.start_method_of(modes.mp_context(args.start_method)),
        "wall_s": result["wall_s"],
        "user_s": result["user_s"],
        "sys_s": result["sys_s"],
        "workers": result["value"],
        "trace": trace,
        "notes": [] if is_latency else plan.notes_for(args.workload, args.n),
        "latency": summary,
        "params": {"load": args.load, "io_ops": args.io_ops, "sync_ops": args.sync_ops, "block": args.block, "duration": args.duration},
    }
    sys.stdout.write(json.dumps(out, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as exc:  # one line for the runner's table, not a traceback
        sys.stderr.write("child failed: %s: %s\n" % (type(exc).__name__, exc))
        sys.exit(1)
