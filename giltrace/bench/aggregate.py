"""From one row per run to one row per cell: median and min-max over repeats.

Pure functions of the runs DataFrame, so they are tested on synthetic rows.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List

import pandas as pd

from ..cpus import format_cpus, parse_cpu_list
from . import contention

KEYS = ["workload", "python", "cores", "n", "mode"]

# Columns summarised by their median over the successful repeats.
MEDIAN_COLUMNS = [
    "cpu_ratio",
    "steal_s",
    "others_cpu_share",
    "lat_p50_ms",
    "lat_p99_ms",
    "lat_mean_ms",
    "lat_max_ms",
    "ops_per_s",
    "competitor_iters_per_s",
    *contention.FIGURES,
]

TABLE_COLUMNS = KEYS + [
    "status",
    "reason",
    "runs",
    "failed",
    "wall_median",
    "wall_min",
    "wall_max",
    "cpus",
    "cpus_seen",
    "expected_parallel",
    "flagged",
    "flag",
    "traced",
    "trace_note",
    "notes",
    *MEDIAN_COLUMNS,
]


def _unique_text(values: Iterable[Any]) -> str:
    """Distinct non-empty strings, in order, joined by ' | '."""
    out: List[str] = []
    for v in values:
        if isinstance(v, str) and v and v not in out:
            out.append(v)
    return " | ".join(out)


def _union_cpus(values: Iterable[Any]) -> str:
    cpus: set = set()
    for v in values:
        if isinstance(v, str) and v:
            cpus.update(parse_cpu_list(v))
    return format_cpus(cpus)


def summarize_cell(group: pd.DataFrame) -> Dict[str, Any]:
    """One cell's summary from its runs (all rows share the KEYS)."""
    first = group.iloc[0]
    out: Dict[str, Any] = {k: first[k] for k in KEYS}
    ok = group[group["status"] == "ok"]
    failed = group[group["status"] == "failed"]
    if (group["status"] == "unavailable").all():
        out.update({"status": "unavailable", "reason": first["reason"], "runs": 0, "failed": 0})
        return out
    wall = pd.to_numeric(ok["wall_s"])
    flags = ok["flag"].fillna("")
    out.update(
        {
            "status": "ok" if len(ok) else "failed",
            "reason": _unique_text(failed["reason"]),
            "runs": len(ok),
            "failed": len(failed),
            "wall_median": wall.median() if len(ok) else None,
            "wall_min": wall.min() if len(ok) else None,
            "wall_max": wall.max() if len(ok) else None,
            "cpus": _unique_text(ok["cpus"]),
            "cpus_seen": _union_cpus(ok["cpus_seen"]),
            "expected_parallel": ok["expected_parallel"].max() if len(ok) else None,
            "flagged": int((flags != "").sum()),
            "flag": _unique_text(flags),
            "traced": bool(ok["traced"].fillna(False).astype(bool).any()),
            "trace_note": _unique_text(group["trace_note"]),
            "notes": _unique_text(group["notes"]),
        }
    )
    for column in MEDIAN_COLUMNS:
        values = pd.to_numeric(ok[column], errors="coerce").dropna()
        out[column] = float(values.median()) if len(values) else None
    return out


def aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    """The per-cell table, in the order cells first appear in ``runs``."""
    if runs.empty:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    order = runs[KEYS].drop_duplicates()
    rows = []
    for _, key in order.iterrows():
        mask = (runs[KEYS] == key.values).all(axis=1)
        rows.append(summarize_cell(runs[mask]))
    return pd.DataFrame(rows).reindex(columns=TABLE_COLUMNS)
