"""The intervals as CSV, for people who bring their own tools."""
from __future__ import annotations


def intervals_csv(trace, path: str) -> int:
    """Write tid, thread, state, start_ns, end_ns, duration_ns, location; return the row count."""
    iv = trace.intervals()
    iv.insert(1, "thread", [trace.names.get(int(t), "thread-%d" % t) for t in iv["tid"]])
    labels = {loc: trace.location_label(loc) if loc else "" for loc in iv["location"].unique()}
    iv["location"] = iv["location"].map(labels)
    iv.to_csv(path, index=False)
    return len(iv)
