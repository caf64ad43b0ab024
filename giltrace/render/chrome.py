"""Chrome Trace Event / Perfetto JSON: one track per thread with `hold GIL`
and `wait GIL` slices, drop requests as instants, thread names as metadata.

Timestamps are microseconds of CLOCK_MONOTONIC (``clock="monotonic"``, the
clock VizTracer records on Linux, so the two files line up when combined
with ``viztracer --combine``), or of the Unix epoch (``clock="epoch"``),
converted with the (monotonic, wall) pair taken at the trace start.  pid is
the traced process's pid and tid the OS thread id, as VizTracer writes them.
"""
from __future__ import annotations

from typing import Any, Dict, List

import numpy as np


def chrome_events(trace, clock: str = "monotonic") -> Dict[str, Any]:
    if clock not in ("monotonic", "epoch"):
        raise ValueError("clock must be 'monotonic' or 'epoch'")
    meta = trace.meta
    pid = int(meta.get("pid", 0))
    offset_ns = 0
    if clock == "epoch":
        pair = meta.get("clock_pair")
        if pair:
            offset_ns = int(pair[1]) - int(pair[0])
        else:  # older files: the header's wall time, taken just before the start
            offset_ns = int(float(meta["start_time_unix"]) * 1e9) - trace.start_ns
    th = trace.threads()
    out: List[Dict[str, Any]] = [
        {"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": "python %s (giltrace)" % meta.get("python_version", "")}},
    ]
    for i, (tid, row) in enumerate(th.iterrows()):
        out.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": int(tid), "args": {"name": str(row["name"])}})
        out.append({"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": int(tid), "args": {"sort_index": i}})

    iv = trace.intervals()
    iv = iv[iv["duration_ns"] > 0].sort_values(["tid", "start_ns"], kind="stable")
    ts = (iv["start_ns"].to_numpy() + offset_ns) / 1e3
    dur = iv["duration_ns"].to_numpy() / 1e3
    names = np.where(iv["state"].to_numpy() == "hold", "hold GIL", "wait GIL")
    labels = {loc: trace.location_label(loc) for loc in iv["location"].unique() if loc}
    for tid, t, d, n, loc in zip(iv["tid"].to_numpy(), ts, dur, names, iv["location"].to_numpy()):
        e = {"ph": "X", "cat": "gil", "name": str(n), "pid": pid, "tid": int(tid), "ts": float(t), "dur": float(d)}
        if loc:  # a wait: where the thread began waiting; a hold: where it let go
            e["args"] = {"location": labels[loc]}
        out.append(e)

    ev = trace.events
    drops = ev[ev["kind"] == "drop_request"]
    for tid, t, holder in zip(drops["tid"].to_numpy(), drops["time_ns"].to_numpy(), drops["holder_tid"].to_numpy()):
        out.append({"ph": "i", "s": "t", "cat": "gil", "name": "drop request", "pid": pid, "tid": int(tid),
                    "ts": (int(t) + offset_ns) / 1e3, "args": {"holder_tid": int(holder), "holder": trace.names.get(int(holder), "")}})
    return {
        "traceEvents": out,
        "displayTimeUnit": "ms",
        "otherData": {"source": "giltrace", "clock": clock, "switch_interval_s": meta.get("switch_interval_s"),
                      "events_lost": meta.get("events_lost"), "complete": meta.get("complete")},
    }


def guess_clock(doc: Dict[str, Any]) -> str:
    """Which clock another Chrome trace uses: Unix-epoch microseconds are
    ~1.7e15 today, CLOCK_MONOTONIC microseconds (time since boot) far less."""
    events = doc.get("traceEvents", []) if isinstance(doc, dict) else doc
    ts = sorted(e["ts"] for e in events if isinstance(e, dict) and isinstance(e.get("ts"), (int, float)))
    if not ts:
        return "monotonic"
    return "epoch" if ts[len(ts) // 2] > 1e14 else "monotonic"


def merge_into(other: Dict[str, Any], trace) -> Dict[str, Any]:
    """Add the GIL tracks to another Chrome trace of the same run (e.g. a
    VizTracer report), on that trace's clock; same pid/tid conventions."""
    if isinstance(other, list):  # the JSON array form of the format
        other = {"traceEvents": other}
    ours = chrome_events(trace, clock=guess_clock(other))
    known = {(e.get("pid"), e.get("tid"), e.get("name")) for e in other.get("traceEvents", []) if e.get("ph") == "M"}
    merged = [e for e in ours["traceEvents"] if e["ph"] != "M" or (e["pid"], e["tid"], e["name"]) not in known]
    other = dict(other)
    other["traceEvents"] = list(other.get("traceEvents", [])) + merged
    return other
