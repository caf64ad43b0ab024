"""The cells of a grid, in the order they run, and each one's command line.

Repeats are the outer loop: a slow drift of the machine (another job, a
VM neighbour) then spreads over all cells instead of skewing one of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional, Sequence

from . import pinning
from .config import BenchConfig
from .interpreters import Interpreter
from .workloads import registry

CHILD_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "workloads", "child.py")


@dataclass(frozen=True)
class Cell:
    workload: str
    python: Interpreter
    cores: int
    n: int  # workers; for latency workloads the number K of CPU competitors
    mode: str  # serial | thread | procs; latency: alone | thread | procs
    repeat: int
    cpus: tuple  # the CPUs it is pinned to; empty when unavailable
    unavailable: Optional[str] = None  # why it cannot run here

    @property
    def is_latency(self) -> bool:
        return registry.get(self.workload).latency

    @property
    def name(self) -> str:
        """A file-name-safe id, used for trace files."""
        return "%s-py%s-c%d-n%d-%s-r%d" % (self.workload, self.python.label.replace("#", "_"), self.cores, self.n, self.mode, self.repeat)


def latency_modes(competitors: int) -> List[str]:
    """With no competitors there is nothing to run as threads or processes."""
    return ["alone"] if competitors == 0 else ["thread", "procs"]


def build_cells(config: BenchConfig, pythons: Sequence[Interpreter], usable: Sequence[int]) -> List[Cell]:
    """Every cell of the grid, including those marked unavailable (repeat 0)."""
    siblings = pinning.read_siblings(usable)
    combos = []  # (workload, cores, n, mode) in table order
    for workload in config.workloads:
        for cores in config.cores:
            if workload in config.grid_workloads:
                combos += [(workload, cores, n, mode) for n in config.ns for mode in config.modes]
            else:
                combos += [(workload, cores, k, mode) for k in config.competitors for mode in latency_modes(k)]
    cells = []
    for workload, cores, n, mode in combos:
        reason = pinning.unavailable_reason(cores, usable)
        if reason:  # listed once, not run
            cells += [Cell(workload, py, cores, n, mode, 0, (), reason) for py in pythons]
    for repeat in range(1, config.repeat + 1):
        for workload, cores, n, mode in combos:
            if pinning.unavailable_reason(cores, usable):
                continue
            cpus = tuple(pinning.choose_cpus(usable, cores, siblings))
            cells += [Cell(workload, py, cores, n, mode, repeat, cpus) for py in pythons]
    return cells


def child_argv(cell: Cell, config: BenchConfig, trace_path: Optional[str]) -> List[str]:
    """The child's command line (before pinning)."""
    mode = "thread" if cell.mode == "alone" else cell.mode
    argv = [
        cell.python.path,
        CHILD_SCRIPT,
        "--workload",
        cell.workload,
        "--mode",
        mode,
        "--n",
        str(cell.n),
        "--load",
        str(config.load),
        "--io-ops",
        str(config.io_ops),
        "--sync-ops",
        str(config.sync_ops),
        "--block",
        str(config.block),
        "--duration",
        repr(config.duration),
    ]
    if config.start_method:
        argv += ["--start-method", config.start_method]
    if config.tmpdir:
        argv += ["--tmpdir", config.tmpdir]
    if trace_path:
        argv += ["--trace", trace_path]
    return argv
