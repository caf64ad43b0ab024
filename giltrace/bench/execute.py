"""Running one cell: a pinned child interpreter, watched from outside.

The result is one row (a dict with the keys of ``COLUMNS``) per run.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .. import interpreters as versions
from ..cpus import format_cpus
from . import cells, contention, monitor, pinning, spread
from .cells import Cell
from .config import BenchConfig

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

COLUMNS = (
    [
        # what ran
        "workload",
        "python",
        "python_version",
        "python_path",
        "cores",
        "n",
        "mode",
        "repeat",
        "status",
        "reason",
        # time and CPU
        "wall_s",
        "user_s",
        "sys_s",
        "cpu_ratio",
        # where it ran, and whether that can be trusted
        "cpus_requested",
        "cpus",
        "cpus_seen",
        "workers_pinned",
        "expected_parallel",
        "flag",
        "steal_s",
        "others_cpu_share",
        "gil_enabled",
        "start_method",
        "load",
        "io_ops",
        "sync_ops",
        "block",
        "duration",
        # latency experiment (the I/O thread's operations)
        "lat_ops",
        "ops_per_s",
        "lat_p50_ms",
        "lat_p99_ms",
        "lat_mean_ms",
        "lat_max_ms",
        "competitor_iters_per_s",
        # tracing
        "traced",
        "trace_note",
        "trace_files",
    ]
    + list(contention.FIGURES)
    + ["notes"]
)


def empty_row(cell: Cell) -> Dict[str, Any]:
    row: Dict[str, Any] = {c: None for c in COLUMNS}
    row.update(
        {
            "workload": cell.workload,
            "python": cell.python.label,
            "python_version": cell.python.version,
            "python_path": cell.python.path,
            "cores": cell.cores,
            "n": cell.n,
            "mode": cell.mode,
            "repeat": cell.repeat,
            "cpus_requested": format_cpus(cell.cpus),
            "gil_enabled": cell.python.gil_enabled,
            "traced": False,
            "notes": "",
        }
    )
    return row


def _ms(seconds: Optional[float]) -> Optional[float]:
    return None if seconds is None else seconds * 1e3


def row_from_child(cell: Cell, data: Mapping[str, Any], seen_from_outside: Mapping[str, Any]) -> Dict[str, Any]:
    """A run's row from the child's JSON and what the runner saw of it
    (``launch``'s cpus_seen, elapsed_s, busy_s, tree_cpu_s, steal_s)."""
    row = empty_row(cell)
    wall, user, sys_ = data["wall_s"], data["user_s"], data["sys_s"]
    steal_s = seen_from_outside["steal_s"]
    # The cell's own CPU time: the tree's, or what the workers reported if
    # more (the sampler may miss a worker's last ticks).
    own = max(seen_from_outside["tree_cpu_s"], user + sys_)
    capacity = seen_from_outside["elapsed_s"] * len(cell.cpus)
    others = max(0.0, seen_from_outside["busy_s"] - own) / capacity if capacity > 0 else None
    workers = data["workers"]
    # The CPUs it ran on: the sampler's view plus each worker's last CPU.
    seen = set(seen_from_outside["cpus_seen"]) | {w["last_cpu"] for w in workers if w.get("last_cpu") is not None}
    expected = spread.expected_parallelism(cell.workload, cell.n, cell.mode, cell.cores, data["python"]["gil_enabled"])
    ratio = (user + sys_) / wall if wall > 0 else None
    pinned = all(sorted(w["affinity"]) == sorted(cell.cpus) for w in workers)
    flag = spread.spread_flag(
        expected, ratio, wall, data["affinity"], cell.cpus, seen, steal_s, others or 0.0, workers_affinity=[w["affinity"] for w in workers]
    )
    params = data["params"]
    row.update(
        {
            "status": "ok",
            "wall_s": wall,
            "user_s": user,
            "sys_s": sys_,
            "cpu_ratio": ratio,
            "cpus": format_cpus(data["affinity"]),
            "cpus_seen": format_cpus(seen),
            "workers_pinned": pinned,
            "expected_parallel": expected,
            "flag": flag,
            "steal_s": steal_s,
            "others_cpu_share": others,
            "gil_enabled": data["python"]["gil_enabled"],
            "start_method": data["start_method"],
            "load": params["load"],
            "io_ops": params["io_ops"],
            "sync_ops": params["sync_ops"],
            "block": params["block"],
            "duration": params["duration"] if cell.is_latency else None,
            "notes": "; ".join(data.get("notes") or []),
        }
    )
    lat = data.get("latency")
    if lat:
        row.update(
            {
                "lat_ops": lat["ops"],
                "ops_per_s": lat["ops_per_s"],
                "lat_p50_ms": _ms(lat["p50_s"]),
                "lat_p99_ms": _ms(lat["p99_s"]),
                "lat_mean_ms": _ms(lat["mean_s"]),
                "lat_max_ms": _ms(lat["max_s"]),
                "competitor_iters_per_s": lat["competitor_iters_per_s"],
            }
        )
    trace = data.get("trace") or {}
    if trace.get("requested"):
        row["traced"] = bool(trace.get("enabled"))
        row["trace_files"] = ",".join(trace.get("files") or [])
        row["trace_note"] = "" if trace.get("enabled") else "untraced: %s" % trace.get("reason")
    return row


def add_contention(row: Dict[str, Any], data: Mapping[str, Any]) -> None:
    """Load the cell's trace files and add its GIL figures to ``row``."""
    files = data["trace"]["files"]
    traces, problem = contention.load_traces(files)
    if problem:
        row["trace_note"] = problem
        return
    roles = {int(w["native_id"]): w["role"] for w in data["workers"] if w.get("native_id") is not None}
    row.update(contention.cell_figures(traces, roles, data["wall_s"]))
    if row["events_lost"]:
        row["trace_note"] = "%d GIL events lost: figures are lower bounds" % row["events_lost"]


def child_env(trace: bool, old_gil: bool = False) -> Dict[str, str]:
    """The child's environment: ours, plus this source tree on the path when
    tracing, so an interpreter without giltrace installed may still import it;
    for an old-GIL (2.7) child, the recorder library built here (or why not)."""
    env = dict(os.environ)
    if trace:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO_ROOT, env.get("PYTHONPATH")) if p)
    if trace and old_gil:
        from .. import _build_oldgil

        try:
            env["GILTRACE_OLDGIL_LIB"] = _build_oldgil.library_path()
        except (_build_oldgil.BuildError, OSError) as exc:  # the child reports it as the cell's note
            env["GILTRACE_OLDGIL_ERROR"] = str(exc)
    return env


