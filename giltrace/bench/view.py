"""What the bench hands its renderers: the data of its tables and report.

The bench computes; giltrace/render/bench_tables.py (text) and
giltrace/render/bench_report.py (HTML) only lay out what is here.  They
import this module's types and ``load``, nothing else of the bench.

A ``BenchView`` is built from a fresh result (``of_result``) or from a saved
output directory's results.json (``load``), so the printed tables and the
report of the same run come from the same data.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Sequence, Tuple

import pandas as pd

from ..errors import UsageError
from . import machine
from .cells import latency_modes
from .config import BenchConfig
from .workloads import registry


@dataclass(frozen=True)
class Section:
    """One workload's table: its axes in table order."""

    workload: str
    heading: str  # what it ran, with the sizes ("cpu bound: counter, LOAD ...")
    latency: bool  # the convoy layout (rows: K competitors) rather than the study's grid
    cores: List[int]
    ns: List[int]  # grid: workers per cell
    modes: List[str]  # grid: the serial / thread / procs columns shown
    latency_rows: List[Tuple[int, str]]  # latency: (K competitors, mode) per row


@dataclass(frozen=True)
class BenchView:
    headline: List[Tuple[str, str]]  # (what, value): date, CPU, usable CPUs, kernel
    machine: Dict[str, Any]  # results.json "machine" (bench/machine.py describe())
    messages: List[str]  # notices given before the run
    pythons: List[str]  # interpreter labels, in column order
    repeat: int  # runs per cell
    traced: bool  # --trace: contention figures and trace files exist
    sections: List[Section]
    table: pd.DataFrame  # one row per cell (bench/aggregate.py TABLE_COLUMNS)
    runs: pd.DataFrame  # one row per run (bench/execute.py COLUMNS)

    def cell(self, workload: str, python: str, cores: int, n: int, mode: str) -> Any:
        """The table row of one cell (a pandas Series), or None."""
        t = self.table
        r = t[(t["workload"] == workload) & (t["python"] == python) & (t["cores"] == cores) & (t["n"] == n) & (t["mode"] == mode)]
        return None if r.empty else r.iloc[0]


def latency_rows(competitors: Sequence[int]) -> List[Tuple[int, str]]:
    """A latency table's rows: each K, alone (K=0) or as threads and as processes."""
    return [(k, mode) for k in competitors for mode in latency_modes(k)]


def titles(config: BenchConfig) -> Dict[str, str]:
    """What each workload's table shows, with its sizes."""
    return {w.name: w.heading(config) for w in registry.WORKLOADS}


def sections(config: BenchConfig) -> List[Section]:
    heading = titles(config)
    out = []
    for workload in config.workloads:
        latency = registry.get(workload).latency
        out.append(
            Section(
                workload=workload,
                heading=heading[workload],
                latency=latency,
                cores=list(config.cores),
                ns=[] if latency else list(config.ns),
                modes=[] if latency else list(config.modes),
                latency_rows=latency_rows(config.competitors) if latency else [],
            )
        )
    return out


def of_result(result: Any) -> BenchView:
    """The view of a ``bench.runner.BenchResult``."""
    return BenchView(
        headline=machine.headline(result.machine),
        machine=result.machine,
        messages=list(result.messages),
        pythons=[p.label for p in result.pythons],
        repeat=result.config.repeat,
        traced=result.config.trace,
        sections=sections(result.config),
        table=result.table,
        runs=result.runs,
    )


def load(out_dir: str) -> BenchView:
    """The view of a saved output directory; UsageError if it is not one."""
    path = os.path.join(out_dir, "results.json")
    if not os.path.isfile(path):
        raise UsageError("%s is not a giltrace bench output directory (no results.json)" % out_dir)
    try:
        with open(path) as f:
            doc = json.load(f)
    except ValueError:
        raise UsageError("%s is corrupt" % path) from None
    fields = {f.name for f in dataclasses.fields(BenchConfig)}
    config = BenchConfig(**{k: v for k, v in doc["config"].items() if k in fields})
    runs = pd.DataFrame(doc["runs"])
    described = doc.get("machine", {})
    return BenchView(
        headline=machine.headline(described),
        machine=described,
        messages=list(doc.get("messages", [])),
        pythons=list(dict.fromkeys(runs["python"])) if len(runs) else [],
        repeat=config.repeat,
        traced=config.trace,
        sections=sections(config),
        table=pd.DataFrame(doc["table"]),
        runs=runs,
    )
