"""Per-cell GIL figures from the cell's trace files.

Workers are the threads named by role ("cpu-0", "io-1", "io-serial", ...:
``workloads.plan.role``);
the child also reports native thread id -> role, used where a trace lacks a
name.  A procs cell has one trace per worker process; the figures add up
over all of them.

- ``gil_wait_share``  worker time spent waiting for the GIL / worker lifetime
- ``switches_per_s``  GIL hand-overs between threads per second of wall time
- ``drop_requests``   times a waiter asked the holder to let go
- ``io_reacq_*``      how long I/O workers waited to get the GIL back after
                      each blocking call (``wait_ns`` of their ``acquire``
                      events); one I/O operation is 4 such calls, 5 with fsync
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from .workloads import plan
from .workloads.procinfo import percentile

FIGURES = (
    "gil_wait_share",
    "io_wait_share",
    "switches_per_s",
    "drop_requests",
    "io_reacq_n",
    "io_reacq_p50_us",
    "io_reacq_p99_us",
    "io_reacq_max_us",
    "events_lost",
)


def is_worker(role: Optional[str]) -> bool:
    return plan.role_kind(role) is not None


def is_io(role: Optional[str]) -> bool:
    return plan.role_kind(role) == "io"


def worker_roles(threads: pd.DataFrame, reported: Mapping[int, str]) -> Dict[int, str]:
    """tid -> role for the worker threads of one trace."""
    roles = {}
    for tid, name in threads["name"].items():
        role = name if is_worker(name) else reported.get(int(tid))
        if is_worker(role):
            roles[int(tid)] = str(role)
    return roles


def _percentiles_us(wait_ns: np.ndarray) -> Tuple[Optional[float], Optional[float], Optional[float]]:
    """p50, p99, max in microseconds: uncontended takes are ~0.05 us, convoyed ones ~5000."""
    if wait_ns.size == 0:
        return None, None, None
    ordered = np.sort(wait_ns)  # nearest rank, like the latency experiment's own percentiles
    return float(percentile(ordered, 50)) / 1e3, float(percentile(ordered, 99)) / 1e3, float(ordered[-1]) / 1e3


def cell_figures(traces: Sequence[Any], reported_roles: Mapping[int, str], wall_s: float) -> Dict[str, Any]:
    """The contention figures of one cell from its loaded traces.

    ``traces``: objects with ``threads()``, ``events`` and ``meta`` (giltrace.Trace).
    """
    wait = active = io_wait = io_active = 0.0
    switches = drops = lost = 0
    io_waits: List[np.ndarray] = []
    for trace in traces:
        threads = trace.threads()
        roles = worker_roles(threads, reported_roles)
        workers = threads.loc[list(roles)]
        wait += float(workers["wait_s"].sum())
        active += float(workers["active_s"].sum())
        io_tids = [tid for tid, role in roles.items() if is_io(role)]
        io_rows = threads.loc[io_tids]
        io_wait += float(io_rows["wait_s"].sum())
        io_active += float(io_rows["active_s"].sum())

        events = trace.events
        drops += int((events["kind"] == "drop_request").sum())
        takes = (events["kind"] == "acquire") & events["tid"].isin(io_tids) & (events["wait_ns"] >= 0)
        if "wait_clipped" in events:  # began before the trace: its wait is not known
            takes &= ~events["wait_clipped"].astype(bool)
        acquires = events[takes]
        io_waits.append(acquires["wait_ns"].to_numpy(dtype=np.int64))

        meta = trace.meta
        switches += int(meta.get("switch_number_stop", 0)) - int(meta.get("switch_number_start", 0))
        lost += int(meta.get("events_lost", 0) or 0)

    all_io = np.concatenate(io_waits) if io_waits else np.array([], dtype=np.int64)
    p50, p99, worst = _percentiles_us(all_io)
    return {
        "gil_wait_share": wait / active if active > 0 else None,
        "io_wait_share": io_wait / io_active if io_active > 0 else None,
        "switches_per_s": switches / wall_s if wall_s > 0 else None,
        "drop_requests": drops,
        "io_reacq_n": int(all_io.size),
        "io_reacq_p50_us": p50,
        "io_reacq_p99_us": p99,
        "io_reacq_max_us": worst,
        "events_lost": lost,
    }


def load_traces(files: Sequence[str]) -> Tuple[List[Any], Optional[str]]:
    """The loaded traces, or ([], why they could not be read here)."""
    try:
        import giltrace

        load = giltrace.load
    except (ImportError, AttributeError) as exc:
        return [], "traces recorded but not readable here: %s" % exc
    traces = []
    for path in files:
        try:
            traces.append(load(path))
        except Exception as exc:  # a truncated or foreign file: report, keep going
            return [], "trace %s unreadable: %s" % (path, exc)
    return traces, None
