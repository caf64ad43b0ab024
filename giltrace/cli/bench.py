"""``giltrace bench``: the threading experiments, printed in the study's layout.

    giltrace bench --workloads cpu,io,mix --cores 1,2 --n 1,2,4 --repeat 3 \\
        --python /path/to/python2.7 --python /path/to/python3.11 -o out/results

Bad input is reported in one line before anything runs or is written.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

from ..errors import UsageError
from ..bench import config as cfg
from ..bench.output import check_output_dir, save_results
from ..bench.runner import run_bench
from ..bench.workloads import plan

NAME = "bench"
HELP = "Run the threading experiments (serial vs threads vs processes on pinned cores) and print their tables."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    grid = parser.add_argument_group("the grid")
    grid.add_argument(
        "--workloads",
        default="cpu,io,mix",
        metavar="LIST",
        help="comma-separated, from: %s (default: cpu,io,mix)" % ", ".join(cfg.ALL_WORKLOADS),
    )
    grid.add_argument(
        "--cores",
        default="1,2,4,8",
        metavar="LIST",
        help="CPUs per cell; more than this machine has are shown as unavailable (default: 1,2,4,8)",
    )
    grid.add_argument("--n", default="1,2,4", metavar="LIST", help="workers per cell (default: 1,2,4)")
    grid.add_argument("--modes", default="serial,thread,procs", metavar="LIST", help="serial, thread, procs (default: all three)")
    grid.add_argument(
        "--competitors", default="0,1,2", metavar="LIST", help="latency workloads: CPU competitors beside the I/O thread (default: 0,1,2)"
    )
    grid.add_argument("--repeat", type=int, default=3, help="runs per cell (default: 3)")
    grid.add_argument(
        "--python",
        action="append",
        default=[],
        metavar="PATH",
        help="an interpreter to run the grid under; repeat for several (default: this one)",
    )

    sizes = parser.add_argument_group("workload sizes (defaults: ~2 s serial on a 2-core EPYC VM, Python 3.11)")
    sizes.add_argument(
        "--load",
        type=int,
        default=plan.DEFAULT_LOAD,
        help="cpu: total counter iterations (default: %d; the study used 10^9)" % plan.DEFAULT_LOAD,
    )
    sizes.add_argument(
        "--io-ops", type=int, default=plan.DEFAULT_IO_OPS, help="io, mix: total page-cache operations (default: %d)" % plan.DEFAULT_IO_OPS
    )
    sizes.add_argument(
        "--sync-ops",
        type=int,
        default=plan.DEFAULT_SYNC_OPS,
        help="io-sync, mix-sync: total fsync operations (default: %d)" % plan.DEFAULT_SYNC_OPS,
    )
    sizes.add_argument(
        "--block", type=int, default=plan.DEFAULT_BLOCK, help="bytes written and read back per operation (default: %d)" % plan.DEFAULT_BLOCK
    )
    sizes.add_argument("--duration", type=float, default=2.0, help="latency workloads: seconds of I/O per cell (default: 2)")

    run = parser.add_argument_group("running")
    run.add_argument("--trace", action="store_true", help="record a GIL trace per cell and add contention figures to the tables")
    run.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        default=None,
        help="new directory for runs.csv, table.csv, results.json, tables.txt, traces/ (default: out/bench-DATE-TIME)",
    )
    run.add_argument(
        "--start-method",
        choices=cfg.START_METHODS,
        default=None,
        help="multiprocessing start method for procs cells (default: the platform's)",
    )
    run.add_argument(
        "--tmpdir", default=None, metavar="DIR", help="where workers put their scratch files; must be on a disk for fsync to mean anything"
    )
    run.add_argument("--timeout", type=float, default=900.0, help="seconds before a cell is killed (default: 900)")
    run.add_argument("--ranges", action="store_true", help="show min-max over repeats beside each median")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace) -> cfg.BenchConfig:
    """The BenchConfig for parsed arguments; UsageError for bad lists."""
    config = cfg.BenchConfig(
        workloads=cfg.parse_name_list(args.workloads, "--workloads", cfg.ALL_WORKLOADS),
        cores=cfg.parse_int_list(args.cores, "--cores", 1),
        ns=cfg.parse_int_list(args.n, "--n", 1),
        modes=cfg.parse_name_list(args.modes, "--modes", cfg.MODES),
        competitors=cfg.parse_int_list(args.competitors, "--competitors", 0),
        repeat=args.repeat,
        load=args.load,
        io_ops=args.io_ops,
        sync_ops=args.sync_ops,
        block=args.block,
        duration=args.duration,
        pythons=list(args.python),
        trace=args.trace,
        start_method=args.start_method,
        tmpdir=args.tmpdir,
        timeout=args.timeout,
    )
    cfg.validate(config)
    return config


def _writable_ancestor(path: str) -> bool:
    """Whether ``path``'s nearest existing ancestor lets us create it."""
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    return os.path.isdir(parent) and os.access(parent, os.W_OK)


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    out_dir = args.output or os.path.join("out", time.strftime("bench-%Y%m%d-%H%M%S"))
    if os.path.exists(out_dir):
        check_output_dir(out_dir)
    elif not _writable_ancestor(out_dir):
        raise UsageError("-o %s: cannot be created here" % out_dir)
    trace_dir = tempfile.mkdtemp(prefix="giltrace-bench-traces-") if config.trace else None
    try:
        result = run_bench(config, trace_dir=trace_dir, progress=not args.no_progress)
        rendered = result.render(show_range=args.ranges)
        sys.stdout.write(rendered)
        os.makedirs(os.path.dirname(os.path.abspath(out_dir)), exist_ok=True)
        save_results(result, out_dir, rendered)
    except KeyboardInterrupt:
        sys.stderr.write("giltrace bench: interrupted; nothing saved\n")
        return 130
    finally:
        if trace_dir:
            shutil.rmtree(trace_dir, ignore_errors=True)
    failed = int((result.runs["status"] == "failed").sum())
    sys.stdout.write("\nsaved to %s%s\n" % (out_dir, "; %d run(s) failed, see the tables' notes" % failed if failed else ""))
    return 1 if failed else 0
