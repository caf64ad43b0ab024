"""What to run: the grid's axes and the workload sizes, validated up front.

Validation is pure (no processes, no files touched) so that bad input fails
with one line before anything is started or written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence

from ..errors import UsageError
from .workloads import plan, registry

GRID_WORKLOADS = registry.GRID
LATENCY_WORKLOADS = registry.LATENCY
ALL_WORKLOADS = tuple(w.name for w in registry.WORKLOADS)
MODES = ("serial", "thread", "procs")
START_METHODS = ("fork", "spawn", "forkserver")


@dataclass
class BenchConfig:
    """One experiment grid.  Every cell runs ``repeat`` times.

    Grid workloads (cpu, io, io-sync, mix, mix-sync) run for every
    cores x n x mode; latency workloads run for every cores x competitors,
    with the competitors as threads and as processes.
    """

    workloads: List[str] = field(default_factory=lambda: ["cpu", "io", "mix"])
    cores: List[int] = field(default_factory=lambda: [1, 2, 4, 8])
    ns: List[int] = field(default_factory=lambda: [1, 2, 4])
    modes: List[str] = field(default_factory=lambda: list(MODES))
    competitors: List[int] = field(default_factory=lambda: [0, 1, 2])
    repeat: int = 3
    load: int = plan.DEFAULT_LOAD
    io_ops: int = plan.DEFAULT_IO_OPS
    sync_ops: int = plan.DEFAULT_SYNC_OPS
    block: int = plan.DEFAULT_BLOCK
    duration: float = 2.0
    pythons: List[str] = field(default_factory=list)  # empty: the running interpreter
    trace: bool = False
    start_method: Optional[str] = None
    tmpdir: Optional[str] = None
    timeout: float = 900.0  # seconds per cell before it is killed and marked failed

    @property
    def grid_workloads(self) -> List[str]:
        return [w for w in self.workloads if w in GRID_WORKLOADS]

    @property
    def latency_workloads(self) -> List[str]:
        return [w for w in self.workloads if w in LATENCY_WORKLOADS]


def parse_int_list(text: str, option: str, minimum: int) -> List[int]:
    """'1,2,4' -> [1, 2, 4]; UsageError naming ``option`` otherwise."""
    values = []
    for item in text.split(","):
        item = item.strip()
        try:
            value = int(item)
        except ValueError:
            raise UsageError("%s: %r is not a whole number" % (option, item)) from None
        if value < minimum:
            raise UsageError("%s: %d is too small (at least %d)" % (option, value, minimum))
        if value not in values:
            values.append(value)
    return values


def parse_name_list(text: str, option: str, known: Sequence[str]) -> List[str]:
    names = []
    for item in text.split(","):
        item = item.strip()
        if item not in known:
            raise UsageError("%s: unknown %r (choose from %s)" % (option, item, ", ".join(known)))
        if item not in names:
            names.append(item)
    return names


def validate(config: BenchConfig) -> None:
    """Raise UsageError on the first thing wrong with ``config``."""
    parse_name_list(",".join(config.workloads), "--workloads", ALL_WORKLOADS)
    parse_name_list(",".join(config.modes), "--modes", MODES)
    checks = [
        (config.workloads, "--workloads needs at least one workload"),
        (config.cores, "--cores needs at least one value"),
        (not config.grid_workloads or config.ns, "--n needs at least one value"),
        (not config.grid_workloads or config.modes, "--modes needs at least one mode"),
        (not config.latency_workloads or config.competitors, "--competitors needs at least one value"),
        (all(c >= 1 for c in config.cores), "--cores: each value must be at least 1"),
        (all(n >= 1 for n in config.ns), "--n: each value must be at least 1"),
        (all(k >= 0 for k in config.competitors), "--competitors: each value must be 0 or more"),
        (config.repeat >= 1, "--repeat must be at least 1"),
        (config.load >= 1, "--load must be at least 1"),
        (config.io_ops >= 1 and config.sync_ops >= 1, "--io-ops and --sync-ops must be at least 1"),
        (config.block >= 1, "--block must be at least 1 byte"),
        (config.duration > 0, "--duration must be positive"),
        (config.timeout > 0, "--timeout must be positive"),
        (config.start_method in (None,) + START_METHODS, "--start-method must be one of " + ", ".join(START_METHODS)),
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)
