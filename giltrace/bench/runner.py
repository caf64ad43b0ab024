"""The experiment runner: a grid of pinned cells, one row per run.

from giltrace.bench import BenchConfig, run_bench
result = run_bench(BenchConfig(workloads=["cpu"], cores=[1, 2], ns=[1, 2], load=10**7))
result.runs    # one row per run (execute.COLUMNS)
result.table   # one row per cell: median and min-max over repeats
print(result.render())
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import pandas as pd

from .. import interpreters as versions
from ..cpus import format_cpus
from ..errors import UsageError
from ..render.bench_tables import render_text
from . import aggregate, cells, execute, machine, pinning, view
from .config import BenchConfig, validate
from .interpreters import Interpreter, resolve
from .progress import Progress
from .workloads import registry

TRACEABLE = versions.traceable_text()  # "2.7 or 3.9-3.13"
# Above this many GIL events per page-cache I/O cell a trace gets large
# (24 bytes each on disk, more in memory once loaded).
TRACE_EVENTS_WARNING = 2_000_000
# A lone page-cache I/O thread's pace on the reference machine.
PAGE_CACHE_OPS_PER_S = 500_000
# 2.7 drops and retakes the GIL every check interval, ~34 counter iterations:
# 2 events each (measured: 1.19M events for LOAD 2*10^7, 2.7.18).
OLD_GIL_EVENTS_PER_COUNT = 0.06


@dataclass
class BenchResult:
    config: BenchConfig
    pythons: List[Interpreter]
    runs: pd.DataFrame
    table: pd.DataFrame
    machine: Dict[str, Any]
    messages: List[str] = field(default_factory=list)  # said up front, kept for the record
    trace_dir: Optional[str] = None  # where this run's trace files are

    def render(self, show_range: bool = False) -> str:
        return render(self, show_range)


def upfront_messages(config: BenchConfig, pythons: List[Interpreter], usable: List[int]) -> List[str]:
    """What the user should know before a long run starts."""
    messages = []
    missing = [c for c in config.cores if pinning.unavailable_reason(c, usable)]
    if missing:
        messages.append(
            "cores %s: unavailable, this process may use only %d CPUs (%s); "
            "those rows are marked in the tables and not run" % (", ".join(map(str, missing)), len(usable), format_cpus(usable))
        )
    if config.trace:
        for p in pythons:
            if not p.traceable:
                messages.append(
                    "python %s: cannot be traced (tracing needs CPython %s with the GIL); its cells run untraced" % (p.label, TRACEABLE)
                )
        io_cell_events = 8 * config.io_ops  # 4 calls per operation, a release and an acquire each
        grid_page_cache = [w for w in config.grid_workloads if registry.get(w).page_cache_io]
        if grid_page_cache and io_cell_events > TRACE_EVENTS_WARNING:
            messages.append(
                "--trace with --io-ops %d records ~%dM GIL events per io cell; a smaller --io-ops "
                "keeps traces manageable" % (config.io_ops, io_cell_events // 10**6)
            )
        counting = [w for w in config.grid_workloads if registry.get(w).workers != registry.IO]
        old_gil = [p for p in pythons if p.traceable and versions.gil_kind(p.version_tuple) == "old"]
        count_events = int(OLD_GIL_EVENTS_PER_COUNT * config.load)
        if counting and old_gil and count_events > TRACE_EVENTS_WARNING:
            messages.append(
                "--trace with python %s records ~%dM GIL events per counting cell (the old GIL is "
                "retaken every ~34 counts); a smaller --load keeps traces manageable" % (old_gil[0].label, count_events // 10**6)
            )
        latency_events = int(8 * PAGE_CACHE_OPS_PER_S * config.duration)
        latency_page_cache = [w for w in config.latency_workloads if registry.get(w).page_cache_io]
        if latency_page_cache and latency_events > TRACE_EVENTS_WARNING:
            messages.append(
                "--trace with the latency workload records up to ~%dM GIL events per cell; "
                "trace latency-sync, or shorten --duration" % (latency_events // 10**6)
            )
    if any(registry.get(w).sync for w in config.workloads):
        fs = machine.filesystem_of(config.tmpdir or tempfile.gettempdir())
        if fs["type"] in ("tmpfs", "ramfs"):
            messages.append("scratch directory is on %s: fsync costs nothing there; use --tmpdir on a disk" % fs["type"])
    return messages


def run_bench(
    config: BenchConfig,
    *,
    trace_dir: Optional[str] = None,
    progress: bool = True,
    log: Callable[[str], None] = lambda m: sys.stderr.write("giltrace bench: %s\n" % m),
) -> BenchResult:
    """Run the grid of ``config``; UsageError on bad input before anything runs.

    With ``config.trace``, trace files go to ``trace_dir`` (default: a new
    temporary directory, left for the caller: ``result.trace_dir``).
    ``log`` receives the notices given before the run starts.
    """
    validate(config)
    if config.tmpdir and not os.path.isdir(config.tmpdir):
        raise UsageError("--tmpdir %s: not a directory" % config.tmpdir)
    pythons = resolve(config.pythons)
    usable = pinning.usable_cpus()
    plan = cells.build_cells(config, pythons, usable)
    messages = upfront_messages(config, pythons, usable)
    described = machine.describe(pythons, config.tmpdir)  # before the run: its load average
    for message in messages:
        log(message)
    if config.trace and trace_dir is None:
        trace_dir = tempfile.mkdtemp(prefix="giltrace-bench-traces-")
    to_run = [c for c in plan if not c.unavailable]
    rows = [execute.run_cell(c, config, trace_dir) for c in plan if c.unavailable]
    with Progress(len(to_run), enabled=progress) as bar:
        for cell in to_run:
            bar.start_cell("%s py%s cores=%d n=%d %s #%d" % (cell.workload, cell.python.label, cell.cores, cell.n, cell.mode, cell.repeat))
            row = execute.run_cell(cell, config, trace_dir)
            if row["status"] == "failed":
                bar.write("giltrace bench: %s failed: %s" % (cell.name, row["reason"]))
            rows.append(row)
            bar.finish_cell()
    runs = pd.DataFrame(rows, columns=execute.COLUMNS)
    return BenchResult(
        config=config,
        pythons=pythons,
        runs=runs,
        table=aggregate.aggregate(runs),
        machine=described,
        messages=messages,
        trace_dir=trace_dir,
    )


def render(result: BenchResult, show_range: bool = False) -> str:
    """All tables of a result, as printed by ``giltrace bench``."""
    return render_text(view.of_result(result), show_range)