def _last_line(text: str, fallback: str) -> str:
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return lines[-1].strip() if lines else fallback


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def launch(argv: List[str], env: Mapping[str, str], timeout: float, cpus: Sequence[int]) -> Dict[str, Any]:
    """Run a pinned child to completion: its output, and what was seen of it.

    Besides the child's own report: the CPUs its tasks were seen on, the time
    the hypervisor stole from its CPUs, their busy time, and the CPU time of
    the child's tree: as waited for, or as sampled if more (``row_from_child``
    takes the difference: what *other* processes used there meanwhile).
    """
    ticks_before = monitor.cpu_ticks(cpus)
    cpu_before = _children_cpu_s()
    started = time.monotonic()
    # Its own session, so a timeout can kill its worker processes too.
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(env), start_new_session=True)
    sampler = monitor.CpuSampler(proc.pid, cpus)
    sampler.start()
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        timed_out = True
    except BaseException:  # Ctrl-C: don't leave a pinned child running
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    finally:
        seen = sampler.stop()
    elapsed = time.monotonic() - started
    ticks_after = monitor.cpu_ticks(cpus)
    return {
        "returncode": proc.returncode,
        "stdout": out,
        "stderr": err,
        "timed_out": timed_out,
        "cpus_seen": sorted(seen),
        "elapsed_s": elapsed,
        "busy_s": monitor.ticks_to_seconds(ticks_after["busy"] - ticks_before["busy"]),
        "tree_cpu_s": max(_children_cpu_s() - cpu_before, sampler.cpu_seen_s),
        "steal_s": monitor.ticks_to_seconds(ticks_after["steal"] - ticks_before["steal"]),
    }


def run_cell(cell: Cell, config: BenchConfig, trace_dir: Optional[str]) -> Dict[str, Any]:
    """Run ``cell`` once (or mark it unavailable) and return its row."""
    if cell.unavailable:
        row = empty_row(cell)
        row.update({"status": "unavailable", "reason": cell.unavailable})
        return row
    trace_path = os.path.join(trace_dir, cell.name + ".gtr") if config.trace and trace_dir else None
    argv = pinning.pinned_argv(cell.cpus, cells.child_argv(cell, config, trace_path))
    old_gil = versions.gil_kind(cell.python.version_tuple) == "old"
    result = launch(argv, child_env(trace_path is not None, old_gil), config.timeout, cell.cpus)
    if result["timed_out"] or result["returncode"] != 0:
        row = empty_row(cell)
        reason = (
            "timed out after %gs" % config.timeout
            if result["timed_out"]
            else _last_line(result["stderr"], "exit status %s" % result["returncode"])
        )
        row.update({"status": "failed", "reason": reason})
        return row
    data = json.loads(_last_line(result["stdout"], "{}"))
    row = row_from_child(cell, data, result)
    if row["traced"]:
        add_contention(row, data)
    return row
